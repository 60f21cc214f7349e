//! What the protocol core asks its driver to do, and what it reports.

use std::net::SocketAddr;

use libracoon::ipsec::{SaId, SaSpec};

use crate::krb5::TicketKind;

/// A request to the driver. Drain after every call into the core, in order:
/// an `InstallSa` precedes the `Send` that lets the peer use the SA.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram from our KINK socket.
    Send {
        /// The peer's KINK address and port.
        to: SocketAddr,
        /// The KINK message.
        bytes: Vec<u8>,
    },
    /// Contact the KDC (blocks: do it off the event loop, then call
    /// `Engine::ticket_ready` with the outcome).
    FetchTicket {
        /// The peer's principal.
        peer: String,
        /// Service or user-to-user ticket.
        kind: TicketKind,
        /// The peer's TGT (DER `Ticket` from its KINK_TGT_REP), for
        /// [`TicketKind::UserToUser`].
        peer_tgt: Option<Vec<u8>>,
    },
    /// Install an SA; an SA with the same id is replaced.
    InstallSa(Box<SaSpec>),
    /// Remove an SA.
    DeleteSa(SaId),
    /// Something the operator should hear about: one log line each.
    Event(Event),
}

/// Lifecycle events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A pair of SAs is in place.
    Established {
        /// The remote block.
        peer: String,
        /// Our inbound and outbound SPIs.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
        /// Algorithm summary, e.g. `AES_GCM_16-128`.
        esp: String,
        /// Whether this replaced an SA pair (rekey).
        rekey: bool,
        /// Whether it took the third message (ACK).
        three_way: bool,
    },
    /// A negotiation failed; the text names the reason.
    Failed {
        /// The remote block.
        peer: String,
        /// Why.
        reason: String,
    },
    /// SAs went away (DELETE from the peer, our own delete, expiry, or the
    /// peer's EPOCH changed).
    Deleted {
        /// The remote block.
        peer: String,
        /// Our inbound SPI of the pair.
        spi_in: u32,
        /// Why.
        reason: String,
    },
    /// A message was dropped; the text says why (malformed, replay, bad
    /// checksum, unknown XID, ...).
    Dropped {
        /// Where it came from.
        from: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The peer restarted (its EPOCH changed).
    PeerRestarted {
        /// The remote block.
        peer: String,
    },
}
