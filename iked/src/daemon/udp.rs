//! IKE sockets: port 500 and the NAT-T port 4500 on every listen address.
//!
//! On port 4500 IKE travels behind a four-zero non-ESP marker and ESP
//! without one (RFC 3948 §2.2). iked owns port 4500 and hands ESP to the
//! userspace datapath through an [`EspSink`] (one owner of the port, so no
//! SO_REUSEPORT steering is needed); with no datapath, ESP is counted and
//! dropped, never mistaken for IKE.
//!
//! With the datapath, port 4500 also has `UDP_GRO`: the kernel coalesces a
//! burst of equal-sized datagrams of one flow into one read and says the
//! segment size. Such a read goes to the datapath whole when every segment
//! is ESP (the hand-off record carries the size; spmd splits it); anything
//! else is split here first and each datagram classified on its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::ikev2::NAT_T_PORT;
use crate::ikev2::output::Path;

/// Largest datagram we accept (IKE messages are far smaller; this bounds memory).
const MAX_DATAGRAM: usize = 65_535;

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
    pub esp_dropped: Arc<AtomicU64>,
    /// IKE datagrams dropped because the daemon could not keep up.
    pub ike_dropped: Arc<AtomicU64>,
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
        let ike_dropped = Arc::new(AtomicU64::new(0));
        for addr in listen {
            let mut nat_t = *addr;
            nat_t.set_port(NAT_T_PORT);
            for a in [*addr, nat_t] {
                if socks.iter().any(|(l, _)| *l == a) {
                    continue;
                }
                let sock = UdpSocket::bind(a)
                    .await
                    .with_context(|| format!("cannot bind UDP {a}"))?;
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
                    ike_dropped: ike_dropped.clone(),
                };
                tokio::spawn(read_loop(a, sock.clone(), tx.clone(), sink, gro));
                socks.push((a, sock));
            }
        }
        Ok(Self {
            socks,
            esp_dropped,
            ike_dropped,
        })
    }

    /// The port-4500 sockets, for the datapath to send ESP-in-UDP from.
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
    /// IKE datagrams dropped because the daemon's queue was full.
    ike_dropped: Arc<AtomicU64>,
}

async fn read_loop(
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<Received>,
    esp: EspRoute,
    gro: bool,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let got = if gro {
            sock.async_io(tokio::io::Interest::READABLE, || recv_gro(&sock, &mut buf))
                .await
        } else {
            sock.recv_from(&mut buf).await.map(|(n, r)| (n, r, n))
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
                if handle(local, remote, d, &tx, &esp).is_break() {
                    return;
                }
            }
            continue;
        }
        if handle(local, remote, data, &tx, &esp).is_break() {
            return;
        }
    }
}

/// One `recvmsg` on a socket with `UDP_GRO`: the length, the sender and the
/// segment size (the length itself when nothing was coalesced).
fn recv_gro(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr, usize)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd as _;
    let mut space = nix::cmsg_space!(libc::c_int);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let n = msg.bytes;
    let mut segment = n;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::UdpGroSegments(s) = c {
            segment = usize::try_from(s).unwrap_or(n).clamp(1, n.max(1));
        }
    }
    let remote = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                })
        })
        .ok_or_else(|| std::io::Error::other("datagram without a sender address"))?;
    Ok((n, remote, segment))
}

/// Whether every `segment`-sized datagram of `data` is ESP (no non-ESP
/// marker, no keepalive).
fn all_esp(data: &[u8], segment: usize) -> bool {
    segment > 0 && data.chunks(segment).all(|d| strip_marker(d).is_err())
}

/// Classifies one datagram read on `local`: IKE to the daemon, ESP to the
/// datapath. `Break` when the daemon is gone.
fn handle(
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
    tx: &mpsc::Sender<Received>,
    esp: &EspRoute,
) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow;
    let ike = if local.port() == NAT_T_PORT {
        strip_marker(data)
    } else {
        Ok(Some(data))
    };
    let ike = match ike {
        Ok(Some(ike)) => ike,
        Ok(None) => return ControlFlow::Continue(()),
        Err(esp_packet) => {
            match &esp.sink {
                Some(sink) => sink(local, remote, esp_packet.len(), esp_packet),
                None => {
                    esp.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            return ControlFlow::Continue(());
        }
    };
    let msg = Received {
        path: Path { local, remote },
        bytes: ike.to_vec(),
    };
    // Never block this reader: on port 4500 it also feeds ESP to the
    // datapath, which an IKE flood must not stall. Excess IKE is dropped.
    match tx.try_send(msg) {
        Ok(()) => ControlFlow::Continue(()),
        Err(mpsc::error::TrySendError::Full(_)) => {
            esp.ike_dropped.fetch_add(1, Ordering::Relaxed);
            ControlFlow::Continue(())
        }
        // The daemon is shutting down.
        Err(mpsc::error::TrySendError::Closed(_)) => ControlFlow::Break(()),
    }
}

/// RFC 3948 §2.2: IKE behind four zero octets (`Ok(Some)`); a single 0xff
/// is a NAT keepalive (`Ok(None)`); anything else is ESP (`Err`).
fn strip_marker(data: &[u8]) -> Result<Option<&[u8]>, &[u8]> {
    match data {
        [0, 0, 0, 0, rest @ ..] => Ok(Some(rest)),
        [0xff] => Ok(None),
        esp => Err(esp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_separates_ike_from_esp_and_keepalives() {
        assert_eq!(strip_marker(&[0, 0, 0, 0, 7, 8]), Ok(Some(&[7u8, 8][..])));
        assert_eq!(strip_marker(&[0xff]), Ok(None));
        assert_eq!(strip_marker(&[1, 2, 3, 4, 5]), Err(&[1u8, 2, 3, 4, 5][..]));
    }

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
    async fn gro_reads_give_the_segment_size_and_the_sender() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gro =
            nix::sys::socket::setsockopt(&rx, nix::sys::socket::sockopt::UdpGroSegment, &true)
                .is_ok();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        for _ in 0..3 {
            tx.send_to(&[7u8; 100], to).await.unwrap();
        }
        tx.send_to(&[7u8; 40], to).await.unwrap();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut total = 0;
        while total < 340 {
            let (n, from, segment) = rx
                .async_io(tokio::io::Interest::READABLE, || recv_gro(&rx, &mut buf))
                .await
                .unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert!(segment == 100 || segment == n, "{segment} of {n}");
            assert!(gro || segment == n);
            total += n;
        }
        assert_eq!(total, 340);
    }
}
