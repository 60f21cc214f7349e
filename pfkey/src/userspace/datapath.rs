//! The shell around the sans-IO core: a TUN device, raw ESP sockets and
//! iked's port-4500 sockets on one side, the [`Sad`] on the other.
//!
//! **Shape.** One tokio task (`task.rs`) owns the [`Sad`] and every
//! datapath buffer, so the per-packet path takes no lock and allocates
//! nothing:
//!
//! - TUN read → [`Sad::encapsulate`] → raw socket (plain ESP) or the
//!   attached UDP socket (ESP-in-UDP, RFC 3948, no marker);
//! - raw socket read, attached port-4500 socket read (`UDP_GRO`; IKE and
//!   anything else not ESP goes back through its [`NonEspSink`]), or
//!   [`UserspaceKernel::handle_udp_esp`] → [`Sad::decapsulate`] → TUN
//!   write.
//!
//! `handle_udp_esp` takes the ESP the socket's owner read itself (before
//! the attach, or while it still reads too): it copies the datagram into a
//! recycled buffer from a lock-free pool and queues it for the datapath task
//! (a full queue drops the packet, counted as `backlog`). Control operations
//! (`add_sa`, `delete_sa`, ...) are messages to the same task and are
//! answered once applied, so an SA is in place when `add_sa` returns (a
//! responder installs before it answers). Counters are atomics that
//! [`UserspaceKernel::stats`] reads without stopping the datapath.
//!
//! **Routing.** See [`super::route`]: the destination selectors of
//! outbound SAs and of outbound `Protect`/`Discard` policies are routed
//! into the TUN device through a table of our own, shared and
//! reference-counted. When those selectors contain the peer itself
//! (transport mode, host-to-host tunnels), IKE and ESP to the peer would
//! loop into the tunnel too; as with strongSwan's libipsec, the sockets
//! that carry them are marked with [`BYPASS_MARK`](super::BYPASS_MARK)
//! and the rule sending lookups to our table skips marked packets (`not
//! fwmark`), so they use the main table. The datapath marks its raw ESP sockets and every socket
//! given to [`UserspaceKernel::attach_nat_t_socket`]; the daemons must mark
//! their IKE sockets (ports 500 and 4500) with [`mark_socket`].
//!
//! **Events.** [`Kernel::take_events`] carries ACQUIREs (see
//! [`super::policy`]) and every SA's soft and hard lifetime expiries as
//! [`KernelEvent::Expire`]. A hard expiry deletes the SA, as XFRM does: it
//! leaves the SAD, [`Kernel::list_sas`] and the SA's routes (a trap
//! policy's route stays), so a later [`Kernel::delete_sa`] answers
//! [`KernelError::NotFound`]. **The stream ending means the datapath is
//! gone** (its task stopped because the TUN device failed): every later
//! call fails, and protected traffic is dropped by the blackhole routes of
//! [`super::route`] rather than sent in cleartext; the daemon should log it
//! and restart the backend or exit.
//!
//! **Transport mode** is handled in [`super::sad`] with
//! [`super::transport`]: the payload after the inner IP header is sealed
//! and sent between the SA's addresses; inbound, the IP header is rebuilt
//! in front of the decrypted payload.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use libracoon::crypto::{OsRandom, Random};
use socket2::Domain;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::esp::EspOptions;
use super::route::{self, Prefix, RouteTable};
use super::sad::{Exists, Lifetime, Sad, SadEntry};
use super::socket::{self, mark_socket};
use super::stats::{DatapathStats, DropCounters, DropReason, SaCounters, SaStats};
use super::task::{Buffers, Command, Datagram, Datapath, Events, Io};
use crate::{
    Counters, IpsecMode, Kernel, KernelError, KernelEvent, PolicyAction, PolicySpec, SaDirection,
    SaId, SaInfo, SaSpec, Selector, UdpEncap,
};

const BACKEND: &str = "userspace";
/// ESP-in-UDP datagrams queued from `handle_udp_esp`, and pooled buffers.
const UDP_QUEUE: usize = 256;
/// Initial capacity of pooled buffers (a datagram on a 1500-byte path).
const UDP_BUF: usize = 2048;

/// How to set up the datapath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserspaceConfig {
    /// Name of the TUN device to create, e.g. `r3esp0`.
    pub tun_name: String,
    /// Its MTU, e.g. 1400 (leaves room for ESP and UDP on a 1500-byte path).
    pub mtu: u16,
}

/// Where the datapath passes a datagram it read from an attached port-4500
/// socket that is not ESP: `(local, remote, datagram)`, the datagram as
/// read (non-ESP marker included). Called on the datapath task: must not
/// block.
pub type NonEspSink = Arc<dyn Fn(SocketAddr, SocketAddr, &[u8]) + Send + Sync>;

/// The userspace ESP datapath as a [`Kernel`] backend.
///
/// Call order: [`start`](Self::start) inside a tokio runtime;
/// [`Kernel::take_events`] once, and keep reading it (ACQUIRE, expiries);
/// [`mark_socket`] on every IKE socket (ports 500 and
/// 4500) of the daemons; then, for NAT-T,
/// [`attach_nat_t_socket`](Self::attach_nat_t_socket) per port-4500 socket
/// before installing SAs with `encap` (the datapath reads it from then
/// on), and [`handle_udp_esp`](Self::handle_udp_esp) for each ESP
/// datagram the owner still reads from it; [`Kernel::add_policy`] for trap policies and
/// [`Kernel::add_sa`]/[`Kernel::delete_sa`] as SAs come and go. Dropping
/// the last handle stops the task, deletes the TUN device and removes the
/// routing rule.
pub struct UserspaceKernel {
    tun_name: String,
    ctl: mpsc::UnboundedSender<Command>,
    udp_in: mpsc::Sender<Datagram>,
    pool: Arc<ArrayQueue<Vec<u8>>>,
    drops: Arc<DropCounters>,
    control: Arc<Mutex<Control>>,
    events: Mutex<Option<mpsc::UnboundedReceiver<KernelEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the control side remembers about installed SAs (no keys), shared
/// with the datapath task, which locks it only to forget a hard-expired SA
/// (never per packet).
#[derive(Debug, Default)]
pub(super) struct Control {
    sas: BTreeMap<SaId, Installed>,
    /// Installed policies and the routes each holds.
    policies: Vec<(PolicySpec, Routes)>,
    routes: RouteTable,
}

impl Control {
    /// Forgets SA `id`; returns `None` if it was not registered, else the
    /// routes that neither another SA nor a policy holds any more.
    pub(super) fn forget_sa(&mut self, id: SaId) -> Option<Vec<Prefix>> {
        let installed = self.sas.remove(&id)?;
        Some(self.routes.release(&installed.routes))
    }
}

/// Prefixes routed into the TUN device, with their preferred source.
type Routes = Vec<(Prefix, Option<IpAddr>)>;

#[derive(Debug)]
struct Installed {
    src: IpAddr,
    mode: IpsecMode,
    encap: Option<UdpEncap>,
    direction: SaDirection,
    reqid: u32,
    transform: String,
    counters: Arc<SaCounters>,
    routes: Routes,
}

impl UserspaceKernel {
    /// Creates the TUN device (up, with `cfg.mtu`), the raw ESP sockets and
    /// the routing rule, and starts the datapath task on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// [`KernelError::Failed`] if the device, a socket or the rule cannot
    /// be created (not root? no `/dev/net/tun`?).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(cfg: UserspaceConfig) -> Result<Arc<Self>, KernelError> {
        // With offloads (IFF_VNET_HDR, TSO/USO), reads carry whole GSO
        // segments that the task splits, and its writes coalesce (GRO);
        // a kernel that refuses them gets a plain device.
        let build = |offload: bool| {
            tun_rs::DeviceBuilder::new()
                .name(&cfg.tun_name)
                .mtu(cfg.mtu)
                .offload(offload)
                .build_async()
        };
        let tun = build(true)
            .or_else(|_| build(false))
            .map_err(|e| failed(format!("TUN device {}: {e}", cfg.tun_name)))?;
        let raw4 =
            socket::open(Domain::IPV4).map_err(|e| failed(format!("raw ESP socket: {e}")))?;
        let raw6 = socket::open(Domain::IPV6).ok();
        route::install_rules().await.map_err(failed)?;
        let drops = Arc::new(DropCounters::default());
        let pool = Arc::new(ArrayQueue::new(UDP_QUEUE));
        for _ in 0..UDP_QUEUE {
            let _ = pool.push(Vec::with_capacity(UDP_BUF));
        }
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (udp_in, udp_rx) = mpsc::channel(UDP_QUEUE);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let control = Arc::new(Mutex::default());
        let datapath = Datapath {
            sad: Sad::new(drops.clone()),
            io: Io {
                tun,
                raw4,
                raw6,
                udp: HashMap::new(),
                readers: Vec::new(),
            },
            bufs: Buffers::new(),
            ctl: ctl_rx,
            udp: udp_rx,
            pool: pool.clone(),
            events: Events {
                tx: ev_tx,
                control: Arc::clone(&control),
                tun_name: cfg.tun_name.clone(),
            },
        };
        let task = tokio::spawn(datapath.run());
        Ok(Arc::new(Self {
            tun_name: cfg.tun_name,
            ctl,
            udp_in,
            pool,
            drops,
            control,
            events: Mutex::new(Some(ev_rx)),
            task,
        }))
    }

    /// Registers a UDP socket bound to `local` (port 4500) that ESP-in-UDP
    /// for SAs with `encap` leaves from and arrives on. iked owns it; the
    /// datapath sends from it and reads it (with the `UDP_GRO` its owner
    /// may have set, whole coalesced reads decrypted in place), passing
    /// every datagram that is not ESP (IKE behind its non-ESP marker) to
    /// `to_iked` as read. The owner may stop reading it meanwhile. A
    /// socket bound to the unspecified address serves every source address
    /// of its family.
    ///
    /// The socket is marked with [`BYPASS_MARK`](super::BYPASS_MARK) here (see
    /// [`mark_socket`]), so that its packets to a peer whose address is
    /// routed into the TUN device still leave through the main table. A
    /// failure to mark is logged: host-to-host SAs over this socket would
    /// then loop into the TUN device.
    ///
    /// `owner` numbers the attach (e.g. the hand-off connection): a later
    /// [`detach_nat_t_socket`](Self::detach_nat_t_socket) lets go only of
    /// the socket the same owner attached.
    pub fn attach_nat_t_socket(
        &self,
        local: SocketAddr,
        sock: Arc<UdpSocket>,
        to_iked: NonEspSink,
        owner: u64,
    ) {
        if let Err(e) = mark_socket(&*sock) {
            tracing::error!(%local, error = %e, "cannot set SO_MARK on the NAT-T socket");
        }
        socket::enlarge_receive_buffer(&*sock);
        let _ = self.ctl.send(Command::Attach(local, sock, to_iked, owner));
    }

    /// Lets go of the socket `owner` attached for `local` (the owner
    /// stopped): neither read nor sent from any more, so that the port is
    /// free for the owner's successor. A socket a newer owner attached for
    /// the same address stays.
    pub fn detach_nat_t_socket(&self, local: SocketAddr, owner: u64) {
        let _ = self.ctl.send(Command::Detach(local, owner));
    }

    /// ESP-in-UDP that the owner of an attached socket read itself (it has
    /// already ruled out the non-ESP marker and NAT keepalives). The packet is
    /// copied and processed on the datapath task.
    ///
    /// `local` and `remote` are not checked yet: SAs are found by SPI, and
    /// NAT mapping changes are iked's business.
    pub fn handle_udp_esp(&self, local: SocketAddr, remote: SocketAddr, packet: &[u8]) {
        let _ = (local, remote);
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(packet);
        if let Err(e) = self.udp_in.try_send(Datagram { buf }) {
            self.drops.add(DropReason::Backlog);
            let Datagram { buf } = e.into_inner();
            let _ = self.pool.push(buf);
        }
    }

    /// Datapath counters: packets and bytes per SA, drops by reason.
    #[must_use]
    pub fn stats(&self) -> DatapathStats {
        let sas = self
            .control()
            .sas
            .iter()
            .map(|(id, sa)| SaStats {
                id: *id,
                direction: sa.direction,
                reqid: sa.reqid,
                transform: sa.transform.clone(),
                packets: sa.counters.packets(),
                bytes: sa.counters.bytes(),
            })
            .collect();
        DatapathStats::new(sas, &self.drops)
    }

    /// The name of the TUN device.
    #[must_use]
    pub fn tun_name(&self) -> &str {
        &self.tun_name
    }

    /// Sets the lifetime limits of SA `id` (counted from its installation).
    ///
    /// # Errors
    /// [`KernelError::NotFound`].
    pub async fn set_lifetime(&self, id: SaId, lifetime: Lifetime) -> Result<(), KernelError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SetLifetime(id, lifetime, tx))?;
        match rx.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(KernelError::NotFound(id.spi)),
            Err(_) => Err(stopped()),
        }
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        // Poisoning only means a panic elsewhere; the maps stay consistent.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, cmd: Command) -> Result<(), KernelError> {
        self.ctl.send(cmd).map_err(|_| stopped())
    }

    /// Removes SA `id` from the datapath and the registry; returns the
    /// routes no SA needs any more.
    async fn remove(&self, id: SaId) -> Result<Vec<Prefix>, KernelError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Delete(id, tx))?;
        let found = rx.await.map_err(|_| stopped())?;
        match self.control().forget_sa(id) {
            Some(gone) => Ok(gone),
            None if found => Ok(Vec::new()),
            None => Err(KernelError::NotFound(id.spi)),
        }
    }

    /// Adds routes new to the table (undoing nothing on failure: the
    /// caller rolls back).
    async fn add_routes(&self, routes: Routes) -> Result<(), KernelError> {
        for (prefix, src) in routes {
            route::add(&self.tun_name, prefix, src)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    async fn del_routes(&self, prefixes: Vec<Prefix>) {
        for prefix in prefixes {
            route::del(&self.tun_name, prefix).await;
        }
    }
}

impl Kernel for UserspaceKernel {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn carries_traffic(&self) -> bool {
        true
    }

    /// # Errors
    /// [`KernelError::Unsupported`] for a transform the datapath lacks, and
    /// for transport mode with UDP encapsulation.
    async fn add_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        if sa.mode == IpsecMode::Transport && sa.encap.is_some() {
            // RFC 3948 §3.1.2: transport mode through a NAT must fix up the
            // TCP/UDP checksums with the NAT-OA addresses, which `SaSpec`
            // does not carry.
            return Err(unsupported(
                "transport mode with UDP encapsulation: the NAT-OA checksum fix-up \
                 (RFC 3948 §3.1.2) is not implemented"
                    .into(),
            ));
        }
        let opts = EspOptions { esn: sa.esn };
        let entry = SadEntry::new(&sa, opts, &mut OsRandom, Instant::now())
            .map_err(|e| unsupported(e.to_string()))?;
        let installed = Installed {
            src: sa.src,
            mode: sa.mode,
            encap: sa.encap,
            direction: sa.direction,
            reqid: sa.reqid,
            transform: entry.esp().transform().to_string(),
            counters: entry.counters().clone(),
            routes: match sa.direction {
                SaDirection::Outbound => route::plan(&sa.selectors),
                SaDirection::Inbound => Vec::new(),
            },
        };
        let (tx, rx) = oneshot::channel();
        self.send(Command::Add(Box::new(entry), tx))?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(|Exists(spi)| KernelError::Exists(spi))?;
        let new_routes = {
            let mut control = self.control();
            let new = control.routes.acquire(&installed.routes);
            control.sas.insert(sa.id, installed);
            new
        };
        if let Err(e) = self.add_routes(new_routes).await {
            let _ = self.delete_sa(sa.id).await;
            return Err(e);
        }
        Ok(())
    }

    /// Draws random SPIs (never below 256, RFC 4303 §2.1) until one is
    /// free; the datapath is the only user of its SPI space.
    async fn alloc_spi(&self, _src: IpAddr, dst: IpAddr, _reqid: u32) -> Result<u32, KernelError> {
        let control = self.control();
        for _ in 0..64 {
            let mut b = [0u8; 4];
            Random::fill(&mut OsRandom, &mut b).map_err(|e| failed(e.to_string()))?;
            let spi = u32::from_be_bytes(b);
            if spi >= 256 && !control.sas.contains_key(&SaId { dst, spi }) {
                return Ok(spi);
            }
        }
        Err(failed("no free SPI after 64 draws".into()))
    }

    /// Changes lifetime and UDP encapsulation in place (counters and the
    /// replay window stay); keys, mode and selectors cannot change.
    async fn update_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Update(sa.id, sa.lifetime, sa.encap, tx))?;
        if !rx.await.map_err(|_| stopped())? {
            return Err(KernelError::NotFound(sa.id.spi));
        }
        if let Some(i) = self.control().sas.get_mut(&sa.id) {
            i.encap = sa.encap;
        }
        Ok(())
    }

    async fn delete_sa(&self, id: SaId) -> Result<(), KernelError> {
        let gone = self.remove(id).await?;
        self.del_routes(gone).await;
        Ok(())
    }

    async fn list_sas(&self) -> Vec<SaId> {
        self.control().sas.keys().copied().collect()
    }

    /// Outbound `Protect` and `Discard` policies route their destination
    /// range into the TUN device at once (a "trap" policy: the first packet
    /// reaches the datapath before any SA exists, and raises the ACQUIRE),
    /// sharing routes with SAs. `Bypass` and inbound policies are recorded
    /// only (see [`super::policy`]).
    async fn add_policy(&self, policy: PolicySpec) -> Result<(), KernelError> {
        let (selector, direction) = (policy.selector.clone(), policy.direction);
        let routes = policy_routes(&policy);
        let stored = policy.clone();
        let (tx, rx) = oneshot::channel();
        self.send(Command::AddPolicy(policy, tx))?;
        rx.await.map_err(|_| stopped())?;
        let (new, gone) = {
            let mut control = self.control();
            let new = control.routes.acquire(&routes);
            let old = take_policy(&mut control.policies, &selector, direction);
            let gone = control.routes.release(&old.unwrap_or_default());
            control.policies.push((stored, routes));
            (new, gone)
        };
        self.del_routes(gone).await;
        if let Err(e) = self.add_routes(new).await {
            let _ = self.delete_policy(selector, direction).await;
            return Err(e);
        }
        Ok(())
    }

    async fn delete_policy(
        &self,
        selector: Selector,
        direction: SaDirection,
    ) -> Result<(), KernelError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::DeletePolicy(selector.clone(), direction, tx))?;
        let found = rx.await.map_err(|_| stopped())?;
        let gone = {
            let mut control = self.control();
            let routes = take_policy(&mut control.policies, &selector, direction);
            if !found && routes.is_none() {
                return Err(no_policy());
            }
            control.routes.release(&routes.unwrap_or_default())
        };
        self.del_routes(gone).await;
        Ok(())
    }

    async fn get_sa(&self, id: SaId) -> Result<SaInfo, KernelError> {
        let control = self.control();
        let sa = control.sas.get(&id).ok_or(KernelError::NotFound(id.spi))?;
        Ok(SaInfo {
            id,
            src: sa.src,
            direction: sa.direction,
            mode: sa.mode,
            reqid: sa.reqid,
            encap: sa.encap,
            counters: Counters {
                bytes: sa.counters.bytes(),
                packets: sa.counters.packets(),
            },
        })
    }

    async fn flush_sas(&self) -> Result<(), KernelError> {
        for id in self.list_sas().await {
            match self.delete_sa(id).await {
                Ok(()) | Err(KernelError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn list_policies(&self) -> Vec<PolicySpec> {
        self.control()
            .policies
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    async fn flush_policies(&self) -> Result<(), KernelError> {
        for p in self.list_policies().await {
            self.delete_policy(p.selector, p.direction).await?;
        }
        Ok(())
    }

    /// Carries ACQUIREs and the SAs' soft and hard expiries (a hard expiry
    /// has deleted the SA). The stream ends when the datapath task has
    /// stopped (the TUN device failed): the backend no longer carries
    /// traffic, and every later call fails.
    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<KernelEvent>> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The routes an installed policy holds.
fn policy_routes(p: &PolicySpec) -> Routes {
    let routed = match p.action {
        PolicyAction::Protect { .. } | PolicyAction::Discard => true,
        PolicyAction::Bypass => false,
    };
    if routed && p.direction == SaDirection::Outbound {
        route::plan(std::slice::from_ref(&p.selector))
    } else {
        Vec::new()
    }
}

/// Removes the policy entry for `selector` and `direction`; returns its
/// routes.
fn take_policy(
    policies: &mut Vec<(PolicySpec, Routes)>,
    selector: &Selector,
    direction: SaDirection,
) -> Option<Routes> {
    let at = policies
        .iter()
        .position(|(p, _)| p.selector == *selector && p.direction == direction)?;
    Some(policies.remove(at).1)
}

impl Drop for UserspaceKernel {
    fn drop(&mut self) {
        self.task.abort();
        // The TUN device (and its routes) goes with the aborted task; the
        // rule is ours to remove.
        route::remove_rules_blocking();
    }
}

impl std::fmt::Debug for UserspaceKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserspaceKernel")
            .field("tun_name", &self.tun_name)
            .finish_non_exhaustive()
    }
}

fn unsupported(what: String) -> KernelError {
    KernelError::Unsupported {
        backend: BACKEND,
        what,
    }
}

fn failed(what: String) -> KernelError {
    KernelError::Failed {
        backend: BACKEND,
        what,
    }
}

fn no_policy() -> KernelError {
    KernelError::Unsupported {
        backend: BACKEND,
        what: "no such policy".into(),
    }
}

fn stopped() -> KernelError {
    failed("the datapath task has stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn policy(action: PolicyAction, direction: SaDirection) -> PolicySpec {
        PolicySpec {
            selector: Selector {
                src: (ip("192.0.2.1"), ip("192.0.2.1")),
                dst: (ip("192.0.2.2"), ip("192.0.2.2")),
                proto: 0,
                src_port: 0,
                dst_port: 0,
            },
            direction,
            action,
            tunnel: None,
        }
    }

    #[test]
    fn outbound_protect_and_discard_policies_route_their_destination() {
        let protect = PolicyAction::Protect {
            reqid: 1,
            mode: IpsecMode::Transport,
        };
        for action in [protect, PolicyAction::Discard] {
            let routes = policy_routes(&policy(action, SaDirection::Outbound));
            let text: Vec<String> = routes.iter().map(|(p, _)| p.to_string()).collect();
            assert_eq!(text, ["192.0.2.2/32"]);
            assert!(policy_routes(&policy(action, SaDirection::Inbound)).is_empty());
        }
        let bypass = policy(PolicyAction::Bypass, SaDirection::Outbound);
        assert!(policy_routes(&bypass).is_empty());
    }

    #[test]
    fn policies_are_taken_by_selector_and_direction() {
        let p = policy(PolicyAction::Discard, SaDirection::Outbound);
        let mut table = vec![(p.clone(), Vec::new())];
        assert!(take_policy(&mut table, &p.selector, SaDirection::Inbound).is_none());
        assert!(take_policy(&mut table, &p.selector, SaDirection::Outbound).is_some());
        assert!(table.is_empty());
    }

    #[test]
    fn forgetting_an_expired_sa_keeps_the_route_its_trap_policy_holds() {
        let protect = PolicyAction::Protect {
            reqid: 1,
            mode: IpsecMode::Transport,
        };
        let trap = policy_routes(&policy(protect, SaDirection::Outbound));
        let id = SaId {
            dst: ip("192.0.2.2"),
            spi: 0x1001,
        };
        let installed = || Installed {
            src: ip("192.0.2.1"),
            mode: IpsecMode::Transport,
            encap: None,
            direction: SaDirection::Outbound,
            reqid: 1,
            transform: String::new(),
            counters: Arc::default(),
            routes: trap.clone(),
        };
        let mut control = Control::default();
        assert_eq!(control.routes.acquire(&trap).len(), 1, "the policy's route");
        assert!(control.routes.acquire(&trap).is_empty(), "shared by the SA");
        control.sas.insert(id, installed());
        assert_eq!(control.forget_sa(id), Some(Vec::new()), "the trap stays");
        assert_eq!(control.forget_sa(id), None, "forgotten once");
        // Without a policy, the SA's route goes with it.
        let mut control = Control::default();
        control.routes.acquire(&trap);
        control.sas.insert(id, installed());
        let gone = control.forget_sa(id).expect("registered");
        assert_eq!(gone, trap.iter().map(|(p, _)| *p).collect::<Vec<_>>());
    }
}
