//! The KINK protocol core (RFC 4430), sans-IO: it never touches a socket,
//! the clock or the KDC. The driver (`crate::daemon`) feeds it datagrams,
//! ACQUIREs, expiries and the time, and drains [`Output`]s.
//!
//! Kerberos operations that only compute (AP-REQ/AP-REP, checksums,
//! KINK_ENCRYPT, the PRF) are called directly through `&mut dyn Kerberos`;
//! those that contact the KDC come out as [`Output::FetchTicket`] for the
//! driver to run off the event loop, which then calls
//! [`Engine::ticket_ready`].
//!
//! The exchanges (design notes: docs/design/kink.md):
//! - CREATE, optimistic: the initiator installs its inbound SA for its
//!   first proposal before sending; a responder that takes that proposal
//!   installs both SAs and answers without ACKREQ (two messages).
//!   Otherwise the REPLY sets ACKREQ, the initiator re-keys its inbound SA
//!   and sends ACK, and the responder installs its outbound SA on the ACK.
//! - Retransmission: same XID, fresh AP-REQ each time; the responder
//!   answers a repeated XID from its reply cache after the new AP-REQ
//!   verified. A verbatim replay fails the Kerberos replay cache and is
//!   dropped without an answer.
//! - DELETE names the sender's inbound SPIs; the receiver removes its
//!   outbound SA at once and its inbound one after a grace period.
//! - Every AP-REQ/AP-REP carries the sender's EPOCH: a peer whose EPOCH
//!   changed lost its state, so our SAs with it go.

pub mod config;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod keymat;
pub mod output;
pub mod qm;

mod initiator;
mod pairs;
mod reply;
mod responder;
mod retransmit;
mod seal;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libracoon::crypto::Random;
use libracoon::ipsec::SaId;

use crate::krb5::{Kerberos, TicketKind};
use crate::wire::{Message, MessageType};

pub use config::{EspProposal, PeerConfig};
pub use output::{Event, Output};

use initiator::{Transaction, Want};
use pairs::{Pair, PairState};
use responder::CachedReply;

/// How long a deleted pair's inbound SA stays for packets in flight.
const DELETE_GRACE: Duration = Duration::from_secs(5);
/// How long a responder keeps a REPLY for retransmitted commands, and an
/// initiator keeps the ability to re-send its ACK.
const REPLY_CACHE_TIME: Duration = Duration::from_secs(60);
/// An ACQUIRE for a peer with an established pair at least this old means
/// the kernel no longer has the pair's SAs (flushed, refused, lost): the
/// pair is deleted and renegotiated. Younger pairs may simply not be
/// installed yet when an ACQUIRE raised before them arrives.
const OUT_OF_STEP_AGE: Duration = Duration::from_secs(5);
/// A ticket this close to its end is fetched again before use.
const TICKET_MARGIN_SECS: i64 = 60;

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

/// What we know about a peer's tickets and state.
#[derive(Debug, Default)]
struct PeerState {
    /// End (Unix seconds) of the ticket we hold for it, if any.
    ticket_end: Option<i64>,
    /// A FetchTicket (or GETTGT) is outstanding.
    fetching: bool,
    /// Its TGT (user-to-user), from its KINK_TGT_REP.
    tgt: Option<Vec<u8>>,
    /// Its EPOCH as last seen.
    epoch: Option<u32>,
    /// What to start once a ticket is there.
    wants: Vec<Want>,
}

/// The KINK endpoint: every peer's transactions and SA pairs.
pub struct Engine {
    peers: Vec<PeerConfig>,
    state: Vec<PeerState>,
    epoch: u32,
    rng: Box<dyn Random + Send>,
    outputs: VecDeque<Output>,
    stats: Stats,
    /// Our outstanding commands, by XID.
    transactions: HashMap<u32, Transaction>,
    /// Our REPLYs by (initiator principal, XID).
    replies: HashMap<(String, u32), CachedReply>,
    pairs: Vec<Pair>,
}

impl Engine {
    /// An endpoint for `peers`; `epoch` is the Unix time our state began
    /// (daemon start), sent in every AP-REQ/AP-REP for dead-peer detection.
    pub fn new(peers: Vec<PeerConfig>, epoch: u32, rng: Box<dyn Random + Send>) -> Self {
        let state = peers.iter().map(|_| PeerState::default()).collect();
        Self {
            peers,
            state,
            epoch,
            rng,
            outputs: VecDeque::new(),
            stats: Stats::default(),
            transactions: HashMap::new(),
            replies: HashMap::new(),
            pairs: Vec::new(),
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
        let peer = self
            .peers
            .iter()
            .position(|p| p.reqid == reqid)
            .ok_or(Error::UnknownReqid(reqid))?;
        if self.creating(peer) {
            return Ok(());
        }
        let stale: Vec<u32> = self
            .pairs
            .iter()
            .filter(|p| p.peer == peer && p.state == PairState::Established && !p.rekeying)
            .filter(|p| now.saturating_duration_since(p.created) >= OUT_OF_STEP_AGE)
            .map(|p| p.spi_in)
            .collect();
        if self.has_live_pair(peer) && stale.is_empty() {
            return Ok(());
        }
        for spi_in in stale {
            self.delete_pair(
                now,
                krb,
                peer,
                spi_in,
                "the kernel lost its SAs (ACQUIRE while established)",
            );
        }
        self.want(now, krb, peer, Want::Create { rekey_of: None });
        Ok(())
    }

    /// The kernel refused an SA we asked for: the pair cannot carry
    /// traffic, so it goes (the peer is told with DELETE), or the CREATE
    /// that wanted it is abandoned.
    pub fn install_failed(&mut self, now: Instant, krb: &mut dyn Kerberos, id: SaId) {
        if let Some(pair) = self.pairs.iter().find(|p| {
            (p.inbound == id || p.outbound == id) && !matches!(p.state, PairState::Deleting(_))
        }) {
            let (peer, spi_in) = (pair.peer, pair.spi_in);
            self.delete_pair(now, krb, peer, spi_in, "the kernel refused one of its SAs");
            return;
        }
        let xid = self
            .transactions
            .iter()
            .find(|(_, t)| t.creating() == Some(id.spi) && self.peers[t.peer].local == id.dst)
            .map(|(xid, _)| *xid);
        if let Some(tx) = xid.and_then(|x| self.transactions.remove(&x)) {
            self.give_up(krb, tx, "the kernel refused our inbound SA");
        }
    }

    /// Whether exchanges are still in flight (a stopping daemon waits for
    /// its DELETEs to be answered, up to a grace period).
    pub fn busy(&self) -> bool {
        self.transactions.values().any(|t| !t.aging())
            || self.state.iter().any(|s| !s.wants.is_empty())
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
        let idx = self
            .peers
            .iter()
            .position(|p| p.name == peer)
            .ok_or_else(|| Error::UnknownPeer(peer.to_owned()))?;
        if !self.creating(idx) {
            self.want(now, krb, idx, Want::Create { rekey_of: None });
        }
        Ok(())
    }

    /// The outcome of an [`Output::FetchTicket`]: `Ok` once the ticket is
    /// in the shared credential cache, `Err` with the KDC's complaint.
    pub fn ticket_ready(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        peer: &str,
        kind: TicketKind,
        result: Result<(), String>,
    ) {
        let Some(idx) = self.peers.iter().position(|p| p.principal == peer) else {
            return;
        };
        self.state[idx].fetching = false;
        // The fetcher put the ticket into the shared credential cache: take
        // it from there (never the KDC, never blocking).
        let loaded = result.and_then(|()| {
            let tgt = self.state[idx].tgt.clone();
            krb.load_ticket(peer, kind, tgt.as_deref())
                .map_err(|e| e.to_string())
        });
        match loaded {
            Ok(info) => {
                self.state[idx].ticket_end = Some(info.end_time);
                let wants = std::mem::take(&mut self.state[idx].wants);
                for want in wants {
                    self.start(now, krb, idx, want);
                }
            }
            Err(reason) => {
                let wants = std::mem::take(&mut self.state[idx].wants);
                for want in wants {
                    self.abandon(idx, want, &format!("no ticket for {peer}: {reason}"));
                }
            }
        }
    }

    /// A datagram arrived on our KINK socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        self.stats.received += 1;
        let msg = match Message::parse(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                self.stats.malformed += 1;
                self.dropped(from, format!("malformed KINK message: {e}"));
                // A command whose header we can read gets the RFC's error,
                // unauthenticated (we have no key yet).
                if let Some(xid) = command_xid(bytes)
                    && self.is_peer_address(from)
                {
                    self.send(from, seal::error_reply(xid, e.kink_error()));
                }
                return;
            }
        };
        match msg.msg_type {
            MessageType::Create | MessageType::Delete | MessageType::Status => {
                self.on_command(now, krb, from, bytes, &msg);
            }
            MessageType::Ack => self.on_ack(krb, from, bytes, &msg),
            MessageType::GetTgt => self.on_gettgt(krb, from, &msg),
            MessageType::Reply => self.on_reply(now, krb, from, bytes, &msg),
            other => {
                self.stats.malformed += 1;
                self.dropped(from, format!("unexpected message type {other}"));
            }
        }
    }

    /// Timers: retransmissions, ACK waits, grace periods.
    pub fn handle_timeout(&mut self, now: Instant, krb: &mut dyn Kerberos) {
        self.retransmit_due(now, krb);
        self.resend_replies_due(now, krb);
        let mut gone = Vec::new();
        for pair in &self.pairs {
            if let PairState::Deleting(at) = pair.state
                && at <= now
            {
                gone.push(pair.inbound);
            }
        }
        for id in gone {
            self.pairs.retain(|p| p.inbound != id);
            self.outputs.push_back(Output::DeleteSa(id));
        }
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.transactions.values().map(|t| t.next);
        let replies = self.replies.values().map(CachedReply::next_event);
        let pairs = self.pairs.iter().filter_map(|p| match p.state {
            PairState::Deleting(at) => Some(at),
            _ => None,
        });
        tx.chain(replies).chain(pairs).min()
    }

    /// The next request to the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Deletes every SA pair with the peer named `peer` (or every peer for
    /// `all`), telling the peer with DELETE. Returns how many pairs.
    pub fn delete(&mut self, now: Instant, krb: &mut dyn Kerberos, peer: &str) -> usize {
        let targets: Vec<(usize, u32)> = self
            .pairs
            .iter()
            .filter(|p| !matches!(p.state, PairState::Deleting(_)))
            .filter(|p| peer == "all" || self.peers[p.peer].name == peer)
            .map(|p| (p.peer, p.spi_in))
            .collect();
        for &(idx, spi_in) in &targets {
            self.delete_pair(now, krb, idx, spi_in, "deleted by the operator");
        }
        targets.len()
    }

    /// Stopping: DELETE to every peer, and every SA of ours removed now
    /// rather than after the grace period (no one would be left to remove
    /// the inbound SAs later). Returns how many pairs were deleted.
    pub fn shutdown(&mut self, now: Instant, krb: &mut dyn Kerberos) -> usize {
        let n = self.delete(now, krb, "all");
        for pair in std::mem::take(&mut self.pairs) {
            self.outputs.push_back(Output::DeleteSa(pair.inbound));
        }
        let creating: Vec<u32> = self
            .transactions
            .iter()
            .filter(|(_, t)| t.creating().is_some())
            .map(|(xid, _)| *xid)
            .collect();
        for xid in creating {
            if let Some(tx) = self.transactions.remove(&xid) {
                self.give_up(krb, tx, "kinkd is stopping");
            }
        }
        n
    }

    /// A soft (rekey) or hard (SA gone) expiry from the kernel.
    pub fn on_expire(&mut self, now: Instant, krb: &mut dyn Kerberos, id: SaId, hard: bool) {
        let Some(pos) = self
            .pairs
            .iter()
            .position(|p| p.inbound == id || p.outbound == id)
        else {
            return;
        };
        if hard {
            let pair = self.pairs.remove(pos);
            // The kernel removed the expired SA; remove its partner too.
            let other = if pair.inbound == id {
                pair.outbound
            } else {
                pair.inbound
            };
            self.outputs.push_back(Output::DeleteSa(other));
            self.event(Event::Deleted {
                peer: self.peers[pair.peer].name.clone(),
                spi_in: pair.spi_in,
                reason: "hard lifetime expired".into(),
            });
            // A rekey that failed leaves the initiator here: try again now
            // rather than wait for traffic to raise an ACQUIRE.
            let peer = pair.peer;
            if pair.role == pairs::Role::Initiator
                && !self.has_live_pair(peer)
                && !self.creating(peer)
            {
                self.want(now, krb, peer, Want::Create { rekey_of: None });
            }
            return;
        }
        let pair = &mut self.pairs[pos];
        // The initiator of a pair rekeys it, so both ends do not race.
        if pair.rekeying
            || pair.role != pairs::Role::Initiator
            || pair.state != PairState::Established
        {
            return;
        }
        pair.rekeying = true;
        let (peer, spi_in) = (pair.peer, pair.spi_in);
        self.want(
            now,
            krb,
            peer,
            Want::Create {
                rekey_of: Some(spi_in),
            },
        );
    }

    /// SA pairs and negotiations, for racoonctl.
    pub fn sas(&self) -> Vec<SaPairStatus> {
        let mut out: Vec<SaPairStatus> = self
            .pairs
            .iter()
            .map(|p| SaPairStatus {
                peer: self.peers[p.peer].name.clone(),
                state: match p.state {
                    PairState::Established => "established",
                    PairState::WaitingAck => "waiting-ack",
                    PairState::Deleting(_) => "deleting",
                },
                role: p.role.name(),
                spi_in: p.spi_in,
                spi_out: p.spi_out,
                esp: p.esp.clone(),
            })
            .collect();
        for tx in self.transactions.values() {
            if let Some(spi_in) = tx.creating() {
                out.push(SaPairStatus {
                    peer: self.peers[tx.peer].name.clone(),
                    state: "negotiating",
                    role: "initiator",
                    spi_in,
                    spi_out: 0,
                    esp: String::new(),
                });
            }
        }
        out
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ---- shared helpers of the exchange modules ----

    fn has_live_pair(&self, peer: usize) -> bool {
        self.pairs
            .iter()
            .any(|p| p.peer == peer && !matches!(p.state, PairState::Deleting(_)) && !p.rekeying)
    }

    fn creating(&self, peer: usize) -> bool {
        self.transactions
            .values()
            .any(|t| t.peer == peer && t.creating().is_some())
            || self.state[peer]
                .wants
                .iter()
                .any(|w| matches!(w, Want::Create { .. }))
    }

    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.outputs.push_back(Output::Send { to, bytes });
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn dropped(&mut self, from: SocketAddr, reason: String) {
        self.event(Event::Dropped { from, reason });
    }

    fn failed(&mut self, peer: usize, reason: String) {
        self.stats.failures += 1;
        self.event(Event::Failed {
            peer: self.peers[peer].name.clone(),
            reason,
        });
    }

    /// Random octets, or `None` if the OS source failed: the exchange is
    /// then refused rather than run with predictable values.
    fn random<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut b = [0u8; N];
        self.rng.fill(&mut b).ok().map(|()| b)
    }

    /// A fresh SPI: not reserved (RFC 4303: 1..=255), not in use by us.
    fn new_spi(&mut self) -> Option<u32> {
        for _ in 0..64 {
            let spi = u32::from_be_bytes(self.random::<4>()?);
            if spi > 255 && !self.pairs.iter().any(|p| p.spi_in == spi) {
                return Some(spi);
            }
        }
        None
    }

    fn nonce(&mut self) -> Option<Vec<u8>> {
        self.random::<16>().map(|n| n.to_vec())
    }

    /// Forgets what we hold for `peer`'s tickets (and its TGT): the next
    /// exchange fetches anew.
    fn forget_peer_tickets(&mut self, peer: usize) {
        self.state[peer].ticket_end = None;
        self.state[peer].tgt = None;
    }

    /// Whether `from` is a configured peer's KINK address: the only
    /// sources that get an unauthenticated answer (an error, our TGT), so
    /// kinkd cannot be used to reflect traffic at a spoofed address.
    fn is_peer_address(&self, from: SocketAddr) -> bool {
        self.peers.iter().any(|p| p.address.ip() == from.ip())
    }

    /// The peer's EPOCH in an AP_REQ/AP_REP: if it changed, the peer lost
    /// its SAs, so ours with it go (RFC 4430 dead-peer detection).
    fn check_epoch(&mut self, peer: usize, epoch: u32, keep_spi: Option<u32>) {
        let previous = self.state[peer].epoch.replace(epoch);
        if previous.is_none_or(|p| p == epoch) {
            return;
        }
        self.event(Event::PeerRestarted {
            peer: self.peers[peer].name.clone(),
        });
        // A restarted user-to-user peer has a new TGT: our ticket for it
        // is dead, and so is the TGT we hold of it.
        if self.peers[peer].user_to_user {
            self.forget_peer_tickets(peer);
        }
        let stale: Vec<Pair> = self
            .pairs
            .iter()
            .filter(|p| p.peer == peer && Some(p.spi_in) != keep_spi)
            .cloned()
            .collect();
        self.pairs
            .retain(|p| p.peer != peer || Some(p.spi_in) == keep_spi);
        for pair in stale {
            self.outputs.push_back(Output::DeleteSa(pair.outbound));
            self.outputs.push_back(Output::DeleteSa(pair.inbound));
            self.event(Event::Deleted {
                peer: self.peers[peer].name.clone(),
                spi_in: pair.spi_in,
                reason: "the peer restarted (its EPOCH changed)".into(),
            });
        }
    }
}

/// The XID of a datagram that is at least a whole header and claims to be
/// a command, read without validating anything else (so that a bad
/// version or DOI can still be answered with its KINK_ERROR).
fn command_xid(bytes: &[u8]) -> Option<u32> {
    let header = bytes.get(..crate::wire::HEADER_LEN)?;
    let msg_type = MessageType::from(header[0]);
    let is_command = matches!(
        msg_type,
        MessageType::Create | MessageType::Delete | MessageType::Status | MessageType::GetTgt
    );
    let xid = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    is_command.then_some(xid)
}

#[cfg(test)]
mod tests;
