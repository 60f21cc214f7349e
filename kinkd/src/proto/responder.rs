//! Our side of the exchanges a peer starts: accepting the AP-REQ, the
//! reply cache, answering CREATE / DELETE / STATUS / GETTGT, and the ACK
//! that completes a three-message CREATE.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libracoon::ipsec::SaSpec;
use libracoon::isakmp::NotifyType;

use super::output::{Event, Output};
use super::pairs::{Pair, PairKeys, PairState, Role};
use super::{Engine, REPLY_CACHE_TIME, qm, seal};
use crate::krb5::{AcceptMode, Accepted, Kerberos, KrbErrorCode, Rejected};
use crate::wire::{ErrorCode, Message, MessageType, Payload};

/// How often a REPLY that asked for an ACK is sent in all.
const ACK_WAIT_TRIES: u32 = 5;
/// First wait for the ACK, doubled each time.
const ACK_WAIT_BASE: Duration = Duration::from_secs(1);

/// A REPLY we sent, kept to answer a retransmitted command with it.
pub(super) struct CachedReply {
    to: SocketAddr,
    bytes: Vec<u8>,
    expires: Instant,
    ack: Option<AckWait>,
    /// The command it answers: the initiator's EPOCH and its decrypted
    /// payloads. A retransmission repeats both; a restarted peer reusing
    /// the XID does not, and must not get the old answer.
    epoch: u32,
    request: Vec<Payload<'static>>,
}

/// A three-message CREATE waiting for its ACK.
struct AckWait {
    peer: usize,
    spi_in: u32,
    outbound: Box<SaSpec>,
    esp: String,
    sent: u32,
    next: Instant,
    interval: Duration,
}

/// A command that passed the AP-REQ and Cksum checks.
struct Request<'a> {
    from: SocketAddr,
    xid: u32,
    /// The initiator's EPOCH.
    epoch: u32,
    accepted: &'a Accepted,
    /// Its payloads, decrypted.
    inner: &'a [Payload<'static>],
}

/// What a REPLY carries besides the AP-REP.
struct Answer {
    inner: Vec<Payload<'static>>,
    /// Set for a three-message CREATE: ACKREQ, and what the ACK completes.
    ack: Option<AckWait>,
    cache: bool,
}

impl Answer {
    fn plain(inner: Vec<Payload<'static>>) -> Self {
        Self {
            inner,
            ack: None,
            cache: true,
        }
    }

    fn uncached(self) -> Self {
        Self {
            cache: false,
            ..self
        }
    }
}

impl CachedReply {
    /// When the cache next needs attention.
    pub(super) fn next_event(&self) -> Instant {
        self.ack
            .as_ref()
            .map_or(self.expires, |a| a.next.min(self.expires))
    }
}

impl Engine {
    /// Verifies a command's AP-REQ; answers a refused one with KRB_ERROR
    /// (a replay is dropped silently: no oracle, no amplification).
    fn accept(
        &mut self,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        msg: &Message<'_>,
        answer_errors: bool,
    ) -> Option<(u32, Accepted)> {
        let Some((epoch, ap_req)) = msg.payloads.iter().find_map(|p| match p {
            Payload::ApReq { epoch, ap_req } => Some((*epoch, ap_req.clone())),
            _ => None,
        }) else {
            self.stats.malformed += 1;
            self.dropped(from, format!("{} without KINK_AP_REQ", msg.msg_type));
            return None;
        };
        let rejected = match krb.read_ap_req(&ap_req, AcceptMode::Keytab) {
            Ok(a) => return Some((epoch, a)),
            Err(r) => r,
        };
        let code = rejected.error.krb_error_or_generic();
        let retry_u2u = !matches!(
            code,
            KrbErrorCode::KRB_AP_ERR_REPEAT | KrbErrorCode::KRB_AP_ERR_SKEW
        ) && krb.tgt_ticket().is_ok();
        if retry_u2u && let Ok(a) = krb.read_ap_req(&ap_req, AcceptMode::UserToUser) {
            return Some((epoch, a));
        }
        self.refuse(krb, from, msg.xid, &rejected, answer_errors);
        None
    }

    /// Counts and reports a refused AP-REQ; answers it with KRB_ERROR
    /// when `answer` and the source is a configured peer (RFC 4120 §3.2.6;
    /// never to other sources, so a spoofed AP-REQ reflects nothing).
    fn refuse(
        &mut self,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        xid: u32,
        rejected: &Rejected,
        answer: bool,
    ) {
        let code = rejected.error.krb_error_or_generic();
        if code == KrbErrorCode::KRB_AP_ERR_REPEAT {
            self.stats.replayed += 1;
            self.dropped(
                from,
                "replayed AP-REQ (KRB_AP_ERR_REPEAT), not answered".into(),
            );
            return;
        }
        let reason = format!("refused an AP-REQ from {from}: {code} ({})", rejected.error);
        match self.peers.iter().position(|p| p.address.ip() == from.ip()) {
            Some(peer) => self.failed(peer, reason),
            None => self.dropped(from, reason),
        }
        if !answer || !self.is_peer_address(from) {
            return;
        }
        match krb.make_error(code, rejected.client_time, None) {
            Ok(der) => {
                self.stats.krb_errors_sent += 1;
                let reply = seal::plain(
                    MessageType::Reply,
                    xid,
                    vec![Payload::KrbError(Cow::Owned(der))],
                );
                self.send(from, reply);
            }
            Err(e) => self.dropped(from, format!("cannot build a KRB_ERROR: {e}")),
        }
    }

    /// CREATE, DELETE or STATUS from a peer.
    pub(super) fn on_command(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        bytes: &[u8],
        msg: &Message<'_>,
    ) {
        let Some((epoch, accepted)) = self.accept(krb, from, msg, true) else {
            return;
        };
        let inner = match seal::open(krb, &accepted.session_key, bytes, msg) {
            Ok(inner) => inner,
            Err(e) => {
                self.stats.bad_checksum += 1;
                self.dropped(from, format!("{} refused: {e}", msg.msg_type));
                return;
            }
        };
        // A retransmission (fresh AP-REQ, same XID, same command): the
        // same answer.
        let key = (accepted.client.clone(), msg.xid);
        if let Some(cached) = self.replies.get(&key) {
            if cached.epoch == epoch && cached.request == inner {
                let (to, bytes) = (cached.to, cached.bytes.clone());
                self.stats.replies_resent += 1;
                self.send(to, bytes);
                return;
            }
            self.replies.remove(&key);
        }
        let request = Request {
            from,
            xid: msg.xid,
            epoch,
            accepted: &accepted,
            inner: &inner,
        };
        let Some(peer) = self
            .peers
            .iter()
            .position(|p| p.principal == accepted.client)
        else {
            self.dropped(
                from,
                format!(
                    "{} from {}, whom no remote's peers_principal names",
                    msg.msg_type, accepted.client
                ),
            );
            // Not cached: any principal of the realm could fill the cache.
            let notify = qm::build_notify(NotifyType::InvalidIdInformation);
            self.reply(
                krb,
                now,
                &request,
                Answer::plain(vec![Payload::Isakmp(notify)]).uncached(),
            );
            return;
        };
        self.check_epoch(peer, epoch, None);
        let isakmp = inner.iter().find_map(|p| match p {
            Payload::Isakmp(i) => Some(i.clone()),
            _ => None,
        });
        match msg.msg_type {
            MessageType::Create => match isakmp {
                Some(i) => self.respond_create(now, krb, &request, peer, &i),
                None => {
                    self.failed(peer, "CREATE without Quick Mode payloads".into());
                    let err = vec![Payload::Error(ErrorCode::ProtoErr)];
                    self.reply(krb, now, &request, Answer::plain(err));
                }
            },
            MessageType::Delete => {
                let spis = isakmp.map(|i| qm::parse_delete(&i));
                let answer = match spis {
                    Some(Ok(spis)) => {
                        self.peer_deleted(now, peer, &spis);
                        Vec::new()
                    }
                    Some(Err(e)) => {
                        self.dropped(from, format!("unusable DELETE: {e}"));
                        vec![Payload::Error(ErrorCode::ProtoErr)]
                    }
                    None => vec![Payload::Error(ErrorCode::ProtoErr)],
                };
                self.reply(krb, now, &request, Answer::plain(answer));
            }
            _ => {
                self.reply(krb, now, &request, Answer::plain(Vec::new()));
            }
        }
    }

    /// Seals, caches (unless told not to) and sends a REPLY.
    fn reply(
        &mut self,
        krb: &dyn Kerberos,
        now: Instant,
        req: &Request<'_>,
        answer: Answer,
    ) -> bool {
        let sealed = seal::seal(
            krb,
            &req.accepted.session_key,
            MessageType::Reply,
            req.xid,
            answer.ack.is_some(),
            Payload::ApRep {
                epoch: self.epoch,
                ap_rep: Cow::Borrowed(&req.accepted.ap_rep),
            },
            &answer.inner,
        );
        let bytes = match sealed {
            Ok(b) => b,
            Err(e) => {
                self.dropped(req.from, format!("cannot protect our REPLY: {e}"));
                return false;
            }
        };
        if answer.cache {
            self.replies.insert(
                (req.accepted.client.clone(), req.xid),
                CachedReply {
                    to: req.from,
                    bytes: bytes.clone(),
                    expires: now + REPLY_CACHE_TIME,
                    ack: answer.ack,
                    epoch: req.epoch,
                    request: req.inner.to_vec(),
                },
            );
        }
        self.send(req.from, bytes);
        true
    }

    /// CREATE: choose, key both SAs, answer (optimistic: two messages;
    /// otherwise ACKREQ and the outbound SA waits for the ACK).
    fn respond_create(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        request: &Request<'_>,
        peer: usize,
        isakmp: &crate::wire::IsakmpPayload<'_>,
    ) {
        let accepted = request.accepted;
        let refuse = |this: &mut Self, krb: &mut dyn Kerberos, why: String, notify: NotifyType| {
            this.failed(peer, why);
            let inner = vec![Payload::Isakmp(qm::build_notify(notify))];
            this.reply(krb, now, request, Answer::plain(inner));
        };
        let req = match qm::parse_create(isakmp) {
            Ok(r) => r,
            Err(e) => return refuse(self, krb, format!("unusable CREATE: {e}"), e.notify()),
        };
        let choice = match qm::choose(&req, &self.peers[peer]) {
            Ok(c) => c,
            Err(e) => return refuse(self, krb, format!("CREATE refused: {e}"), e.notify()),
        };
        let spi_in = self.new_spi();
        let nr = if choice.optimistic {
            Some(None)
        } else {
            self.nonce().map(Some)
        };
        let (Some(spi_in), Some(nr)) = (spi_in, nr) else {
            return refuse(
                self,
                krb,
                "the OS random source failed".into(),
                NotifyType::NoProposalChosen,
            );
        };
        let lifetime = choice.lifetime;
        let cfg = &self.peers[peer];
        let selector = choice.selector.clone();
        let chosen = choice.proposal;
        let keys = PairKeys {
            peer: cfg,
            key: &accepted.session_key,
            esp: chosen.esp,
            mode: chosen.mode,
            lifetime,
            selector,
            spi_in,
            spi_out: chosen.spi,
            ni: &req.nonce,
            nr: nr.as_deref(),
        };
        let (inbound, outbound) = match (keys.inbound(krb), keys.outbound(krb)) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => {
                return refuse(
                    self,
                    krb,
                    format!("cannot derive keys: {e}"),
                    NotifyType::NoProposalChosen,
                );
            }
        };
        let esp = qm::esp_name(&chosen.esp);
        let answer = qm::build_reply(
            chosen,
            spi_in,
            nr.as_deref(),
            &choice.lifetime,
            req.ids.as_ref(),
        );
        let spi_out = chosen.spi;
        let (inbound_id, outbound_id) = (inbound.id, outbound.id);
        self.outputs.push_back(Output::InstallSa(Box::new(inbound)));
        let three_way = !choice.optimistic;
        let ack = if three_way {
            Some(AckWait {
                peer,
                spi_in,
                outbound: Box::new(outbound),
                esp: esp.clone(),
                sent: 1,
                next: now + ACK_WAIT_BASE,
                interval: ACK_WAIT_BASE,
            })
        } else {
            self.outputs
                .push_back(Output::InstallSa(Box::new(outbound)));
            None
        };
        self.pairs.push(Pair {
            peer,
            role: Role::Responder,
            spi_in,
            spi_out,
            esp: esp.clone(),
            state: if three_way {
                PairState::WaitingAck
            } else {
                PairState::Established
            },
            rekeying: false,
            inbound: inbound_id,
            outbound: outbound_id,
            created: now,
        });
        let answer = Answer {
            inner: vec![Payload::Isakmp(answer)],
            ack,
            cache: true,
        };
        let sent = self.reply(krb, now, request, answer);
        if !sent {
            self.pairs.retain(|p| p.spi_in != spi_in);
            self.outputs.push_back(Output::DeleteSa(inbound_id));
            if !three_way {
                self.outputs.push_back(Output::DeleteSa(outbound_id));
            }
            return;
        }
        if !three_way {
            self.stats.creates += 1;
            self.event(Event::Established {
                peer: self.peers[peer].name.clone(),
                spi_in,
                spi_out,
                esp,
                rekey: false,
                three_way: false,
            });
        }
    }

    /// The peer deleted its inbound SAs `spis` (our outbound ones).
    fn peer_deleted(&mut self, now: Instant, peer: usize, spis: &[u32]) {
        let mut hit = Vec::new();
        for pair in &mut self.pairs {
            if pair.peer == peer
                && spis.contains(&pair.spi_out)
                && !matches!(pair.state, PairState::Deleting(_))
            {
                pair.state = PairState::Deleting(now + super::DELETE_GRACE);
                hit.push((pair.outbound, pair.spi_in));
            }
        }
        for (outbound, spi_in) in hit {
            self.outputs.push_back(Output::DeleteSa(outbound));
            self.event(Event::Deleted {
                peer: self.peers[peer].name.clone(),
                spi_in,
                reason: "DELETE from the peer".into(),
            });
        }
    }

    /// ACK: completes a three-message CREATE. Never answered (RFC 4430
    /// §3.2: an ACK is not acknowledged), also not when refused.
    pub(super) fn on_ack(
        &mut self,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        bytes: &[u8],
        msg: &Message<'_>,
    ) {
        let Some((_epoch, accepted)) = self.accept(krb, from, msg, false) else {
            return;
        };
        if let Err(e) = seal::open(krb, &accepted.session_key, bytes, msg) {
            self.stats.bad_checksum += 1;
            self.dropped(from, format!("ACK refused: {e}"));
            return;
        }
        let Some(wait) = self
            .replies
            .get_mut(&(accepted.client, msg.xid))
            .and_then(|c| c.ack.take())
        else {
            // A late duplicate ACK, or one for nothing we know: harmless.
            self.stats.unknown_xid += 1;
            return;
        };
        let AckWait {
            peer,
            spi_in,
            outbound,
            esp,
            ..
        } = wait;
        // The pair may be gone meanwhile (DELETE, the peer restarted):
        // then the outbound SA must not appear after all.
        let Some(pair) = self
            .pairs
            .iter_mut()
            .find(|p| p.spi_in == spi_in && p.state == PairState::WaitingAck)
        else {
            self.stats.unknown_xid += 1;
            return;
        };
        pair.state = PairState::Established;
        let spi_out = outbound.id.spi;
        self.outputs.push_back(Output::InstallSa(outbound));
        self.stats.creates += 1;
        self.event(Event::Established {
            peer: self.peers[peer].name.clone(),
            spi_in,
            spi_out,
            esp,
            rekey: false,
            three_way: true,
        });
    }

    /// GETTGT: our TGT, unauthenticated (there is no key yet), so that the
    /// peer can get a user-to-user ticket for us. Only for a configured
    /// peer's address and a TGT_REQ that names us: the answer is many
    /// times the request, so anything else would make kinkd a reflector.
    pub(super) fn on_gettgt(&mut self, krb: &dyn Kerberos, from: SocketAddr, msg: &Message<'_>) {
        let asked = msg.payloads.iter().find_map(|p| match p {
            Payload::TgtReq(name) => Some(String::from_utf8_lossy(name).into_owned()),
            _ => None,
        });
        let names_us = asked
            .as_deref()
            .and_then(|name| krb.canonical_name(name).ok())
            .is_some_and(|name| name == krb.principal());
        if !self.is_peer_address(from) || !names_us {
            self.stats.malformed += 1;
            self.dropped(
                from,
                format!("GETTGT for {asked:?} not answered (not a configured peer, or not our principal)"),
            );
            return;
        }
        let reply = match krb.tgt_ticket() {
            Ok(tgt) => seal::plain(
                MessageType::Reply,
                msg.xid,
                vec![Payload::TgtRep(Cow::Owned(tgt))],
            ),
            Err(e) => {
                self.dropped(from, format!("GETTGT, but we hold no TGT: {e}"));
                seal::error_reply(msg.xid, ErrorCode::IntErr)
            }
        };
        self.send(from, reply);
    }

    /// Re-sends REPLYs still waiting for their ACK; forgets old ones.
    pub(super) fn resend_replies_due(&mut self, now: Instant, krb: &mut dyn Kerberos) {
        let mut resend = Vec::new();
        let mut gave_up = Vec::new();
        let pairs = &self.pairs;
        for cached in self.replies.values_mut() {
            let Some(wait) = cached.ack.as_mut() else {
                continue;
            };
            // The pair went meanwhile (DELETE, the peer restarted).
            let waiting = pairs
                .iter()
                .any(|p| p.spi_in == wait.spi_in && p.state == PairState::WaitingAck);
            if !waiting {
                cached.ack = None;
                continue;
            }
            if wait.next > now {
                continue;
            }
            if wait.sent >= ACK_WAIT_TRIES {
                gave_up.push((wait.peer, wait.spi_in));
                cached.ack = None;
                continue;
            }
            wait.sent += 1;
            wait.interval *= 2;
            wait.next = now + wait.interval;
            resend.push((cached.to, cached.bytes.clone()));
        }
        for (to, bytes) in resend {
            self.stats.replies_resent += 1;
            self.send(to, bytes);
        }
        // The initiator believes in the pair: tell it with DELETE.
        for (peer, spi_in) in gave_up {
            self.failed(peer, "no ACK for our REPLY".into());
            self.delete_pair(now, krb, peer, spi_in, "the peer never sent the ACK");
        }
        self.replies
            .retain(|_, c| c.expires > now || c.ack.is_some());
    }
}
