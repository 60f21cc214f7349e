//! The established IKE SA: INFORMATIONAL exchanges for DELETE and
//! liveness checks ([RFC 7296 §1.4, §2.4](https://www.rfc-editor.org/rfc/rfc7296#section-1.4)).

use std::time::Instant;

use crate::ikev2::child::ChildHandle;
use crate::ikev2::config::PeerConfig;
use crate::ikev2::error::Error;
use crate::ikev2::init::notify;
use crate::ikev2::keys::Keyed;
use crate::ikev2::output::{Event, Output, Path};
use crate::ikev2::sa::{Context, IkeSa, State};
use crate::ikev2::sk;
use crate::ikev2::wire::{DeletePayload, ExchangeType, Message, NotifyType, Payload, ProtocolId};

/// An authenticated IKE SA and its CHILD SA, if one is up.
pub(crate) struct Established {
    pub(crate) keyed: Keyed,
    pub(crate) child: Option<ChildHandle>,
    /// CHILD SAs replaced by a rekey, until the peer deletes them.
    pub(crate) rekeyed: Vec<ChildHandle>,
    /// Last authenticated message from the peer, for liveness checks.
    last_rx: Instant,
    /// Our Delete of the IKE SA is in flight.
    deleting: bool,
    /// A Delete waits for the request in flight to be answered.
    delete_queued: bool,
    /// When the next NAT-keepalive is due; only when we are behind a NAT.
    next_keepalive: Option<Instant>,
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
            deleting: false,
            delete_queued: false,
            next_keepalive: keepalive_start,
        }
    }

    /// When the next liveness check is due, if `dpd_delay` is set.
    pub(crate) fn liveness_deadline(&self, config: &PeerConfig) -> Option<Instant> {
        if self.deleting {
            return None;
        }
        config.dpd_delay.and_then(|d| self.last_rx.checked_add(d))
    }

    /// When the next NAT-keepalive is due, if we are behind a NAT.
    pub(crate) fn keepalive_deadline(&self) -> Option<Instant> {
        self.next_keepalive.filter(|_| !self.deleting)
    }

    /// Deletes the IKE SA (and with it the CHILD SA): INFORMATIONAL with D(IKE).
    pub(crate) fn delete(mut self, sa: &mut IkeSa, cx: &mut Context<'_>) -> State {
        self.remove_child(cx);
        if self.deleting {
            return State::Established(Box::new(self)); // already on its way
        }
        if sa.pending.is_some() {
            // Window size 1 (RFC 7296 §2.3): the Delete waits for the
            // outstanding request's answer (or its retransmissions running out).
            self.delete_queued = true;
            return State::Established(Box::new(self));
        }
        let payloads = [Payload::Delete(DeletePayload {
            protocol: ProtocolId::Ike,
            spi_size: 0,
            spis: Vec::new(),
        })];
        match self.request(sa, cx, &payloads) {
            Ok(()) => {
                self.deleting = true;
                State::Established(Box::new(self))
            }
            Err(e) => sa.fail(cx, e),
        }
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

    /// Handles the answer to our INFORMATIONAL request.
    pub(crate) fn handle_response(
        mut self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        msg: &Message,
        raw: &[u8],
    ) -> State {
        if sk::open(raw, msg, self.keyed.sk_in(sa.role)).is_err() {
            return State::Established(self);
        }
        sa.pending = None;
        self.last_rx = cx.now;
        if self.deleting {
            return sa.fail(cx, Error::LocallyClosed);
        }
        if self.delete_queued {
            return self.delete(sa, cx);
        }
        State::Established(self)
    }

    /// Sends a liveness check when the peer has been quiet for `dpd_delay`.
    pub(crate) fn handle_timeout(
        mut self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
    ) -> State {
        if let Some(at) = self.keepalive_deadline().filter(|at| cx.now >= *at) {
            cx.out.push_back(Output::NatKeepalive { path: sa.path });
            self.next_keepalive = Some(at.max(cx.now) + NAT_KEEPALIVE);
        }
        let due = self
            .liveness_deadline(&sa.config)
            .is_some_and(|d| cx.now >= d);
        if due
            && sa.pending.is_none()
            && let Err(e) = self.request(sa, cx, &[])
        {
            return sa.fail(cx, e);
        }
        State::Established(self)
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
        let matches = |c: &ChildHandle| spi == c.spi_out.to_be_bytes();
        if self.child.as_ref().is_some_and(matches) {
            return self.child.take();
        }
        let i = self.rekeyed.iter().position(matches)?;
        Some(self.rekeyed.remove(i))
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

    fn request(
        &self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        payloads: &[Payload],
    ) -> Result<(), Error> {
        let id = sa.next_request_id;
        let header = sa.header(ExchangeType::Informational, false, id);
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
