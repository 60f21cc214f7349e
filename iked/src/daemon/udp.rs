//! IKE sockets: port 500 and the NAT-T port 4500 on every listen address.
//!
//! On port 4500 IKE travels behind a four-zero non-ESP marker and ESP
//! without one (RFC 3948 §2.2). iked owns port 4500 here; with no ESP
//! datapath attached, ESP arriving there is counted and dropped, never
//! mistaken for IKE.

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

/// All bound sockets.
pub struct Sockets {
    socks: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// ESP packets that arrived on port 4500 with no datapath to take them.
    pub esp_dropped: Arc<AtomicU64>,
}

impl Sockets {
    /// Binds `addr` and `addr:4500` for every listen address, and starts a
    /// reader task per socket feeding `tx`.
    ///
    /// # Errors
    /// When an address cannot be bound (names it).
    pub async fn bind(listen: &[SocketAddr], tx: &mpsc::Sender<Received>) -> anyhow::Result<Self> {
        let mut socks = Vec::new();
        let esp_dropped = Arc::new(AtomicU64::new(0));
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
                let sock = Arc::new(sock);
                tokio::spawn(read_loop(a, sock.clone(), tx.clone(), esp_dropped.clone()));
                socks.push((a, sock));
            }
        }
        Ok(Self { socks, esp_dropped })
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

async fn read_loop(
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<Received>,
    esp_dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, remote) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("receive on {local} failed: {e}");
                continue;
            }
        };
        let data = buf.get(..n).unwrap_or_default();
        let ike = if local.port() == NAT_T_PORT {
            strip_marker(data, &esp_dropped)
        } else {
            Some(data)
        };
        let Some(ike) = ike else { continue };
        let msg = Received {
            path: Path { local, remote },
            bytes: ike.to_vec(),
        };
        if tx.send(msg).await.is_err() {
            return; // daemon shutting down
        }
    }
}

/// RFC 3948 §2.2: IKE behind four zero octets; a single 0xff is a NAT
/// keepalive; anything else is ESP.
fn strip_marker<'a>(data: &'a [u8], esp_dropped: &AtomicU64) -> Option<&'a [u8]> {
    match data {
        [0, 0, 0, 0, rest @ ..] => Some(rest),
        [0xff] => None,
        _ => {
            esp_dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_separates_ike_from_esp_and_keepalives() {
        let drops = AtomicU64::new(0);
        assert_eq!(
            strip_marker(&[0, 0, 0, 0, 7, 8], &drops),
            Some(&[7u8, 8][..])
        );
        assert_eq!(strip_marker(&[0xff], &drops), None);
        assert_eq!(strip_marker(&[1, 2, 3, 4, 5], &drops), None);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }
}
