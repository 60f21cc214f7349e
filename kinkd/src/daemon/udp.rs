//! KINK sockets: one UDP socket per listen address (port 910 unless
//! configured), each with a reader task feeding the event loop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Largest datagram we accept: a UDP payload cannot be larger.
const MAX_DATAGRAM: usize = 65_536;

/// A received datagram.
#[derive(Debug)]
pub struct Received {
    /// Who sent it.
    pub from: SocketAddr,
    /// The KINK message.
    pub bytes: Vec<u8>,
}

/// How the sockets must be set up for the kernel backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// Nothing (memory backend).
    None,
    /// The kernel carries ESP: exempt the sockets from IPsec policies
    /// (`IP_XFRM_POLICY`), so KINK is never caught by our own policies.
    Kernel,
    /// spmd's userspace datapath: mark the sockets so their packets go
    /// around its TUN routes.
    Userspace,
}

/// All bound sockets.
pub struct Sockets {
    socks: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// Datagrams dropped because the event loop could not keep up.
    pub dropped: Arc<AtomicU64>,
}

impl Sockets {
    /// Binds every listen address and starts a reader task per socket.
    ///
    /// # Errors
    /// An address cannot be bound or set up (names it).
    pub async fn bind(
        listen: &[SocketAddr],
        tx: &mpsc::Sender<Received>,
        bypass: Bypass,
    ) -> anyhow::Result<Self> {
        let mut socks = Vec::new();
        let dropped = Arc::new(AtomicU64::new(0));
        for a in listen {
            if socks.iter().any(|(l, _)| l == a) {
                continue;
            }
            let sock = UdpSocket::bind(a)
                .await
                .with_context(|| format!("cannot bind UDP {a}"))?;
            match bypass {
                Bypass::None => {}
                Bypass::Kernel => {
                    use std::os::fd::AsFd as _;
                    pfkey::xfrm::bypass_socket(sock.as_fd()).with_context(|| {
                        format!("cannot exempt UDP {a} from IPsec policies (IP_XFRM_POLICY)")
                    })?;
                }
                Bypass::Userspace => pfkey::userspace::mark_socket(&sock)
                    .with_context(|| format!("cannot mark UDP {a} to bypass the datapath"))?,
            }
            let sock = Arc::new(sock);
            tokio::spawn(read_loop(*a, sock.clone(), tx.clone(), dropped.clone()));
            socks.push((*a, sock));
        }
        Ok(Self { socks, dropped })
    }

    /// The socket to send to `to` from: the one bound to `local` (the
    /// peer's configured local address) if any, else the first of `to`'s
    /// family.
    fn pick(&self, local: Option<IpAddr>, to: SocketAddr) -> Option<&UdpSocket> {
        pick(&self.socks, local, to).map(|s| s.as_ref())
    }

    /// Sends `bytes` to `to`; failures are logged (KINK retransmits).
    pub async fn send(&self, local: Option<IpAddr>, to: SocketAddr, bytes: &[u8]) {
        let Some(sock) = self.pick(local, to) else {
            tracing::warn!("no KINK socket of {to}'s address family; cannot send to it");
            return;
        };
        if let Err(e) = sock.send_to(bytes, to).await {
            tracing::warn!("send to {to} failed: {e}");
        }
    }
}

fn pick<S>(socks: &[(SocketAddr, S)], local: Option<IpAddr>, to: SocketAddr) -> Option<&S> {
    socks
        .iter()
        .find(|(l, _)| Some(l.ip()) == local)
        .or_else(|| socks.iter().find(|(l, _)| l.is_ipv4() == to.is_ipv4()))
        .map(|(_, s)| s)
}

async fn read_loop(
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<Received>,
    dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("receive on {local} failed: {e}");
                continue;
            }
        };
        let msg = Received {
            from,
            bytes: buf.get(..n).unwrap_or_default().to_vec(),
        };
        // Never block the reader: a flood is dropped here, counted.
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_configured_local_address_then_the_family() {
        let socks = [
            ("192.0.2.1:910".parse().unwrap(), 1),
            ("192.0.2.9:910".parse().unwrap(), 2),
            ("[2001:db8::1]:910".parse().unwrap(), 3),
        ];
        let v4: SocketAddr = "198.51.100.2:910".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::2]:910".parse().unwrap();
        assert_eq!(
            pick(&socks, Some("192.0.2.9".parse().unwrap()), v4),
            Some(&2)
        );
        assert_eq!(pick(&socks, None, v4), Some(&1));
        assert_eq!(
            pick(&socks, Some("192.0.2.77".parse().unwrap()), v6),
            Some(&3)
        );
        assert_eq!(pick(&socks[..2], None, v6), None);
    }

    #[tokio::test]
    async fn datagrams_reach_the_loop_with_their_sender() {
        let (tx, mut rx) = mpsc::channel(4);
        let sockets = Sockets::bind(&["127.0.0.1:0".parse().unwrap()], &tx, Bypass::None)
            .await
            .unwrap();
        let addr = sockets.socks[0].1.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"kink", addr).await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(got.bytes, b"kink");
        assert_eq!(got.from, client.local_addr().unwrap());
        sockets.send(None, got.from, b"back").await;
        let mut buf = [0; 8];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], addr));
    }
}
