//! The established IKE SA: INFORMATIONAL exchanges for DELETE and
//! liveness checks ([RFC 7296 §1.4, §2.4](https://www.rfc-editor.org/rfc/rfc7296#section-1.4)),
//! and the request window every exchange we start goes through.
//!
//! Window size 1 (§2.3): our one request in flight is an [`Outgoing`]
//! that says how to act on its answer; the rest wait as [`Queued`] and go
//! out in order when the window frees (`pump`). Requests refused with
//! TEMPORARY_FAILURE wait in `retry` for a random delay. The CHILD SA and
//! IKE SA rekeys themselves live in `rekey_child` and `rekey_ike`, their
//! responder sides in `create_child`.

use std::collections::VecDeque;
use std::time::Instant;

use crate::ikev2::child::ChildHandle;
use crate::ikev2::config::PeerConfig;
use crate::ikev2::error::Error;
use crate::ikev2::init::notify;
use crate::ikev2::keys::Keyed;
use crate::ikev2::lifetime;
use crate::ikev2::output::{Event, Output, Path};
use crate::ikev2::rekey_child::ChildRekey;
use crate::ikev2::rekey_ike::IkeRekey;
use crate::ikev2::sa::{Context, IkeSa, State};
use crate::ikev2::sk;
use crate::ikev2::wire::{DeletePayload, ExchangeType, Message, NotifyType, Payload, ProtocolId};

/// An authenticated IKE SA and its CHILD SA, if one is up.
pub(crate) struct Established {
    pub(crate) keyed: Keyed,
    pub(crate) child: Option<ChildHandle>,
    /// CHILD SAs replaced by a rekey (or redundant after a collision),
    /// until one side deletes them.
    pub(crate) rekeyed: Vec<ChildHandle>,
    /// Last authenticated message from the peer, for liveness checks.
    last_rx: Instant,
    /// Our request in flight (window size 1, RFC 7296 §2.3).
    pub(crate) outgoing: Option<Outgoing>,
    /// Requests waiting for the window, oldest first.
    pub(crate) queue: VecDeque<Queued>,
    /// Requests the peer answered with TEMPORARY_FAILURE, and when to
    /// queue them again.
    pub(crate) retry: Vec<(Instant, Queued)>,
    /// When the next NAT-keepalive is due; only when we are behind a NAT.
    next_keepalive: Option<Instant>,
    /// When to rekey the IKE SA (its soft lifetime), if configured.
    pub(crate) rekey_at: Option<Instant>,
    /// When to delete it if no rekey succeeded (its hard lifetime).
    pub(crate) expire_at: Option<Instant>,
    /// A rekey (ours or the peer's) moved everything to a new IKE SA; this
    /// one only waits to be deleted.
    pub(crate) replaced: bool,
    /// A peer that rekeyed this IKE SA deletes it; if its Delete never
    /// arrives, we forget the SA at this time.
    pub(crate) linger_until: Option<Instant>,
}

/// How long an IKE SA the peer replaced by a rekey waits for the peer's
/// Delete: longer than the default retransmission schedule (about two
/// minutes) takes to give up.
pub(crate) const REPLACED_LINGER: std::time::Duration = std::time::Duration::from_secs(300);

/// What our request in flight is, so its answer can be acted on.
pub(crate) enum Outgoing {
    /// An empty INFORMATIONAL: a liveness check.
    Probe,
    /// INFORMATIONAL with D(IKE).
    DeleteIke,
    /// INFORMATIONAL with D(ESP) of the CHILD SA with this inbound SPI.
    DeleteChild(u32),
    /// CREATE_CHILD_SA rekeying a CHILD SA.
    RekeyChild(Box<ChildRekey>),
    /// CREATE_CHILD_SA rekeying the IKE SA.
    RekeyIke(Box<IkeRekey>),
}

/// A request of ours waiting for the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Delete the IKE SA.
    DeleteIke,
    /// Delete the CHILD SA with this inbound SPI.
    DeleteChild(u32),
    /// Rekey the CHILD SA with this inbound SPI, if it is still current
    /// when its turn comes.
    RekeyChild(u32),
    /// Create a CHILD SA, if the IKE SA still has none when its turn comes.
    NewChild,
    /// Rekey the IKE SA.
    RekeyIke,
}

impl Queued {
    /// Whether the request belongs to the CHILD SAs, which follow them to
    /// a new IKE SA after an IKE SA rekey.
    fn follows_children(self) -> bool {
        matches!(
            self,
            Self::RekeyChild(_) | Self::DeleteChild(_) | Self::NewChild
        )
    }

    /// The request that rekeys the CHILD SA `old`, or creates one.
    pub(crate) fn child(old: Option<u32>) -> Self {
        old.map_or(Self::NewChild, Self::RekeyChild)
    }
}

/// How often a host behind a NAT sends NAT-keepalives (RFC 3948 §4:
/// "every 20 seconds" is the default).
pub(crate) const NAT_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(20);

impl Established {
    pub(crate) fn new(keyed: Keyed, child: Option<ChildHandle>, now: Instant) -> Self {
        let keepalive_start = keyed.nat.local_behind_nat.then(|| now + NAT_KEEPALIVE);
        Self {
            keyed,
            child,
            rekeyed: Vec::new(),
            last_rx: now,
            outgoing: None,
            queue: VecDeque::new(),
            retry: Vec::new(),
            next_keepalive: keepalive_start,
            rekey_at: None,
            expire_at: None,
            replaced: false,
            linger_until: None,
        }
    }

    /// Arms the IKE SA lifetime timers (`kmp_sa_lifetime_time`), jittered
    /// as [`lifetime`] explains.
    pub(crate) fn arm_lifetime(mut self, config: &PeerConfig, cx: &mut Context<'_>) -> Self {
        if let Some(hard) = config.ike_lifetime {
            let permille = lifetime::soft_permille(cx.rng);
            let (rekey, expire) = lifetime::ike_deadlines(cx.now, hard, permille);
            self.rekey_at = Some(rekey);
            self.expire_at = Some(expire);
        }
        self
    }

    /// Whether our Delete of the IKE SA is in flight.
    fn deleting(&self) -> bool {
        matches!(self.outgoing, Some(Outgoing::DeleteIke))
    }

    /// Whether the IKE SA is on its way out: deleted, or replaced by a rekey.
    pub(crate) fn closing(&self) -> bool {
        self.replaced || self.deleting() || self.queue.contains(&Queued::DeleteIke)
    }

    /// The earliest lifetime or retry timer.
    pub(crate) fn timer_deadline(&self) -> Option<Instant> {
        let retry = self.retry.iter().map(|(at, _)| *at).min();
        let lifetime = if self.closing() {
            None
        } else {
            [self.rekey_at, self.expire_at].into_iter().flatten().min()
        };
        [retry, lifetime, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the next liveness check is due, if `dpd_delay` is set.
    pub(crate) fn liveness_deadline(&self, config: &PeerConfig) -> Option<Instant> {
        if self.deleting() || self.replaced {
            return None;
        }
        config.dpd_delay.and_then(|d| self.last_rx.checked_add(d))
    }

    /// When the next NAT-keepalive is due, if we are behind a NAT.
    pub(crate) fn keepalive_deadline(&self) -> Option<Instant> {
        self.next_keepalive.filter(|_| !self.deleting())
    }

    /// Deletes the IKE SA (and with it the CHILD SA): INFORMATIONAL with
    /// D(IKE). Whatever else was queued is moot.
    pub(crate) fn delete(mut self: Box<Self>, sa: &mut IkeSa, cx: &mut Context<'_>) -> State {
        self.remove_child(cx);
        if self.deleting() {
            return State::Established(self); // already on its way
        }
        // Window size 1 (RFC 7296 §2.3): the Delete waits for the
        // outstanding request's answer (or its retransmissions running out).
        self.queue.clear();
        self.retry.clear();
        self.queue.push_back(Queued::DeleteIke);
        self.pump(sa, cx)
    }

    /// Whether `q` is already in flight, queued or waiting for a retry.
    pub(crate) fn requested(&self, q: Queued) -> bool {
        let in_flight = match (&self.outgoing, q) {
            (Some(Outgoing::RekeyChild(r)), Queued::RekeyChild(spi)) => r.old_spi_in == Some(spi),
            (Some(Outgoing::RekeyChild(r)), Queued::NewChild) => r.old_spi_in.is_none(),
            (Some(Outgoing::RekeyIke(_)), Queued::RekeyIke)
            | (Some(Outgoing::DeleteIke), Queued::DeleteIke) => true,
            (Some(Outgoing::DeleteChild(a)), Queued::DeleteChild(b)) => *a == b,
            _ => false,
        };
        in_flight || self.queue.contains(&q) || self.retry.iter().any(|(_, r)| *r == q)
    }

    /// Queues a request of ours and sends it if the window is free.
    pub(crate) fn enqueue(
        mut self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        q: Queued,
    ) -> State {
        if !self.queue.contains(&q) {
            self.queue.push_back(q);
        }
        self.pump(sa, cx)
    }

    /// Sends queued requests while the window is free; requests that no
    /// longer apply (a CHILD SA rekeyed meanwhile) are skipped.
    pub(crate) fn pump(mut self: Box<Self>, sa: &mut IkeSa, cx: &mut Context<'_>) -> State {
        while sa.pending.is_none() {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            if let Err(e) = self.start(sa, cx, q) {
                return sa.fail(cx, e);
            }
        }
        State::Established(self)
    }

    /// Sends one queued request, if it still applies.
    fn start(&mut self, sa: &mut IkeSa, cx: &mut Context<'_>, q: Queued) -> Result<(), Error> {
        match q {
            Queued::DeleteIke => {
                let payloads = [Payload::Delete(DeletePayload {
                    protocol: ProtocolId::Ike,
                    spi_size: 0,
                    spis: Vec::new(),
                })];
                self.request(sa, cx, ExchangeType::Informational, &payloads)?;
                self.outgoing = Some(Outgoing::DeleteIke);
            }
            Queued::DeleteChild(spi) => self.start_child_delete(sa, cx, spi)?,
            Queued::RekeyChild(spi) => self.start_child_rekey(sa, cx, Some(spi), None)?,
            Queued::NewChild => self.start_child_rekey(sa, cx, None, None)?,
            Queued::RekeyIke => self.start_ike_rekey(sa, cx, None)?,
        }
        Ok(())
    }

    /// Handles a request from the peer.
    pub(crate) fn handle_request(
        mut self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        path: Path,
        msg: &Message,
        raw: &[u8],
    ) -> State {
        let Ok(inner) = sk::open(raw, msg, self.keyed.sk_in(sa.role)) else {
            return State::Established(self);
        };
        self.last_rx = cx.now;
        // RFC 7296 §2.23: behind a NAT, follow the peer's authenticated
        // address and port (a rebinding). ESP's encapsulation ports are not
        // updated yet.
        if self.keyed.nat.any()
            && path.remote != sa.path.remote
            && path.local.port() == sa.path.local.port()
        {
            sa.path = path;
        }
        let reply = match msg.header.exchange {
            ExchangeType::Informational => match self.on_informational(cx, &inner) {
                Some(reply) => reply,
                None => {
                    let _ = self.respond(sa, cx, path, msg.header.exchange, &[]);
                    return sa.fail(cx, Error::DeletedByPeer);
                }
            },
            ExchangeType::CreateChildSa => self.answer_create_child(sa, cx, &inner),
            _ => vec![notify(NotifyType::InvalidSyntax, Vec::new())],
        };
        if let Err(e) = self.respond(sa, cx, path, msg.header.exchange, &reply) {
            return sa.fail(cx, e);
        }
        State::Established(self)
    }

    /// Handles the answer to our request, then sends the next queued one.
    pub(crate) fn handle_response(
        mut self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        msg: &Message,
        raw: &[u8],
    ) -> State {
        let Ok(inner) = sk::open(raw, msg, self.keyed.sk_in(sa.role)) else {
            return State::Established(self);
        };
        sa.pending = None;
        self.last_rx = cx.now;
        let result = match self.outgoing.take() {
            Some(Outgoing::DeleteIke) => return sa.fail(cx, Error::LocallyClosed),
            Some(Outgoing::DeleteChild(spi)) => {
                self.finish_child_delete(cx, spi);
                Ok(())
            }
            Some(Outgoing::RekeyChild(r)) => self.on_child_rekey_response(sa, cx, *r, &inner),
            Some(Outgoing::RekeyIke(r)) => self.on_ike_rekey_response(sa, cx, *r, &inner),
            Some(Outgoing::Probe) | None => Ok(()),
        };
        if let Err(e) = result {
            return sa.fail(cx, e);
        }
        self.pump(sa, cx)
    }

    /// Timers: NAT-keepalives, liveness checks, the IKE SA's lifetime and
    /// retries after TEMPORARY_FAILURE.
    pub(crate) fn handle_timeout(
        mut self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
    ) -> State {
        if let Some(at) = self.keepalive_deadline().filter(|at| cx.now >= *at) {
            cx.out.push_back(Output::NatKeepalive { path: sa.path });
            self.next_keepalive = Some(at.max(cx.now) + NAT_KEEPALIVE);
        }
        if self.linger_until.is_some_and(|t| cx.now >= t) {
            // Replaced by the peer's rekey, and its Delete never came.
            return sa.fail(cx, Error::LocallyClosed);
        }
        if !self.closing() && self.expire_at.is_some_and(|t| cx.now >= t) {
            // The hard lifetime passed without a successful rekey.
            return self.delete(sa, cx);
        }
        if self.rekey_at.is_some_and(|t| cx.now >= t) {
            self.rekey_at = None;
            if !self.closing() && !self.queue.contains(&Queued::RekeyIke) {
                self.queue.push_back(Queued::RekeyIke);
            }
        }
        let now = cx.now;
        let (due, later): (Vec<_>, Vec<_>) = self.retry.drain(..).partition(|(at, _)| now >= *at);
        self.retry = later;
        for (_, q) in due {
            if !self.queue.contains(&q) {
                self.queue.push_back(q);
            }
        }
        let probe = self
            .liveness_deadline(&sa.config)
            .is_some_and(|d| cx.now >= d);
        if probe && sa.pending.is_none() && self.queue.is_empty() {
            if let Err(e) = self.request(sa, cx, ExchangeType::Informational, &[]) {
                return sa.fail(cx, e);
            }
            self.outgoing = Some(Outgoing::Probe);
        }
        self.pump(sa, cx)
    }

    /// Schedules `q` again after a random delay (RFC 7296 §2.25: after
    /// TEMPORARY_FAILURE "it MUST NOT immediately retry").
    pub(crate) fn retry_later(&mut self, cx: &mut Context<'_>, q: Queued) {
        let at = cx.now + lifetime::retry_delay(cx.rng);
        self.retry.push((at, q));
    }

    /// The queued and retried requests that belong to the CHILD SAs, for
    /// the IKE SA that takes them over.
    pub(crate) fn take_child_requests(&mut self) -> (VecDeque<Queued>, Vec<(Instant, Queued)>) {
        let (moved, kept): (VecDeque<_>, VecDeque<_>) =
            self.queue.drain(..).partition(|q| q.follows_children());
        self.queue = kept;
        let (rmoved, rkept): (Vec<_>, Vec<_>) = self
            .retry
            .drain(..)
            .partition(|(_, q)| q.follows_children());
        self.retry = rkept;
        (moved, rmoved)
    }

    /// Removes every CHILD SA (current and rekeyed) from the kernel when
    /// the IKE SA dies under them.
    pub(crate) fn remove_child(&mut self, cx: &mut Context<'_>) {
        for c in self.child.take().into_iter().chain(self.rekeyed.drain(..)) {
            cx.out.push_back(Output::DeleteChild {
                inbound: c.inbound,
                outbound: c.outbound,
            });
        }
    }

    /// Takes the CHILD SA whose outbound SPI (the peer's inbound) is `spi`.
    fn take_child(&mut self, spi: &[u8]) -> Option<ChildHandle> {
        self.take_child_where(|c| spi == c.spi_out.to_be_bytes())
    }

    /// Takes the CHILD SA (current or rekeyed) matching `pred`.
    pub(crate) fn take_child_where(
        &mut self,
        pred: impl Fn(&ChildHandle) -> bool,
    ) -> Option<ChildHandle> {
        if self.child.as_ref().is_some_and(&pred) {
            return self.child.take();
        }
        let i = self.rekeyed.iter().position(pred)?;
        Some(self.rekeyed.remove(i))
    }

    /// Takes a replaced CHILD SA matching `pred`.
    pub(crate) fn take_rekeyed_where(
        &mut self,
        pred: impl Fn(&ChildHandle) -> bool,
    ) -> Option<ChildHandle> {
        let i = self.rekeyed.iter().position(pred)?;
        Some(self.rekeyed.remove(i))
    }

    /// Sends D(ESP) for the CHILD SA with inbound SPI `spi`, if we still
    /// have it (the peer may have deleted it meanwhile).
    fn start_child_delete(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        spi: u32,
    ) -> Result<(), Error> {
        let ours = |c: &ChildHandle| c.spi_in == spi;
        if !self.child.iter().chain(&self.rekeyed).any(ours) {
            return Ok(());
        }
        // RFC 7296 §3.11: for ESP the SPI is the one the sender expects in inbound packets.
        let payloads = [Payload::Delete(DeletePayload {
            protocol: ProtocolId::Esp,
            spi_size: 4,
            spis: vec![spi.to_be_bytes().to_vec()],
        })];
        self.request(sa, cx, ExchangeType::Informational, &payloads)?;
        self.outgoing = Some(Outgoing::DeleteChild(spi));
        Ok(())
    }

    /// The peer answered our D(ESP): remove both SAs from the kernel.
    fn finish_child_delete(&mut self, cx: &mut Context<'_>, spi: u32) {
        if let Some(c) = self.take_child_where(|c| c.spi_in == spi) {
            cx.out.push_back(Output::DeleteChild {
                inbound: c.inbound,
                outbound: c.outbound,
            });
        }
    }

    /// Acts on Delete payloads; `None` means the IKE SA itself was deleted.
    fn on_informational(
        &mut self,
        cx: &mut Context<'_>,
        inner: &[Payload],
    ) -> Option<Vec<Payload>> {
        let mut reply = Vec::new();
        for p in inner {
            let Payload::Delete(d) = p else { continue };
            match d.protocol {
                ProtocolId::Ike => {
                    self.remove_child(cx);
                    return None;
                }
                ProtocolId::Esp => {
                    // RFC 7296 §1.4.1: answer with the inbound SPIs of the pairs deleted.
                    let mut ours = Vec::new();
                    for c in d.spis.iter().filter_map(|spi| self.take_child(spi)) {
                        ours.push(c.spi_in.to_be_bytes().to_vec());
                        cx.out.push_back(Output::DeleteChild {
                            inbound: c.inbound,
                            outbound: c.outbound,
                        });
                        cx.out.push_back(Output::Event(Event::ChildDeletedByPeer));
                    }
                    if !ours.is_empty() {
                        reply.push(Payload::Delete(DeletePayload {
                            protocol: ProtocolId::Esp,
                            spi_size: 4,
                            spis: ours,
                        }));
                    }
                }
                _ => {}
            }
        }
        Some(reply)
    }

    /// Sends a request of ours and arms its retransmission; the caller
    /// records what it is in `outgoing`.
    pub(crate) fn request(
        &self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<(), Error> {
        let id = sa.next_request_id;
        let header = sa.header(exchange, false, id);
        let bytes = sk::seal(&header, payloads, self.keyed.sk_out(sa.role), cx.rng)?;
        sa.next_request_id = id.wrapping_add(1);
        sa.send_request(cx, id, bytes);
        Ok(())
    }

    fn respond(
        &self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        path: Path,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<(), Error> {
        let header = sa.header(exchange, true, sa.peer_next_id);
        let bytes = sk::seal(&header, payloads, self.keyed.sk_out(sa.role), cx.rng)?;
        sa.send_response(cx, path, bytes);
        Ok(())
    }
}
