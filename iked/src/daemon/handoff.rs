//! iked's end of the ESP-in-UDP hand-off to spmd's userspace datapath
//! (`pfkey::handoff` explains the choice): iked reads port 4500, keeps IKE,
//! and forwards ESP; spmd sends ESP-in-UDP from the sockets attached here.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use pfkey::handoff::HandoffSender;

use super::udp::{EspSink, Sockets};

/// The connection to spmd's hand-off socket, replaced when spmd restarts.
#[derive(Debug, Clone)]
pub(crate) struct EspHandoff {
    path: PathBuf,
    sender: Arc<RwLock<Option<HandoffSender>>>,
}

impl EspHandoff {
    /// A hand-off to the socket at `path`, not connected yet.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            sender: Arc::default(),
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

    /// (Re)connects and attaches every port-4500 socket of `sockets`.
    pub(crate) fn connect(&self, sockets: &Sockets) {
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
        for (local, sock) in sockets.nat_t_sockets() {
            match sender.attach(local, &*sock) {
                Ok(()) => tracing::info!("ESP-in-UDP on {local} handed to spmd's datapath"),
                Err(e) => tracing::error!("cannot attach {local} to spmd's datapath: {e}"),
            }
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
