//! iked's end of the ESP-in-UDP hand-off to spmd's userspace datapath
//! (`pfkey::handoff` explains the choice): spmd sends ESP-in-UDP from the
//! sockets attached here and reads them, passing IKE back; iked's own
//! readers pause meanwhile and forward any ESP they read before or after.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use pfkey::handoff::HandoffSender;
use tokio::task::JoinHandle;

use super::udp::{EspSink, IkeInput, Sockets};

/// The connection to spmd's hand-off socket, replaced when spmd restarts.
#[derive(Debug, Clone)]
pub(crate) struct EspHandoff {
    path: PathBuf,
    sender: Arc<RwLock<Option<Arc<HandoffSender>>>>,
    /// The task reading what spmd passes back on the current connection.
    returns: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// Numbers the connections, so that a stale one's end does not resume
    /// iked's reads after a newer one took them over.
    connections: Arc<AtomicU64>,
}

impl EspHandoff {
    /// A hand-off to the socket at `path`, not connected yet.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            sender: Arc::default(),
            returns: Arc::default(),
            connections: Arc::default(),
        }
    }

    /// What the port-4500 readers call for each ESP datagram. The read
    /// lock is uncontended except for the instant of a reconnect.
    pub(crate) fn sink(&self) -> EspSink {
        let sender = self.sender.clone();
        Arc::new(move |local, remote, segment: usize, packets: &[u8]| {
            let guard = sender.read().unwrap_or_else(PoisonError::into_inner);
            let Some(s) = guard.as_ref() else { return };
            // One datagram, or several of `segment` bytes (GRO; the
            // segment size of a UDP payload always fits in 16 bits).
            let sent = match u16::try_from(segment) {
                Ok(seg) if segment < packets.len() => {
                    s.forward_segmented(local, remote, seg, packets)
                }
                _ => s.forward(local, remote, packets),
            };
            if let Err(e) = sent {
                tracing::debug!("ESP hand-off to spmd failed: {e}");
            }
        })
    }

    /// (Re)connects and attaches every port-4500 socket of `sockets`;
    /// while the connection lasts, spmd's datapath reads them and iked's
    /// readers pause.
    pub(crate) fn connect(&self, sockets: &Arc<Sockets>) {
        let sender = match HandoffSender::connect(&self.path) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    "cannot reach spmd's ESP hand-off socket {}: {e}; ESP-in-UDP will not flow",
                    self.path.display()
                );
                return;
            }
        };
        let sender = Arc::new(sender);
        let mut attached = 0;
        for (local, sock) in sockets.nat_t_sockets() {
            match sender.attach(local, &*sock) {
                Ok(()) => {
                    attached += 1;
                    tracing::info!("ESP-in-UDP on {local} handed to spmd's datapath");
                }
                Err(e) => tracing::error!("cannot attach {local} to spmd's datapath: {e}"),
            }
        }
        let conn = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let returns = tokio::spawn(read_returns(
            sender.clone(),
            sockets.ike_input(),
            sockets.clone(),
            conn,
        ));
        // Only when every socket went over: one left with iked alone must
        // still be read here.
        if attached > 0 && attached == sockets.nat_t_sockets().count() {
            sockets.datapath_reads(conn);
            tracing::info!(
                "spmd's datapath reads port 4500 and passes IKE back; iked's readers pause"
            );
        }
        if let Some(old) = self
            .returns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(returns)
        {
            old.abort();
        }
        let old = self
            .sender
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(sender);
        if let Some(old) = old
            && old.dropped() > 0
        {
            tracing::warn!(
                "{} ESP-in-UDP datagrams were dropped on the way to spmd",
                old.dropped()
            );
        }
    }
}

/// Queues the IKE spmd's datapath passes back on connection `conn` until
/// spmd closes it, then lets iked's readers take port 4500 again.
async fn read_returns(
    sender: Arc<HandoffSender>,
    input: IkeInput,
    sockets: Arc<Sockets>,
    conn: u64,
) {
    let mut buf = vec![0u8; 65_535 + pfkey::handoff::wire::HEADER_LEN];
    loop {
        match sender.next_for_iked(&mut buf).await {
            Ok(Some((local, remote, datagram))) => {
                if input.deliver_datagram(local, remote, datagram).is_break() {
                    break;
                }
            }
            Ok(None) => {
                tracing::info!("spmd closed the ESP hand-off; iked reads port 4500 again");
                break;
            }
            Err(e) => {
                tracing::warn!("ESP hand-off from spmd failed: {e}; iked reads port 4500 again");
                break;
            }
        }
    }
    sockets.datapath_stopped(conn);
}
