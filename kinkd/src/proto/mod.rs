//! The KINK protocol core (RFC 4430), sans-IO: it never touches a socket,
//! the clock or the KDC. The driver (`crate::daemon`) feeds it datagrams,
//! ACQUIREs, expiries and the time, and drains [`Output`]s.
//!
//! Kerberos operations that only compute (AP-REQ/AP-REP, checksums,
//! KINK_ENCRYPT, the PRF) are called directly through `&mut dyn Kerberos`;
//! those that contact the KDC come out as [`Output::FetchTicket`] for the
//! driver to run off the event loop.

pub mod config;
pub mod keymat;
pub mod output;
pub mod qm;

use std::net::SocketAddr;
use std::time::Instant;

use libracoon::crypto::Random;
use libracoon::ipsec::SaId;

use crate::krb5::{Kerberos, TicketKind};

pub use config::{EspProposal, PeerConfig};
pub use output::{Event, Output};

/// Why the core refused a request from the driver or the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No `remote` block has this request ID.
    #[error("no remote with acceptable_kmp kink has reqid {0}")]
    UnknownReqid(u32),
    /// No `remote` block of that name uses KINK.
    #[error("no remote named '{0}' with acceptable_kmp kink")]
    UnknownPeer(String),
}

/// One SA pair as racoonctl shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPairStatus {
    /// The remote block.
    pub peer: String,
    /// `established`, `negotiating`, `waiting-ack`, `deleting`.
    pub state: &'static str,
    /// `initiator` or `responder` of the CREATE that made it.
    pub role: &'static str,
    /// Our inbound SPI (0 while unknown).
    pub spi_in: u32,
    /// Our outbound SPI (0 while unknown).
    pub spi_out: u32,
    /// Algorithm summary, e.g. `AES_GCM_16-128` (empty while negotiating).
    pub esp: String,
}

/// Counters for `racoonctl show status kinkd`: every dropped or refused
/// message is counted under its reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub received: u64,
    /// Not a KINK message, or a malformed one.
    pub malformed: u64,
    /// KINK_CKSUM missing or wrong, or KINK_ENCRYPT failed to decrypt.
    pub bad_checksum: u64,
    /// AP-REQ refused as a replay (KRB_AP_ERR_REPEAT): dropped silently.
    pub replayed: u64,
    /// AP-REQ refused for another Kerberos reason; answered with KRB_ERROR.
    pub krb_errors_sent: u64,
    /// KRB_ERRORs received in REPLYs.
    pub krb_errors_received: u64,
    /// KINK_ERRORs received in REPLYs.
    pub kink_errors_received: u64,
    /// REPLY/ACK with no matching transaction.
    pub unknown_xid: u64,
    /// Commands re-sent after a timeout.
    pub retransmits: u64,
    /// Cached REPLYs re-sent for a repeated command.
    pub replies_resent: u64,
    /// CREATE exchanges that installed SAs (either role).
    pub creates: u64,
    /// Negotiations that failed (either role).
    pub failures: u64,
}

/// The KINK endpoint: every peer's transactions and SA pairs.
pub struct Engine {
    peers: Vec<PeerConfig>,
    epoch: u32,
    rng: Box<dyn Random + Send>,
    outputs: std::collections::VecDeque<Output>,
    stats: Stats,
}

impl Engine {
    /// An endpoint for `peers`; `epoch` is the Unix time our state began
    /// (daemon start), sent in every AP-REQ/AP-REP for dead-peer detection.
    pub fn new(peers: Vec<PeerConfig>, epoch: u32, rng: Box<dyn Random + Send>) -> Self {
        Self {
            peers,
            epoch,
            rng,
            outputs: std::collections::VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The configured peers.
    pub fn peers(&self) -> &[PeerConfig] {
        &self.peers
    }

    /// A kernel ACQUIRE for `reqid`: start a CREATE unless one is running
    /// or SAs exist.
    ///
    /// # Errors
    /// No KINK remote has that reqid.
    pub fn acquire(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        reqid: u32,
    ) -> Result<(), Error> {
        let _ = (now, krb, reqid, self.epoch, &mut self.rng);
        Err(Error::UnknownReqid(reqid))
    }

    /// The operator's `initiate REMOTE`.
    ///
    /// # Errors
    /// No KINK remote of that name.
    pub fn initiate(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        peer: &str,
    ) -> Result<(), Error> {
        let _ = (now, krb);
        Err(Error::UnknownPeer(peer.to_owned()))
    }

    /// The outcome of an [`Output::FetchTicket`]: `Ok` once the ticket is
    /// in the backend's cache, `Err` with the KDC's complaint.
    pub fn ticket_ready(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        peer: &str,
        kind: TicketKind,
        result: Result<(), String>,
    ) {
        let _ = (now, krb, peer, kind, result);
    }

    /// A datagram arrived on our KINK socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        let _ = (now, krb, from, bytes);
        self.stats.received += 1;
    }

    /// Timers: retransmissions, ACK waits, grace periods.
    pub fn handle_timeout(&mut self, now: Instant, krb: &mut dyn Kerberos) {
        let _ = (now, krb);
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The next request to the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Deletes every SA pair with the peer named `peer` (or every peer for
    /// `all`), telling the peer with DELETE. Returns how many pairs.
    pub fn delete(&mut self, now: Instant, krb: &mut dyn Kerberos, peer: &str) -> usize {
        let _ = (now, krb, peer);
        0
    }

    /// A soft (rekey) or hard (SA gone) expiry from the kernel.
    pub fn on_expire(&mut self, now: Instant, krb: &mut dyn Kerberos, id: SaId, hard: bool) {
        let _ = (now, krb, id, hard);
    }

    /// SA pairs and negotiations, for racoonctl.
    pub fn sas(&self) -> Vec<SaPairStatus> {
        Vec::new()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}
