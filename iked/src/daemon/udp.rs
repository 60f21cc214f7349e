//! IKE sockets: port 500 and the NAT-T port 4500 on every listen address.
//!
//! On port 4500 IKE travels behind a four-zero non-ESP marker and ESP
//! without one (RFC 3948 §2.2). iked owns port 4500 (binds it, keeps it
//! across spmd restarts). With the userspace datapath, spmd reads it too
//! (`pfkey::handoff`): once spmd says its datapath reads every port-4500
//! socket, iked's own 4500 readers pause ([`Sockets::datapath_reads`])
//! and IKE comes back from spmd through [`IkeInput`]; when that hand-off
//! connection ends, they read again. Whatever ESP iked reads itself
//! (before that, or without spmd) goes to the datapath through an
//! [`EspSink`]; with no datapath, ESP is counted and dropped, never
//! mistaken for IKE.
//!
//! With the datapath, port 4500 also has `UDP_GRO`: the kernel coalesces a
//! burst of equal-sized datagrams of one flow into one read and says the
//! segment size. Such a read goes to the datapath whole when every segment
//! is ESP (the hand-off record carries the size; spmd splits it); anything
//! else is split here first and each datagram classified on its own.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use pfkey::userspace::natt::{self, NatTDatagram};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::ikev2::NAT_T_PORT;
use crate::ikev2::output::Path;

/// Largest datagram we accept (IKE messages are far smaller; this bounds memory).
const MAX_DATAGRAM: usize = 65_535;
/// How long binding waits for an address still in use.
const BIND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// A received IKE message with its path.
pub struct Received {
    /// Local and remote addresses.
    pub path: Path,
    /// The IKE message, non-ESP marker removed.
    pub bytes: Vec<u8>,
}

/// Takes ESP-in-UDP datagrams: `(local, remote, segment, packets)`, where
/// `packets` holds datagrams of `segment` bytes each, the last possibly
/// shorter (one datagram: `segment` is its length).
pub type EspSink = Arc<dyn Fn(SocketAddr, SocketAddr, usize, &[u8]) + Send + Sync>;

/// All bound sockets.
pub struct Sockets {
    socks: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// ESP packets that arrived on port 4500 with no datapath to take them.
    esp_dropped: Arc<AtomicU64>,
    /// Where received IKE goes.
    input: IkeInput,
    /// The hand-off connection (by number) whose datapath reads port 4500
    /// now; iked's 4500 readers pause while there is one.
    reader: Arc<watch::Sender<Option<u64>>>,
}

/// Where IKE messages go once read, by iked or by the datapath: the
/// daemon's queue, never waited on.
#[derive(Clone)]
pub struct IkeInput {
    tx: mpsc::Sender<Received>,
    /// IKE datagrams dropped because the daemon could not keep up.
    dropped: Arc<AtomicU64>,
}

impl IkeInput {
    /// Queues one datagram read on `local` as read (on port 4500, IKE is
    /// behind its non-ESP marker; keepalives and ESP are ignored here).
    /// `Break` when the daemon is gone.
    pub fn deliver_datagram(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> ControlFlow<()> {
        if local.port() != NAT_T_PORT {
            return self.deliver(local, remote, data);
        }
        match natt::classify(data) {
            NatTDatagram::Ike(ike) => self.deliver(local, remote, ike),
            NatTDatagram::Keepalive | NatTDatagram::Esp(_) => ControlFlow::Continue(()),
        }
    }

    /// Queues one IKE message (marker removed).
    fn deliver(&self, local: SocketAddr, remote: SocketAddr, ike: &[u8]) -> ControlFlow<()> {
        let msg = Received {
            path: Path { local, remote },
            bytes: ike.to_vec(),
        };
        // Never block the reader: on port 4500 it also feeds ESP to the
        // datapath, which an IKE flood must not stall. Excess IKE is
        // dropped.
        match self.tx.try_send(msg) {
            Ok(()) => ControlFlow::Continue(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                ControlFlow::Continue(())
            }
            // The daemon is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => ControlFlow::Break(()),
        }
    }
}

impl Sockets {
    /// Binds `addr` and `addr:4500` for every listen address, and starts a
    /// reader task per socket feeding `tx`.
    ///
    /// # Errors
    /// When an address cannot be bound (names it).
    ///
    /// `kernel_esp`: the kernel carries ESP (XFRM, PF_KEY), so the sockets
    /// get an XFRM per-socket bypass (IKE is never caught by our own
    /// policies) and port 4500 gets `UDP_ENCAP` (the kernel takes ESP-in-UDP
    /// off it and leaves IKE to us).
    pub async fn bind(
        listen: &[SocketAddr],
        tx: &mpsc::Sender<Received>,
        esp: Option<EspSink>,
        kernel_esp: bool,
    ) -> anyhow::Result<Self> {
        // With the userspace datapath, IKE must bypass its TUN routes: the
        // peer's own address may be routed into the tunnel (transport mode,
        // host-to-host), and the mark sends our packets around it.
        let mark = esp.is_some();
        let mut socks = Vec::new();
        let esp_dropped = Arc::new(AtomicU64::new(0));
        let input = IkeInput {
            tx: tx.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let reader = Arc::new(watch::Sender::new(None));
        for addr in listen {
            let mut nat_t = *addr;
            nat_t.set_port(NAT_T_PORT);
            for a in [*addr, nat_t] {
                if socks.iter().any(|(l, _)| *l == a) {
                    continue;
                }
                let sock = bind(a).await?;
                if mark {
                    pfkey::userspace::mark_socket(&sock)
                        .with_context(|| format!("cannot mark UDP {a} to bypass the datapath"))?;
                }
                if kernel_esp {
                    use std::os::fd::AsFd as _;
                    pfkey::xfrm::bypass_socket(sock.as_fd()).with_context(|| {
                        format!("cannot exempt UDP {a} from IPsec policies (IP_XFRM_POLICY)")
                    })?;
                    if a.port() == NAT_T_PORT {
                        pfkey::xfrm::enable_udp_encap(sock.as_fd())
                            .with_context(|| format!("cannot set UDP_ENCAP on {a}"))?;
                    }
                }
                // Coalesced reads for the datapath's ESP (see the module
                // doc); an old kernel without UDP_GRO reads one by one.
                let gro = mark
                    && a.port() == NAT_T_PORT
                    && nix::sys::socket::setsockopt(
                        &sock,
                        nix::sys::socket::sockopt::UdpGroSegment,
                        &true,
                    )
                    .map_err(|e| tracing::debug!("no UDP_GRO on {a}: {e}"))
                    .is_ok();
                let sock = Arc::new(sock);
                let sink = EspRoute {
                    sink: esp.clone(),
                    dropped: esp_dropped.clone(),
                };
                // Only the sockets the datapath may read pause.
                let pause = (mark && a.port() == NAT_T_PORT).then(|| reader.subscribe());
                tokio::spawn(read_loop(a, sock.clone(), input.clone(), sink, gro, pause));
                socks.push((a, sock));
            }
        }
        Ok(Self {
            socks,
            esp_dropped,
            input,
            reader,
        })
    }

    /// Drops by reason, and whether spmd's datapath reads port 4500 now
    /// (1) or iked does (0), for `show status`.
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        [
            (
                "ike_dropped_queue_full",
                self.input.dropped.load(Ordering::Relaxed),
            ),
            (
                "esp_dropped_no_datapath",
                self.esp_dropped.load(Ordering::Relaxed),
            ),
            (
                "port_4500_read_by_spmd",
                u64::from(self.reader.borrow().is_some()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Where IKE the datapath passes back goes.
    pub fn ike_input(&self) -> IkeInput {
        self.input.clone()
    }

    /// Hand-off connection `conn`'s datapath now reads every port-4500
    /// socket (`Some`): iked's own readers pause; or nobody's does yet
    /// (`None`, a new connection): they read. Either way replaces what
    /// an earlier connection left.
    pub fn datapath_reads(&self, conn: Option<u64>) {
        self.reader.send_replace(conn);
    }

    /// Hand-off connection `conn` ended: iked reads port 4500 again, unless
    /// a newer connection set the state since. Whether iked had paused
    /// for `conn`.
    pub fn datapath_stopped(&self, conn: u64) -> bool {
        self.reader.send_if_modified(|now| {
            let ours = *now == Some(conn);
            if ours {
                *now = None;
            }
            ours
        })
    }

    /// The port-4500 sockets, for the datapath to send ESP-in-UDP from and
    /// read.
    pub fn nat_t_sockets(&self) -> impl Iterator<Item = (SocketAddr, Arc<UdpSocket>)> + '_ {
        self.socks
            .iter()
            .filter(|(a, _)| a.port() == NAT_T_PORT)
            .map(|(a, s)| (*a, s.clone()))
    }

    /// Sends a NAT-keepalive: one 0xFF octet, no marker (RFC 3948 §2.3).
    pub async fn send_keepalive(&self, path: Path) {
        if let Some((_, sock)) = self.socks.iter().find(|(l, _)| *l == path.local)
            && let Err(e) = sock.send_to(&[0xff], path.remote).await
        {
            tracing::debug!("NAT-keepalive to {} failed: {e}", path.remote);
        }
    }

    /// Sends an IKE message from `path.local`, adding the non-ESP marker on 4500.
    pub async fn send(&self, path: Path, bytes: &[u8]) {
        let Some((_, sock)) = self.socks.iter().find(|(l, _)| *l == path.local) else {
            tracing::warn!(
                "no socket bound to {}; cannot send to {}",
                path.local,
                path.remote
            );
            return;
        };
        let result = if path.local.port() == NAT_T_PORT {
            let mut framed = Vec::with_capacity(bytes.len() + 4);
            framed.extend_from_slice(&[0; 4]);
            framed.extend_from_slice(bytes);
            sock.send_to(&framed, path.remote).await
        } else {
            sock.send_to(bytes, path.remote).await
        };
        if let Err(e) = result {
            tracing::warn!("send to {} failed: {e}", path.remote);
        }
    }
}

/// Where ESP read from a 4500 socket goes.
struct EspRoute {
    sink: Option<EspSink>,
    dropped: Arc<AtomicU64>,
}

/// Reads one socket for as long as the daemon runs; with `pause`, not
/// while it names a datapath that reads the socket itself.
async fn read_loop(
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    input: IkeInput,
    esp: EspRoute,
    gro: bool,
    mut pause: Option<watch::Receiver<Option<u64>>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut control = natt::gro_control_buffer();
    loop {
        if let Some(p) = pause.as_mut()
            && p.borrow_and_update().is_some()
        {
            if p.wait_for(Option::is_none).await.is_err() {
                pause = None;
            }
            continue;
        }
        let recv = async {
            if gro {
                sock.async_io(tokio::io::Interest::READABLE, || {
                    natt::recv_gro(&*sock, &mut buf, &mut control)
                })
                .await
                .map(|r| (r.len, r.remote, r.segment))
            } else {
                sock.recv_from(&mut buf).await.map(|(n, r)| (n, r, n))
            }
        };
        // Both receives are cancel-safe: a datagram is either read or
        // left queued.
        let got = match pause.as_mut() {
            Some(p) => tokio::select! {
                got = recv => got,
                changed = p.changed() => {
                    if changed.is_err() {
                        pause = None;
                    }
                    continue;
                }
            },
            None => recv.await,
        };
        let (n, remote, segment) = match got {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("receive on {local} failed: {e}");
                continue;
            }
        };
        let data = buf.get(..n).unwrap_or_default();
        if segment < n {
            // Coalesced by GRO: whole to the datapath if all of it is ESP,
            // else datagram by datagram.
            if let Some(sink) = &esp.sink
                && all_esp(data, segment)
            {
                sink(local, remote, segment, data);
                continue;
            }
            for d in data.chunks(segment.max(1)) {
                if handle(local, remote, d, &input, &esp).is_break() {
                    return;
                }
            }
            continue;
        }
        if handle(local, remote, data, &input, &esp).is_break() {
            return;
        }
    }
}

/// Whether every `segment`-sized datagram of `data` is ESP (no non-ESP
/// marker, no keepalive).
fn all_esp(data: &[u8], segment: usize) -> bool {
    segment > 0
        && data
            .chunks(segment)
            .all(|d| matches!(natt::classify(d), NatTDatagram::Esp(_)))
}

/// Classifies one datagram read on `local`: IKE to the daemon, ESP to the
/// datapath. `Break` when the daemon is gone.
fn handle(
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
    input: &IkeInput,
    esp: &EspRoute,
) -> ControlFlow<()> {
    if local.port() == NAT_T_PORT
        && let NatTDatagram::Esp(esp_packet) = natt::classify(data)
    {
        match &esp.sink {
            Some(sink) => sink(local, remote, esp_packet.len(), esp_packet),
            None => {
                esp.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        return ControlFlow::Continue(());
    }
    input.deliver_datagram(local, remote, data)
}

/// Binds UDP `addr`, waiting up to [`BIND_PATIENCE`] while the address is
/// in use: after an iked restart, spmd may take a moment to close its
/// copy of the previous iked's port-4500 socket.
async fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let deadline = tokio::time::Instant::now() + BIND_PATIENCE;
    loop {
        match UdpSocket::bind(addr).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!("UDP {addr} still in use; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            r => return r.with_context(|| format!("cannot bind UDP {addr}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coalesced_read_goes_whole_only_when_every_segment_is_esp() {
        let esp = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert!(all_esp(&esp, 4), "1234 5678 9,10");
        let mut mixed = esp;
        mixed[4..8].fill(0); // a non-ESP marker: IKE in the middle
        assert!(!all_esp(&mixed, 4));
        assert!(!all_esp(&[1, 2, 3, 4, 0xff], 4), "a trailing keepalive");
        assert!(!all_esp(&esp, 0));
    }

    #[tokio::test]
    async fn readers_pause_while_a_datapath_reads_and_resume_when_its_connection_ends() {
        let (tx, mut rx) = mpsc::channel(8);
        let sockets = Sockets {
            socks: Vec::new(),
            esp_dropped: Arc::default(),
            input: IkeInput {
                tx,
                dropped: Arc::default(),
            },
            reader: Arc::new(watch::Sender::new(None)),
        };
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let local = sock.local_addr().unwrap();
        let route = EspRoute {
            sink: None,
            dropped: Arc::default(),
        };
        let pause = Some(sockets.reader.subscribe());
        let task = tokio::spawn(read_loop(
            local,
            sock,
            sockets.ike_input(),
            route,
            false,
            pause,
        ));
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let quiet = std::time::Duration::from_millis(200);
        sockets.datapath_reads(Some(1));
        tokio::task::yield_now().await;
        peer.send_to(b"first", local).await.unwrap();
        assert!(
            tokio::time::timeout(quiet, rx.recv()).await.is_err(),
            "paused: the datagram stays queued for the datapath"
        );
        // A newer connection took over; the old one's end changes nothing.
        sockets.datapath_reads(Some(2));
        assert!(!sockets.datapath_stopped(1));
        assert!(tokio::time::timeout(quiet, rx.recv()).await.is_err());
        assert!(sockets.datapath_stopped(2));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("resumed")
            .unwrap();
        assert_eq!(got.bytes, b"first");
        assert_eq!(got.path.local, local);
        task.abort();
    }
}
