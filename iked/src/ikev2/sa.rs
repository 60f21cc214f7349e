//! One IKE SA: lifecycle state, message IDs, retransmission and the
//! response cache ([RFC 7296 §2.1–2.3](https://www.rfc-editor.org/rfc/rfc7296#section-2.1)).
//!
//! Call order: after any `handle_*` call, drain [`IkeSa::poll_output`] and
//! re-read [`IkeSa::poll_timeout`]. Time and randomness come in through
//! `Context`; this module never reads a clock or a socket.
//!
//! The exchanges themselves live in `init`, `ike_auth` and
//! `info`; this file routes messages to them and owns everything
//! that is common: which message may be processed, what is resent when, and
//! how a failure ends the SA (`close`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libracoon::crypto::Random;
use pfkey::SaId;

use crate::ikev2::child::ChildHandle;
use crate::ikev2::config::PeerConfig;
use crate::ikev2::error::Error;
use crate::ikev2::ike_auth::{AuthSent, ExpectAuth};
use crate::ikev2::info::{Established, Queued};
use crate::ikev2::init::InitSent;
use crate::ikev2::output::{Event, Output, Path};
use crate::ikev2::wire::{ExchangeType, Flags, Header, Message, PayloadType};

/// How long a responder keeps a half-open SA waiting for IKE_AUTH.
pub(crate) const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Inputs every handler needs: the time, randomness, and the output queue.
pub(crate) struct Context<'a> {
    pub(crate) now: Instant,
    pub(crate) rng: &'a mut dyn Random,
    pub(crate) out: &'a mut VecDeque<Output>,
}

/// Which side started this IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent IKE_SA_INIT.
    Initiator,
    /// The peer did.
    Responder,
}

/// The lifecycle of an IKE SA. Each state holds only what is valid in it.
pub(crate) enum State {
    /// Initiator: IKE_SA_INIT sent.
    InitSent(Box<InitSent>),
    /// Initiator: IKE_AUTH sent.
    AuthSent(Box<AuthSent>),
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    ExpectAuth(Box<ExpectAuth>),
    /// Authenticated; INFORMATIONAL exchanges run here.
    Established(Box<Established>),
    /// Finished; the endpoint removes it.
    Closed(Error),
}

/// Our outstanding request, kept for retransmission (window size 1).
pub(crate) struct Pending {
    pub(crate) message_id: u32,
    pub(crate) bytes: Vec<u8>,
    pub(crate) sent: u32,
    pub(crate) deadline: Instant,
}

/// One IKE SA.
pub struct IkeSa {
    /// When the SA was created, for its age.
    created: Instant,
    /// The peer's authenticated identity, once IKE_AUTH is done.
    pub(crate) peer_id: Option<String>,
    pub(crate) role: Role,
    pub(crate) spi_i: u64,
    pub(crate) spi_r: u64,
    pub(crate) config: Arc<PeerConfig>,
    pub(crate) path: Path,
    pub(crate) state: State,
    /// Next message ID for our requests.
    pub(crate) next_request_id: u32,
    /// Next message ID we accept from the peer.
    pub(crate) peer_next_id: u32,
    pub(crate) pending: Option<Pending>,
    /// Last response we sent, for a retransmitted request (RFC 7296 §2.1).
    pub(crate) last_response: Option<(u32, Vec<u8>)>,
    /// When a responder's half-open SA expires.
    pub(crate) half_open_deadline: Option<Instant>,
    out: VecDeque<Output>,
    /// The IKE SA that replaced this one in a rekey, for the endpoint to adopt.
    pub(crate) spawned: Option<Box<Self>>,
}

impl IkeSa {
    /// Starts an IKE SA as initiator: queues IKE_SA_INIT.
    pub fn initiate(
        now: Instant,
        rng: &mut dyn Random,
        config: Arc<PeerConfig>,
        path: Path,
    ) -> Result<Self, Error> {
        let mut spi = [0u8; 8];
        rng.fill(&mut spi)?;
        let mut sa = Self::new(
            now,
            Role::Initiator,
            u64::from_be_bytes(spi) | 1,
            0,
            config,
            path,
        );
        let mut out = VecDeque::new();
        let mut cx = Context {
            now,
            rng,
            out: &mut out,
        };
        let state = InitSent::start(&mut sa, &mut cx, None)?;
        sa.state = State::InitSent(Box::new(state));
        sa.out = out;
        Ok(sa)
    }

    /// Answers an IKE_SA_INIT request as responder. The returned SA is
    /// `Closed` if the request was refused (the refusal is queued).
    pub fn accept(
        now: Instant,
        rng: &mut dyn Random,
        config: Arc<PeerConfig>,
        path: Path,
        msg: &Message,
        raw: &[u8],
    ) -> Self {
        let mut spi = [0u8; 8];
        let spi_r = match rng.fill(&mut spi) {
            Ok(()) => u64::from_be_bytes(spi) | 1,
            Err(_) => 1,
        };
        let mut sa = Self::new(now, Role::Responder, msg.header.spi_i, spi_r, config, path);
        let mut out = VecDeque::new();
        let mut cx = Context {
            now,
            rng,
            out: &mut out,
        };
        sa.state = match ExpectAuth::answer_init(&mut sa, &mut cx, msg, raw) {
            Ok(state) => {
                sa.half_open_deadline = Some(now + HALF_OPEN_TIMEOUT);
                State::ExpectAuth(Box::new(state))
            }
            Err(e) => {
                sa.refuse_init(&mut cx, &e);
                State::Closed(e)
            }
        };
        sa.out = out;
        sa
    }

    fn new(
        now: Instant,
        role: Role,
        spi_i: u64,
        spi_r: u64,
        config: Arc<PeerConfig>,
        path: Path,
    ) -> Self {
        Self {
            created: now,
            peer_id: None,
            role,
            spi_i,
            spi_r,
            config,
            path,
            state: State::Closed(Error::LocallyClosed),
            next_request_id: 0,
            peer_next_id: 0,
            pending: None,
            last_response: None,
            half_open_deadline: None,
            out: VecDeque::new(),
            spawned: None,
        }
    }

    /// The IKE SA that rekeys `old` (RFC 7296 §2.18): same peer, path and
    /// configuration, new SPIs, message IDs from zero, already established.
    pub(crate) fn rekeyed(
        now: Instant,
        old: &Self,
        spi_i: u64,
        spi_r: u64,
        role: Role,
        state: State,
    ) -> Self {
        let mut sa = Self::new(now, role, spi_i, spi_r, old.config.clone(), old.path);
        sa.peer_id.clone_from(&old.peer_id);
        sa.state = state;
        sa
    }

    /// The IKE SA a rekey created, once.
    pub fn take_spawned(&mut self) -> Option<Box<Self>> {
        self.spawned.take()
    }

    // --- getters -------------------------------------------------------

    /// Our SPI, which the endpoint indexes SAs by.
    pub fn local_spi(&self) -> u64 {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }

    /// Initiator's SPI.
    pub fn spi_i(&self) -> u64 {
        self.spi_i
    }

    /// Which side we are.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The path IKE currently uses.
    pub fn path(&self) -> Path {
        self.path
    }

    /// The configuration (remote block) this SA runs under.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// Whether IKE_AUTH completed and the SA is not closed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Why the SA closed, once it has.
    pub fn closed(&self) -> Option<&Error> {
        match &self.state {
            State::Closed(e) => Some(e),
            _ => None,
        }
    }

    /// Responder's SPI (zero until IKE_SA_INIT is answered).
    pub fn spi_r(&self) -> u64 {
        self.spi_r
    }

    /// How long ago the SA was created.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// The peer's authenticated identity, once established.
    pub fn peer_id(&self) -> Option<&str> {
        self.peer_id.as_deref()
    }

    /// The negotiated IKE algorithms, once IKE_SA_INIT is done.
    pub fn suite(&self) -> Option<crate::ikev2::keys::IkeSuite> {
        match &self.state {
            State::AuthSent(s) => Some(s.keyed().suite),
            State::ExpectAuth(s) => Some(s.keyed().suite),
            State::Established(s) => Some(s.keyed.suite),
            _ => None,
        }
    }

    /// The CHILD SA, while one is up.
    pub fn child(&self) -> Option<&ChildHandle> {
        match &self.state {
            State::Established(s) => s.child.as_ref(),
            _ => None,
        }
    }

    /// Whether this is a responder SA still waiting for IKE_AUTH (what the
    /// half-open limit counts).
    pub fn is_half_open(&self) -> bool {
        matches!(self.state, State::ExpectAuth(_))
    }

    /// A short state name for status output.
    pub fn state_name(&self) -> &'static str {
        match &self.state {
            State::InitSent(_) => "IKE_SA_INIT sent",
            State::AuthSent(_) => "IKE_AUTH sent",
            State::ExpectAuth(_) => "half-open",
            State::Established(_) => "ESTABLISHED",
            State::Closed(_) => "closed",
        }
    }

    // --- handle_* ------------------------------------------------------

    /// Processes one datagram the endpoint routed here.
    pub fn handle_datagram(&mut self, now: Instant, rng: &mut dyn Random, path: Path, raw: &[u8]) {
        let Ok(msg) = Message::parse(raw) else {
            return; // unauthenticated garbage changes nothing
        };
        let mut out = std::mem::take(&mut self.out);
        let mut cx = Context {
            now,
            rng,
            out: &mut out,
        };
        if msg.header.flags.response() {
            self.on_response(&mut cx, path, &msg, raw);
        } else {
            self.on_request(&mut cx, path, &msg, raw);
        }
        self.out = out;
    }

    /// Fires timers: retransmission, half-open expiry, liveness checks.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn Random) {
        let mut out = std::mem::take(&mut self.out);
        let mut cx = Context {
            now,
            rng,
            out: &mut out,
        };
        self.on_timeout(&mut cx);
        self.out = out;
    }

    /// Deletes the SA: sends an INFORMATIONAL with a Delete payload once
    /// authenticated, otherwise just forgets it.
    pub fn handle_delete(&mut self, now: Instant, rng: &mut dyn Random) {
        let mut out = std::mem::take(&mut self.out);
        let mut cx = Context {
            now,
            rng,
            out: &mut out,
        };
        match std::mem::replace(&mut self.state, State::Closed(Error::LocallyClosed)) {
            State::Established(est) => {
                let next = est.delete(self, &mut cx);
                self.state = next;
            }
            _ => self.close(&mut cx, Error::LocallyClosed),
        }
        self.out = out;
    }

    /// Rekeys the CHILD SA (RFC 7296 §1.3.3): sends CREATE_CHILD_SA now,
    /// or once the request in flight is answered. Asking again while a
    /// rekey of it is pending does nothing.
    ///
    /// # Errors
    /// [`Error::NotReady`] if the IKE SA is not established, is going
    /// away, or has no CHILD SA.
    pub fn handle_rekey_child(&mut self, now: Instant, rng: &mut dyn Random) -> Result<(), Error> {
        let State::Established(est) = &self.state else {
            return Err(Error::NotReady("the IKE SA is not established"));
        };
        if est.closing() {
            return Err(Error::NotReady(
                "the IKE SA is being deleted or was rekeyed",
            ));
        }
        let spi = est
            .child
            .as_ref()
            .map(|c| c.spi_in)
            .ok_or(Error::NotReady("the IKE SA has no CHILD SA"))?;
        self.enqueue(now, rng, Queued::RekeyChild(spi));
        Ok(())
    }

    /// Creates a CHILD SA for an IKE SA that has none (after a hard
    /// expiry): CREATE_CHILD_SA without REKEY_SA (RFC 7296 §1.3.1).
    ///
    /// # Errors
    /// [`Error::NotReady`] if the IKE SA is not established, is going
    /// away, or already has a CHILD SA.
    pub fn handle_create_child(&mut self, now: Instant, rng: &mut dyn Random) -> Result<(), Error> {
        let State::Established(est) = &self.state else {
            return Err(Error::NotReady("the IKE SA is not established"));
        };
        if est.closing() {
            return Err(Error::NotReady(
                "the IKE SA is being deleted or was rekeyed",
            ));
        }
        if est.child.is_some() {
            return Err(Error::NotReady(
                "the IKE SA has a CHILD SA (one per IKE SA is supported)",
            ));
        }
        self.enqueue(now, rng, Queued::NewChild);
        Ok(())
    }

    /// Rekeys the IKE SA (RFC 7296 §1.3.2): sends CREATE_CHILD_SA now, or
    /// once the request in flight is answered. On success a new IKE SA
    /// (see [`IkeSa::take_spawned`]) takes over the CHILD SAs and this one
    /// is deleted.
    ///
    /// # Errors
    /// [`Error::NotReady`] if the IKE SA is not established or is going away.
    pub fn handle_rekey_ike(&mut self, now: Instant, rng: &mut dyn Random) -> Result<(), Error> {
        match &self.state {
            State::Established(est) if !est.closing() => {
                self.enqueue(now, rng, Queued::RekeyIke);
                Ok(())
            }
            State::Established(_) => Err(Error::NotReady(
                "the IKE SA is being deleted or was rekeyed",
            )),
            _ => Err(Error::NotReady("the IKE SA is not established")),
        }
    }

    /// The kernel reports the soft lifetime of SA `id`: rekeys the CHILD
    /// SA it belongs to. Returns whether `id` is one of this IKE SA's
    /// CHILD SAs (a replaced one, or one already being rekeyed, is left
    /// alone).
    pub fn handle_soft_expire(&mut self, now: Instant, rng: &mut dyn Random, id: &SaId) -> bool {
        let State::Established(est) = &self.state else {
            return false;
        };
        let is = |c: &ChildHandle| c.inbound == *id || c.outbound == *id;
        if est.rekeyed.iter().any(is) {
            return true; // replaced already, on its way out
        }
        let Some(spi) = est.child.as_ref().filter(|c| is(c)).map(|c| c.spi_in) else {
            return false;
        };
        if !est.closing() {
            self.enqueue(now, rng, Queued::RekeyChild(spi));
        }
        true
    }

    /// The kernel removed SA `id` at its hard lifetime. A replaced CHILD
    /// SA is simply forgotten; the current one is deleted with an
    /// INFORMATIONAL `D(ESP)` (RFC 7296 §1.4.1), leaving the IKE SA without
    /// a CHILD SA. Either way [`Output::DeleteChild`] names both directions,
    /// one of which the kernel already dropped. Returns whether `id` is one
    /// of this IKE SA's CHILD SAs.
    pub fn handle_hard_expire(&mut self, now: Instant, rng: &mut dyn Random, id: &SaId) -> bool {
        let State::Established(est) = &mut self.state else {
            return false;
        };
        let is = |c: &ChildHandle| c.inbound == *id || c.outbound == *id;
        if let Some(c) = est.take_rekeyed_where(is) {
            self.out.push_back(Output::DeleteChild {
                inbound: c.inbound,
                outbound: c.outbound,
            });
            return true;
        }
        let Some(c) = est.child.take_if(|c| is(c)) else {
            return false;
        };
        let spi = c.spi_in;
        est.rekeyed.push(c);
        self.enqueue(now, rng, Queued::DeleteChild(spi));
        true
    }

    fn enqueue(&mut self, now: Instant, rng: &mut dyn Random, q: Queued) {
        let mut out = std::mem::take(&mut self.out);
        let mut cx = Context {
            now,
            rng,
            out: &mut out,
        };
        let state = std::mem::replace(&mut self.state, State::Closed(Error::LocallyClosed));
        self.state = match state {
            State::Established(est) if !est.requested(q) => est.enqueue(self, &mut cx, q),
            other => other,
        };
        self.out = out;
    }

    // --- poll_* --------------------------------------------------------

    /// Next request to the driver.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`IkeSa::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmit = self.pending.as_ref().map(|p| p.deadline);
        let state = match &self.state {
            State::ExpectAuth(_) => self.half_open_deadline,
            // A liveness check waits while another request is in flight;
            // NAT-keepalives do not.
            State::Established(e) => {
                let liveness = self
                    .pending
                    .is_none()
                    .then(|| e.liveness_deadline(&self.config))
                    .flatten();
                [liveness, e.keepalive_deadline(), e.timer_deadline()]
                    .into_iter()
                    .flatten()
                    .min()
            }
            _ => None,
        };
        [retransmit, state].into_iter().flatten().min()
    }

    // --- routing -------------------------------------------------------

    fn on_request(&mut self, cx: &mut Context<'_>, path: Path, msg: &Message, raw: &[u8]) {
        let id = msg.header.message_id;
        if id.wrapping_add(1) == self.peer_next_id {
            if let Some((cached_id, bytes)) = &self.last_response
                && *cached_id == id
            {
                cx.out.push_back(Output::Send {
                    path,
                    bytes: bytes.clone(),
                });
            }
            return;
        }
        if id != self.peer_next_id {
            return; // outside the window: RFC 7296 §2.3 says drop
        }
        let state = std::mem::replace(&mut self.state, State::Closed(Error::LocallyClosed));
        self.state = match state {
            State::ExpectAuth(s) if msg.header.exchange == ExchangeType::IkeAuth => {
                s.handle_request(self, cx, path, msg, raw)
            }
            State::Established(s) => s.handle_request(self, cx, path, msg, raw),
            other => other,
        };
    }

    fn on_response(&mut self, cx: &mut Context<'_>, path: Path, msg: &Message, raw: &[u8]) {
        let Some(pending) = &self.pending else { return };
        if pending.message_id != msg.header.message_id
            || msg.header.flags.initiator() == self.is_original_initiator()
        {
            return;
        }
        let state = std::mem::replace(&mut self.state, State::Closed(Error::LocallyClosed));
        self.state = match state {
            State::InitSent(s) if msg.header.exchange == ExchangeType::IkeSaInit => {
                s.handle_response(self, cx, path, msg, raw)
            }
            State::AuthSent(s) if msg.header.exchange == ExchangeType::IkeAuth => {
                s.handle_response(self, cx, msg, raw)
            }
            State::Established(s) => s.handle_response(self, cx, msg, raw),
            other => other,
        };
    }

    fn on_timeout(&mut self, cx: &mut Context<'_>) {
        let tries = self.config.retransmit.tries;
        let exhausted = self
            .pending
            .as_ref()
            .is_some_and(|p| cx.now >= p.deadline && p.sent > tries);
        if exhausted {
            if let State::Established(est) = &mut self.state {
                est.remove_child(cx);
            }
            self.close(cx, Error::RetransmitsExhausted(tries));
            return;
        }
        if let Some(p) = self.pending.as_mut().filter(|p| cx.now >= p.deadline) {
            let backoff = self.config.retransmit.backoff(p.sent);
            p.sent += 1;
            p.deadline = cx.now + backoff;
            cx.out.push_back(Output::Send {
                path: self.path,
                bytes: p.bytes.clone(),
            });
        }
        if matches!(self.state, State::ExpectAuth(_))
            && self.half_open_deadline.is_some_and(|d| cx.now >= d)
        {
            self.close(cx, Error::HalfOpenTimeout);
            return;
        }
        let state = std::mem::replace(&mut self.state, State::Closed(Error::LocallyClosed));
        self.state = match state {
            State::Established(s) => s.handle_timeout(self, cx),
            other => other,
        };
    }

    // --- shared helpers for the exchanges ------------------------------

    /// The flags our messages carry: INITIATOR if we began the IKE SA.
    pub(crate) fn is_original_initiator(&self) -> bool {
        self.role == Role::Initiator
    }

    /// A header for a new message of ours.
    pub(crate) fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        let mut flags = 0;
        if self.is_original_initiator() {
            flags |= Flags::INITIATOR;
        }
        if response {
            flags |= Flags::RESPONSE;
        }
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::None,
            major: 2,
            minor: 0,
            exchange,
            flags: Flags(flags),
            message_id,
            length: 0,
        }
    }

    /// Sends a request and arms retransmission.
    pub(crate) fn send_request(&mut self, cx: &mut Context<'_>, message_id: u32, bytes: Vec<u8>) {
        cx.out.push_back(Output::Send {
            path: self.path,
            bytes: bytes.clone(),
        });
        self.pending = Some(Pending {
            message_id,
            bytes,
            sent: 1,
            deadline: cx.now + self.config.retransmit.backoff(0),
        });
    }

    /// Sends a response to the peer's current request and caches it.
    pub(crate) fn send_response(&mut self, cx: &mut Context<'_>, path: Path, bytes: Vec<u8>) {
        let id = self.peer_next_id;
        self.peer_next_id = id.wrapping_add(1);
        cx.out.push_back(Output::Send {
            path,
            bytes: bytes.clone(),
        });
        self.last_response = Some((id, bytes));
    }

    /// Ends the SA, reporting why, and returns its final state: what a
    /// state handler returns when it fails (`return sa.fail(cx, e)`).
    pub(crate) fn fail(&mut self, cx: &mut Context<'_>, reason: Error) -> State {
        self.close(cx, reason);
        std::mem::replace(&mut self.state, State::Closed(Error::LocallyClosed))
    }

    /// Ends the SA, reporting why.
    pub(crate) fn close(&mut self, cx: &mut Context<'_>, reason: Error) {
        self.pending = None;
        cx.out
            .push_back(Output::Event(Event::IkeClosed(reason.clone())));
        self.state = State::Closed(reason);
    }

    /// A refused IKE_SA_INIT: the unencrypted error notify, and nothing kept.
    fn refuse_init(&self, cx: &mut Context<'_>, err: &Error) {
        if let Some(ntype) = err.notify() {
            let data = match err {
                Error::InvalidKe { want, .. } => want.to_be_bytes().to_vec(),
                _ => Vec::new(),
            };
            let mut header = self.header(ExchangeType::IkeSaInit, true, 0);
            header.spi_r = 0;
            let msg = Message {
                header,
                payloads: vec![crate::ikev2::init::notify(ntype, data)],
                sk: None,
            };
            cx.out.push_back(Output::Send {
                path: self.path,
                bytes: msg.emit(),
            });
        }
        cx.out
            .push_back(Output::Event(Event::IkeClosed(err.clone())));
    }
}
