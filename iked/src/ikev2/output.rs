//! What an IKE SA asks its driver to do, and what it reports.

use std::net::SocketAddr;

use pfkey::SaSpec;

use crate::ikev2::error::Error;

/// The two ends of a datagram as the driver saw or must use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Path {
    /// Our address and port (500 or 4500).
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

/// A CHILD SA ready for the kernel: both directions.
#[derive(Debug, Clone)]
pub struct ChildSa {
    /// SA for packets from the peer; install it first.
    pub inbound: SaSpec,
    /// SA for packets to the peer.
    pub outbound: SaSpec,
    /// strongSwan-style algorithm summary, e.g. `AES_GCM_16-128`.
    pub esp: String,
    /// Negotiated selectors, for the log line: `local === remote`.
    pub ts: String,
}

/// A request to the driver. Drain after every `handle_*` call, in order:
/// a responder's `InstallChild` precedes the `Send` that completes the
/// exchange, so the inbound SA is in place before the peer can use it.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram. On port 4500 the driver adds the non-ESP marker.
    Send {
        /// Where from and to.
        path: Path,
        /// The IKE message.
        bytes: Vec<u8>,
    },
    /// Send a NAT-keepalive (a single 0xFF octet, RFC 3948 §2.3) on the
    /// path's port-4500 socket, to keep our NAT's mapping open.
    NatKeepalive {
        /// Where from and to.
        path: Path,
    },
    /// Install both SAs of a CHILD SA.
    InstallChild(Box<ChildSa>),
    /// Remove both SAs of a CHILD SA.
    DeleteChild {
        /// Our inbound SA.
        inbound: pfkey::SaId,
        /// Our outbound SA.
        outbound: pfkey::SaId,
    },
    /// Something the operator should hear about.
    Event(Event),
}

/// Lifecycle events, one operator log line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// IKE_AUTH completed.
    IkeEstablished {
        /// Peer identity as authenticated.
        peer_id: String,
        /// Algorithm summary.
        suite: String,
        /// Whether a NAT (real or claimed) made us use UDP encapsulation.
        nat: bool,
    },
    /// A CHILD SA could not be created or rekeyed. For the CHILD SA of
    /// IKE_AUTH, the initiator then deletes the IKE SA.
    ChildFailed(Error),
    /// The IKE SA is gone; `Error::LocallyClosed` and `Error::DeletedByPeer`
    /// are the normal endings.
    IkeClosed(Error),
    /// The IKE SA was rekeyed; its CHILD SAs moved to the new one.
    IkeRekeyed {
        /// Our SPI of the new IKE SA.
        new_spi: u64,
    },
    /// The peer deleted a CHILD SA (for example the old one after a rekey).
    ChildDeletedByPeer,
}
