//! The shell around the sans-IO core: a TUN device, raw ESP sockets and
//! iked's port-4500 sockets on one side, the [`Sad`] on the other.
//!
//! **Shape.** One tokio task owns the [`Sad`] and every datapath buffer, so
//! the per-packet path takes no lock and allocates nothing:
//!
//! - TUN read → [`Sad::encapsulate`] → raw socket (plain ESP) or the
//!   attached UDP socket (ESP-in-UDP, RFC 3948, no marker);
//! - raw socket read, or [`UserspaceKernel::handle_udp_esp`] →
//!   [`Sad::decapsulate`] → TUN write.
//!
//! `handle_udp_esp` runs on iked's task: it copies the datagram into a
//! recycled buffer from a lock-free pool and queues it for the datapath task
//! (a full queue drops the packet, counted as `backlog`). Control operations
//! (`add_sa`, `delete_sa`, ...) are messages to the same task and are
//! answered once applied, so an SA is in place when `add_sa` returns (a
//! responder installs before it answers). Counters are atomics that
//! [`UserspaceKernel::stats`] reads without stopping the datapath.
//!
//! **Routing.** See [`super::route`]: outbound SAs' destination
//! selectors are routed into the TUN device through a table of our own.
//! Traffic to the peer itself must not be routed there, or IKE and ESP
//! would loop into the tunnel; until the daemons' sockets carry an SO_MARK
//! that a rule routes around the table (strongSwan's fwmark recipe), SAs
//! whose selectors contain the peer (transport mode, host-to-host tunnels)
//! are refused with [`KernelError::Unsupported`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use libracoon::crypto::OsRandom;
use socket2::{Domain, Socket};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tun_rs::AsyncDevice;

use super::esp::EspOptions;
use super::route::{self, Prefix, RouteTable};
use super::sad::{Exists, Expiry, Lifetime, Sad, SadEntry, Transmit};
use super::socket;
use super::spd::in_range;
use super::stats::{DatapathStats, DropCounters, DropReason, SaCounters, SaStats};
use crate::{IpsecMode, Kernel, KernelError, SaDirection, SaId, SaSpec};

const BACKEND: &str = "userspace";
/// Largest packet handled (an IP datagram's maximum).
const MAX_PACKET: usize = 65_535;
/// Room for ESP header, IV, padding and ICV beyond the inner packet.
const MAX_OVERHEAD: usize = 8 + 16 + 16 + 2 + 32;
/// ESP-in-UDP datagrams queued from `handle_udp_esp`, and pooled buffers.
const UDP_QUEUE: usize = 256;
/// Initial capacity of pooled buffers (a datagram on a 1500-byte path).
const UDP_BUF: usize = 2048;
/// Packets handled per readiness event before yielding to other sources.
const BURST: usize = 64;

/// How to set up the datapath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserspaceConfig {
    /// Name of the TUN device to create, e.g. `r3esp0`.
    pub tun_name: String,
    /// Its MTU, e.g. 1400 (leaves room for ESP and UDP on a 1500-byte path).
    pub mtu: u16,
}

/// The userspace ESP datapath as a [`Kernel`] backend.
///
/// Call order: [`start`](Self::start) inside a tokio runtime; then, for
/// NAT-T, [`attach_nat_t_socket`](Self::attach_nat_t_socket) per port-4500
/// socket before installing SAs with `encap`, and
/// [`handle_udp_esp`](Self::handle_udp_esp) for each ESP datagram read from
/// it; [`Kernel::add_sa`]/[`Kernel::delete_sa`] as SAs come and go. Dropping
/// the last handle stops the task, deletes the TUN device and removes the
/// routing rule.
pub struct UserspaceKernel {
    tun_name: String,
    ctl: mpsc::UnboundedSender<Command>,
    udp_in: mpsc::Sender<Datagram>,
    pool: Arc<ArrayQueue<Vec<u8>>>,
    drops: Arc<DropCounters>,
    control: Mutex<Control>,
    expiries: Mutex<Option<mpsc::UnboundedReceiver<Expiry>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the control side remembers about installed SAs (no keys).
#[derive(Debug, Default)]
struct Control {
    sas: BTreeMap<SaId, Installed>,
    routes: RouteTable,
}

#[derive(Debug)]
struct Installed {
    direction: SaDirection,
    reqid: u32,
    transform: String,
    counters: Arc<SaCounters>,
    routes: Vec<(Prefix, Option<IpAddr>)>,
}

enum Command {
    Add(Box<SadEntry>, oneshot::Sender<Result<(), Exists>>),
    Delete(SaId, oneshot::Sender<bool>),
    SetLifetime(SaId, Lifetime, oneshot::Sender<bool>),
    Attach(SocketAddr, Arc<UdpSocket>),
}

struct Datagram {
    buf: Vec<u8>,
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
        let tun = tun_rs::DeviceBuilder::new()
            .name(&cfg.tun_name)
            .mtu(cfg.mtu)
            .build_async()
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
        let (exp_tx, exp_rx) = mpsc::unbounded_channel();
        let datapath = Datapath {
            sad: Sad::new(drops.clone()),
            io: Io {
                tun,
                raw4,
                raw6,
                udp: HashMap::new(),
            },
            bufs: Buffers {
                tun_in: vec![0; MAX_PACKET],
                raw_in: vec![0; MAX_PACKET],
                out: vec![0; MAX_PACKET + MAX_OVERHEAD],
            },
            ctl: ctl_rx,
            udp: udp_rx,
            pool: pool.clone(),
            expiries: exp_tx,
        };
        let task = tokio::spawn(datapath.run());
        Ok(Arc::new(Self {
            tun_name: cfg.tun_name,
            ctl,
            udp_in,
            pool,
            drops,
            control: Mutex::default(),
            expiries: Mutex::new(Some(exp_rx)),
            task,
        }))
    }

    /// Registers a UDP socket bound to `local` (port 4500) that ESP-in-UDP
    /// for SAs with `encap` leaves from. iked owns and reads it; the
    /// datapath only sends. A socket bound to the unspecified address
    /// serves every source address of its family.
    pub fn attach_nat_t_socket(&self, local: SocketAddr, sock: Arc<UdpSocket>) {
        let _ = self.ctl.send(Command::Attach(local, sock));
    }

    /// ESP-in-UDP that arrived on an attached socket (iked has already
    /// ruled out the non-ESP marker and NAT keepalives). The packet is
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

    /// The stream of lifetime events (soft and hard expiry); `None` after
    /// the first call.
    pub fn take_expiries(&self) -> Option<mpsc::UnboundedReceiver<Expiry>> {
        self.expiries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
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
        let mut control = self.control();
        let installed = control.sas.remove(&id);
        if !found && installed.is_none() {
            return Err(KernelError::NotFound(id.spi));
        }
        let routes = installed.map(|i| i.routes).unwrap_or_default();
        Ok(control.routes.release(&routes))
    }
}

impl Kernel for UserspaceKernel {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn carries_traffic(&self) -> bool {
        true
    }

    async fn add_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        check_supported(&sa)?;
        let entry = SadEntry::new(&sa, EspOptions::default(), &mut OsRandom, Instant::now())
            .map_err(|e| unsupported(e.to_string()))?;
        let installed = Installed {
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
        for (prefix, src) in new_routes {
            if let Err(e) = route::add(&self.tun_name, prefix, src).await {
                let _ = self.delete_sa(sa.id).await;
                return Err(failed(e));
            }
        }
        Ok(())
    }

    async fn delete_sa(&self, id: SaId) -> Result<(), KernelError> {
        for prefix in self.remove(id).await? {
            route::del(&self.tun_name, prefix).await;
        }
        Ok(())
    }

    async fn list_sas(&self) -> Vec<SaId> {
        self.control().sas.keys().copied().collect()
    }
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

/// Refuses what this version cannot carry without looping IKE/ESP into
/// the TUN device (see the module docs).
fn check_supported(sa: &SaSpec) -> Result<(), KernelError> {
    if sa.mode == IpsecMode::Transport {
        return Err(unsupported(
            "transport mode over the userspace datapath needs fwmark routing (SO_MARK on the \
             daemons' sockets + ip rule) so IKE and ESP bypass the TUN device; not yet done"
                .into(),
        ));
    }
    let peer = match sa.direction {
        SaDirection::Outbound => sa.id.dst,
        SaDirection::Inbound => sa.src,
    };
    let covers_peer = sa.selectors.iter().any(|s| match sa.direction {
        SaDirection::Outbound => in_range(peer, s.dst),
        SaDirection::Inbound => in_range(peer, s.src),
    });
    if covers_peer {
        return Err(unsupported(format!(
            "the peer's own address {peer} is inside the traffic selectors: routing it into the \
             TUN device would capture IKE and ESP too; host-to-host tunnels over the userspace \
             datapath need fwmark routing, not yet done"
        )));
    }
    Ok(())
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

fn stopped() -> KernelError {
    failed("the datapath task has stopped".into())
}

/// The datapath task's state.
struct Datapath {
    sad: Sad,
    io: Io,
    bufs: Buffers,
    ctl: mpsc::UnboundedReceiver<Command>,
    udp: mpsc::Receiver<Datagram>,
    pool: Arc<ArrayQueue<Vec<u8>>>,
    expiries: mpsc::UnboundedSender<Expiry>,
}

struct Io {
    tun: AsyncDevice,
    raw4: AsyncFd<Socket>,
    raw6: Option<AsyncFd<Socket>>,
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
}

struct Buffers {
    tun_in: Vec<u8>,
    raw_in: Vec<u8>,
    out: Vec<u8>,
}

impl Datapath {
    async fn run(self) {
        let Self {
            mut sad,
            mut io,
            mut bufs,
            mut ctl,
            mut udp,
            pool,
            expiries,
        } = self;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Unbiased (random start), so that no source starves the
            // others under load; `add_sa` waits for its reply, so an SA is
            // in place before anything it protects can be sent.
            tokio::select! {
                cmd = ctl.recv() => match cmd {
                    Some(cmd) => apply(cmd, &mut sad, &mut io),
                    None => break,
                },
                Some(mut d) = udp.recv() => {
                    inbound(&mut sad, &io, &mut d.buf[..]);
                    let _ = pool.push(d.buf);
                }
                r = io.tun.recv(&mut bufs.tun_in) => match r {
                    Ok(n) => {
                        outbound(&mut sad, &io, &bufs.tun_in[..n], &mut bufs.out);
                        drain_tun(&mut sad, &io, &mut bufs);
                    }
                    Err(e) => {
                        // Nothing sensible to do without the device.
                        tracing::error!(error = %e, "TUN read failed; userspace datapath stops");
                        break;
                    }
                },
                Ok(mut guard) = io.raw4.readable() => {
                    for _ in 0..BURST {
                        let Ok(r) = guard.try_io(|s| socket::recv(s.get_ref(), &mut bufs.raw_in)) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        if let Some(esp) = socket::ipv4_esp_payload(&bufs.raw_in[..n]) {
                            inbound(&mut sad, &io, &mut bufs.raw_in[esp]);
                        }
                    }
                }
                Ok(mut guard) = readable(io.raw6.as_ref()) => {
                    for _ in 0..BURST {
                        let Ok(r) = guard.try_io(|s| socket::recv(s.get_ref(), &mut bufs.raw_in)) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        inbound(&mut sad, &io, &mut bufs.raw_in[..n]);
                    }
                }
                _ = tick.tick() => sad.handle_timeout(Instant::now()),
            }
            while let Some(e) = sad.poll_expiry() {
                let _ = expiries.send(e);
            }
        }
    }
}

/// Waits until the optional socket is readable; never, if there is none.
async fn readable(
    sock: Option<&AsyncFd<Socket>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Socket>> {
    match sock {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

fn apply(cmd: Command, sad: &mut Sad, io: &mut Io) {
    match cmd {
        Command::Add(entry, reply) => {
            let _ = reply.send(sad.insert(*entry));
        }
        Command::Delete(id, reply) => {
            let _ = reply.send(sad.remove(id).is_some());
        }
        Command::SetLifetime(id, lifetime, reply) => {
            let _ = reply.send(sad.set_lifetime(id, lifetime));
        }
        Command::Attach(local, sock) => {
            io.udp.insert(local, sock);
        }
    }
}

/// Reads what else the TUN device has queued, up to a burst.
fn drain_tun(sad: &mut Sad, io: &Io, bufs: &mut Buffers) {
    for _ in 1..BURST {
        match io.tun.try_recv(&mut bufs.tun_in) {
            Ok(n) => outbound(sad, io, &bufs.tun_in[..n], &mut bufs.out),
            Err(_) => break,
        }
    }
}

fn outbound(sad: &mut Sad, io: &Io, inner: &[u8], out: &mut [u8]) {
    let Ok(tx) = sad.encapsulate(inner, out) else {
        return;
    };
    if let Err(reason) = transmit(io, tx, &out[..tx.len]) {
        sad.count_drop(reason);
    }
}

fn inbound(sad: &mut Sad, io: &Io, esp: &mut [u8]) {
    let Ok(inner) = sad.decapsulate(esp) else {
        return;
    };
    if io.tun.try_send(&esp[inner]).is_err() {
        sad.count_drop(DropReason::SendFailed);
    }
}

fn transmit(io: &Io, tx: Transmit, packet: &[u8]) -> Result<(), DropReason> {
    match tx.encap {
        None => {
            let sock = match tx.dst {
                IpAddr::V4(_) => Some(&io.raw4),
                IpAddr::V6(_) => io.raw6.as_ref(),
            };
            let sock = sock.ok_or(DropReason::SendFailed)?;
            socket::send(sock.get_ref(), tx.src, tx.dst, packet)
                .map_err(|_| DropReason::SendFailed)?;
        }
        Some(encap) => {
            let any = match tx.src {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let sock = io
                .udp
                .get(&SocketAddr::new(tx.src, encap.sport))
                .or_else(|| io.udp.get(&SocketAddr::new(any, encap.sport)))
                .ok_or(DropReason::NoSocket)?;
            sock.try_send_to(packet, SocketAddr::new(tx.dst, encap.dport))
                .map_err(|_| DropReason::SendFailed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userspace::esp::tests::spec;
    use crate::{Selector, UdpEncap};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn lan_to_lan(direction: SaDirection) -> SaSpec {
        let mut s = spec(1, (20, 128), None, vec![0; 20], Vec::new());
        s.direction = direction;
        let (a, b) = (
            (ip("198.51.100.0"), ip("198.51.100.255")),
            (ip("203.0.113.0"), ip("203.0.113.255")),
        );
        let (src, dst) = match direction {
            SaDirection::Outbound => (a, b),
            SaDirection::Inbound => (b, a),
        };
        s.selectors = vec![Selector { src, dst, proto: 0 }];
        s
    }

    #[test]
    fn gateway_tunnels_are_accepted_with_or_without_encapsulation() {
        for dir in [SaDirection::Outbound, SaDirection::Inbound] {
            let mut s = lan_to_lan(dir);
            assert_eq!(check_supported(&s), Ok(()));
            s.encap = Some(UdpEncap {
                sport: 4500,
                dport: 4500,
            });
            assert_eq!(check_supported(&s), Ok(()));
        }
    }

    #[test]
    fn transport_mode_is_refused_with_the_reason() {
        let mut s = lan_to_lan(SaDirection::Outbound);
        s.mode = IpsecMode::Transport;
        let Err(KernelError::Unsupported { backend, what }) = check_supported(&s) else {
            panic!("accepted");
        };
        assert_eq!(backend, "userspace");
        assert!(
            what.contains("transport mode") && what.contains("fwmark"),
            "{what}"
        );
    }

    #[test]
    fn selectors_containing_the_peer_are_refused_both_ways() {
        // spec(): outer 192.0.2.1 -> 192.0.2.2 for this SA's direction.
        let mut out = lan_to_lan(SaDirection::Outbound);
        out.selectors[0].dst = (ip("0.0.0.0"), ip("255.255.255.255"));
        assert!(matches!(
            check_supported(&out),
            Err(KernelError::Unsupported { .. })
        ));
        let mut inb = lan_to_lan(SaDirection::Inbound);
        inb.selectors[0].src = (ip("192.0.2.0"), ip("192.0.2.255"));
        let Err(KernelError::Unsupported { what, .. }) = check_supported(&inb) else {
            panic!("accepted");
        };
        assert!(what.contains("192.0.2.1"), "{what}");
    }
}
