//! iked's end of the ESP-in-UDP hand-off to spmd's userspace datapath
//! (`pfkey::handoff` explains the choice): spmd sends ESP-in-UDP from the
//! sockets attached here and reads them, passing IKE back; iked's own
//! readers pause meanwhile and forward any ESP they read before or after.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use pfkey::handoff::{FromSpmd, HandoffSender};
use tokio::task::JoinHandle;

use super::udp::{EspSink, Sockets};

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
    /// ESP iked read but could not hand to spmd: no connection, a failed
    /// send, or (added when a connection is replaced) a full queue.
    lost: Arc<AtomicU64>,
}

impl EspHandoff {
    /// A hand-off to the socket at `path`, not connected yet.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            sender: Arc::default(),
            returns: Arc::default(),
            connections: Arc::default(),
            lost: Arc::default(),
        }
    }

    /// What the port-4500 readers call for each ESP datagram. The read
    /// lock is uncontended except for the instant of a reconnect.
    pub(crate) fn sink(&self) -> EspSink {
        let sender = self.sender.clone();
        let lost = self.lost.clone();
        Arc::new(move |local, remote, segment: usize, packets: &[u8]| {
            let guard = sender.read().unwrap_or_else(PoisonError::into_inner);
            let Some(s) = guard.as_ref() else {
                lost.fetch_add(1, Ordering::Relaxed);
                return;
            };
            // One datagram, or several of `segment` bytes (GRO; the
            // segment size of a UDP payload always fits in 16 bits).
            let sent = match u16::try_from(segment) {
                Ok(seg) if segment < packets.len() => {
                    s.forward_segmented(local, remote, seg, packets)
                }
                _ => s.forward(local, remote, packets),
            };
            if let Err(e) = sent {
                lost.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("ESP hand-off to spmd failed: {e}");
            }
        })
    }

    /// ESP-in-UDP reads (a datagram, or a coalesced run) iked could not
    /// hand to spmd since it started, for `show status`.
    pub(crate) fn counters(&self) -> [(String, u64); 1] {
        let current = self
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |s| s.dropped());
        let lost = self.lost.load(Ordering::Relaxed) + current;
        [("esp_dropped_handoff".to_owned(), lost)]
    }

    /// (Re)connects and attaches every port-4500 socket of `sockets`.
    /// iked keeps reading them until spmd says its datapath reads every
    /// one; then its readers pause for as long as this connection lasts.
    pub(crate) fn connect(&self, sockets: &Arc<Sockets>) {
        let sender = match HandoffSender::connect(&self.path) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(
                    "cannot reach spmd's ESP hand-off socket {}: {e}; ESP-in-UDP will not flow",
                    self.path.display()
                );
                return;
            }
        };
        // A new connection: iked reads until this one's datapath does,
        // whatever an earlier connection left.
        let conn = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        sockets.datapath_reads(None);
        let mut expected = HashSet::new();
        for (local, sock) in sockets.nat_t_sockets() {
            match sender.attach(local, &*sock) {
                Ok(()) => {
                    expected.insert(local);
                    tracing::info!("ESP-in-UDP on {local} handed to spmd's datapath");
                }
                Err(e) => tracing::error!("cannot attach {local} to spmd's datapath: {e}"),
            }
        }
        // Every socket must be acknowledged: one left with iked alone must
        // still be read here.
        let all = expected.len() == sockets.nat_t_sockets().count();
        let returns = tokio::spawn(read_from_spmd(
            sender.clone(),
            sockets.clone(),
            conn,
            all.then_some(expected),
        ));
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
        if let Some(old) = old {
            old.shutdown();
            self.lost.fetch_add(old.dropped(), Ordering::Relaxed);
            if old.dropped() > 0 {
                tracing::warn!(
                    "{} ESP-in-UDP datagrams were dropped on the way to spmd",
                    old.dropped()
                );
            }
        }
    }
}

/// Reads what spmd sends on connection `conn` until it ends: IKE its
/// datapath passes back goes to the daemon; once it reads every socket
/// in `expected` (`None`: not all could be attached), iked's readers
/// pause. However this ends (spmd closed the connection, an error, or a
/// newer connection aborted this task), they read again unless a newer
/// connection says otherwise.
async fn read_from_spmd(
    sender: Arc<HandoffSender>,
    sockets: Arc<Sockets>,
    conn: u64,
    mut expected: Option<HashSet<SocketAddr>>,
) {
    /// Resumes iked's reads when the task ends, aborted or not.
    struct Resume(Arc<Sockets>, u64);
    impl Drop for Resume {
        fn drop(&mut self) {
            if self.0.datapath_stopped(self.1) {
                tracing::info!("spmd's datapath stopped reading port 4500; iked reads it again");
            }
        }
    }
    let _resume = Resume(sockets.clone(), conn);
    let input = sockets.ike_input();
    let mut buf = vec![0u8; pfkey::handoff::MAX_RECORD];
    loop {
        match sender.next_from_spmd(&mut buf).await {
            Ok(Some(FromSpmd::Datagram {
                local,
                remote,
                datagram,
            })) => {
                if input.deliver_datagram(local, remote, datagram).is_break() {
                    break;
                }
            }
            Ok(Some(FromSpmd::Reading { local })) => {
                if let Some(waiting) = expected.as_mut()
                    && waiting.remove(&local)
                    && waiting.is_empty()
                {
                    expected = None;
                    sockets.datapath_reads(Some(conn));
                    tracing::info!(
                        "spmd's datapath reads port 4500 and passes IKE back; iked's readers pause"
                    );
                }
            }
            Ok(None) => {
                tracing::info!("spmd closed the ESP hand-off");
                break;
            }
            Err(e) => {
                tracing::warn!("ESP hand-off from spmd failed: {e}; closing it");
                // spmd then lets go of the sockets instead of reading them
                // for nobody.
                sender.shutdown();
                break;
            }
        }
    }
}
