//! Our side of the exchanges we start: CREATE (optimistic, with ACK when
//! the responder asks for it), DELETE, GETTGT; retransmission with a
//! fresh AP-REQ; reading the REPLY.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libracoon::ipsec::{IpsecMode, SaId};

use super::output::{Event, Output};
use super::pairs::{Pair, PairKeys, PairState, Role};
use super::{Engine, REPLY_CACHE_TIME, TICKET_MARGIN_SECS, qm, seal};
use crate::krb5::{ApReqId, Kerberos, KrbErrorCode, SessionKey, TicketKind};
use crate::wire::{IsakmpPayload, Message, MessageType, Payload};

/// Retransmission intervals double up to this.
const MAX_RETRANSMIT_INTERVAL: Duration = Duration::from_secs(30);

/// Something to do with a peer once we hold a ticket for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Want {
    /// A CREATE; for a rekey, the inbound SPI of the pair it replaces.
    Create { rekey_of: Option<u32> },
    /// A DELETE of the pair with this inbound SPI (outbound already gone).
    Delete { spi_in: u32 },
}

/// A command we sent and may have to send again.
pub(super) struct Transaction {
    pub(super) peer: usize,
    kind: Kind,
    /// Every AP-REQ sent for it: the REPLY may answer any of them.
    ap_reqs: Vec<ApReqId>,
    key: Option<SessionKey>,
    /// Sends so far.
    sent: u32,
    pub(super) next: Instant,
    interval: Duration,
    last: Vec<u8>,
}

enum Kind {
    Create(Box<Create>),
    Delete {
        spi_in: u32,
    },
    GetTgt,
    /// A finished three-message CREATE: re-send the ACK if the REPLY comes
    /// again (our ACK was lost), until `next`.
    AckAging,
}

struct Create {
    spi_in: u32,
    nonce: Vec<u8>,
    isakmp: IsakmpPayload<'static>,
    rekey_of: Option<u32>,
}

impl Transaction {
    /// Whether this only keeps a finished CREATE's ACK for a repeated
    /// REPLY.
    pub(super) fn aging(&self) -> bool {
        matches!(self.kind, Kind::AckAging)
    }

    /// Our inbound SPI if this is a CREATE in progress.
    pub(super) fn creating(&self) -> Option<u32> {
        match &self.kind {
            Kind::Create(c) => Some(c.spi_in),
            _ => None,
        }
    }
}

impl Engine {
    /// Starts `want` now if we hold a usable ticket, else asks the driver
    /// for one (or the peer for its TGT first, user-to-user).
    pub(super) fn want(&mut self, now: Instant, krb: &mut dyn Kerberos, peer: usize, want: Want) {
        let valid = krb
            .now()
            .map(|(secs, _)| secs)
            .ok()
            .is_some_and(|now_secs| {
                self.state[peer]
                    .ticket_end
                    .is_some_and(|end| end > now_secs + TICKET_MARGIN_SECS)
            });
        if valid {
            self.start(now, krb, peer, want);
            return;
        }
        self.state[peer].wants.push(want);
        if self.state[peer].fetching {
            return;
        }
        self.state[peer].fetching = true;
        let cfg = &self.peers[peer];
        if cfg.user_to_user {
            if let Some(tgt) = self.state[peer].tgt.clone() {
                self.outputs.push_back(Output::FetchTicket {
                    peer: cfg.principal.clone(),
                    kind: TicketKind::UserToUser,
                    peer_tgt: Some(tgt),
                });
            } else {
                self.send_gettgt(now, peer);
            }
        } else {
            self.outputs.push_back(Output::FetchTicket {
                peer: cfg.principal.clone(),
                kind: TicketKind::Service,
                peer_tgt: None,
            });
        }
    }

    /// Gives up on `want` (no ticket).
    pub(super) fn abandon(&mut self, peer: usize, want: Want, reason: &str) {
        match want {
            Want::Create { rekey_of } => {
                if let Some(old) = rekey_of
                    && let Some(p) = self.pairs.iter_mut().find(|p| p.spi_in == old)
                {
                    p.rekeying = false;
                }
                self.failed(peer, reason.to_owned());
            }
            Want::Delete { spi_in } => {
                // Without a ticket the peer cannot be told; our SAs go
                // anyway (the pair's grace timer removes the inbound SA).
                self.dropped(
                    self.peers[peer].address,
                    format!("DELETE of SPI {spi_in:08x} not sent: {reason}"),
                );
            }
        }
    }

    fn ticket_kind(&self, peer: usize) -> TicketKind {
        if self.peers[peer].user_to_user {
            TicketKind::UserToUser
        } else {
            TicketKind::Service
        }
    }

    /// Sends the first message of `want`.
    pub(super) fn start(&mut self, now: Instant, krb: &mut dyn Kerberos, peer: usize, want: Want) {
        match want {
            Want::Create { rekey_of } => self.start_create(now, krb, peer, rekey_of),
            Want::Delete { spi_in } => {
                let isakmp = qm::build_delete(&[spi_in]);
                let kind = Kind::Delete { spi_in };
                if let Err(reason) =
                    self.send_command(now, krb, peer, MessageType::Delete, kind, Some(isakmp))
                {
                    self.abandon(peer, Want::Delete { spi_in }, &reason);
                }
            }
        }
    }

    fn start_create(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        peer: usize,
        rekey_of: Option<u32>,
    ) {
        let (Some(spi_in), Some(nonce)) = (self.new_spi(), self.nonce()) else {
            self.abandon(
                peer,
                Want::Create { rekey_of },
                "the OS random source failed",
            );
            return;
        };
        let cfg = &self.peers[peer];
        let ids = (cfg.mode == IpsecMode::Tunnel).then_some(&cfg.selector);
        let offer = qm::Offer {
            proposals: &cfg.proposals,
            spi: spi_in,
            nonce: &nonce,
            mode: cfg.mode,
            lifetime: &cfg.lifetime,
            ids,
        };
        let isakmp = qm::build_create(&offer);
        let kind = Kind::Create(Box::new(Create {
            spi_in,
            nonce,
            isakmp: isakmp.clone(),
            rekey_of,
        }));
        if let Err(reason) =
            self.send_command(now, krb, peer, MessageType::Create, kind, Some(isakmp))
        {
            self.abandon(peer, Want::Create { rekey_of }, &reason);
        }
    }

    /// Builds, records and sends a command; the optimistic inbound SA of a
    /// CREATE is installed before the CREATE leaves.
    fn send_command(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        peer: usize,
        msg_type: MessageType,
        kind: Kind,
        isakmp: Option<IsakmpPayload<'static>>,
    ) -> Result<(), String> {
        let principal = self.peers[peer].principal.clone();
        let ap_req = krb
            .make_ap_req(&principal, self.ticket_kind(peer))
            .map_err(|e| format!("cannot build an AP-REQ for {principal}: {e}"))?;
        let inner: Vec<Payload<'static>> = isakmp.into_iter().map(Payload::Isakmp).collect();
        let xid = self.new_xid().ok_or("the OS random source failed")?;
        let bytes = seal::seal(
            krb,
            &ap_req.session_key,
            msg_type,
            xid,
            false,
            Payload::ApReq {
                epoch: self.epoch,
                ap_req: Cow::Owned(ap_req.bytes),
            },
            &inner,
        )
        .map_err(|e| format!("cannot protect the {msg_type}: {e}"))?;
        if let Kind::Create(c) = &kind {
            // Optimistic: our inbound SA for the first proposal, keyed
            // without Nr, in place before the responder can use it.
            let cfg = &self.peers[peer];
            let keys = PairKeys {
                peer: cfg,
                key: &ap_req.session_key,
                esp: cfg.proposals[0],
                mode: cfg.mode,
                lifetime: cfg.lifetime,
                selector: cfg.selector.clone(),
                spi_in: c.spi_in,
                spi_out: 0,
                ni: &c.nonce,
                nr: None,
            };
            let inbound = keys
                .inbound(krb)
                .map_err(|e| format!("cannot derive keys: {e}"))?;
            self.outputs.push_back(Output::InstallSa(Box::new(inbound)));
        }
        let base = self.peers[peer].retransmit_base;
        let to = self.peers[peer].address;
        self.transactions.insert(
            xid,
            Transaction {
                peer,
                kind,
                ap_reqs: vec![ap_req.id],
                key: Some(ap_req.session_key),
                sent: 1,
                next: now + base,
                interval: base,
                last: bytes.clone(),
            },
        );
        self.send(to, bytes);
        Ok(())
    }

    fn new_xid(&mut self) -> Option<u32> {
        for _ in 0..64 {
            let xid = u32::from_be_bytes(self.random::<4>()?);
            if xid != 0 && !self.transactions.contains_key(&xid) {
                return Some(xid);
            }
        }
        None
    }

    /// GETTGT: ask the peer for its TGT (unauthenticated; RFC 4430 §3.1).
    fn send_gettgt(&mut self, now: Instant, peer: usize) {
        let Some(xid) = self.new_xid() else {
            self.state[peer].fetching = false;
            let wants = std::mem::take(&mut self.state[peer].wants);
            for want in wants {
                self.abandon(peer, want, "the OS random source failed");
            }
            return;
        };
        let cfg = &self.peers[peer];
        let bytes = seal::plain(
            MessageType::GetTgt,
            xid,
            vec![Payload::TgtReq(Cow::Owned(
                cfg.principal.as_bytes().to_vec(),
            ))],
        );
        let (to, base) = (cfg.address, cfg.retransmit_base);
        self.transactions.insert(
            xid,
            Transaction {
                peer,
                kind: Kind::GetTgt,
                ap_reqs: Vec::new(),
                key: None,
                sent: 1,
                next: now + base,
                interval: base,
                last: bytes.clone(),
            },
        );
        self.send(to, bytes);
    }

    /// Retransmits what is due (fresh AP-REQ, same XID) and gives up on
    /// what has been sent often enough.
    pub(super) fn retransmit_due(&mut self, now: Instant, krb: &mut dyn Kerberos) {
        let due: Vec<u32> = self
            .transactions
            .iter()
            .filter(|(_, t)| t.next <= now)
            .map(|(xid, _)| *xid)
            .collect();
        for xid in due {
            let Some(mut tx) = self.transactions.remove(&xid) else {
                continue;
            };
            if matches!(tx.kind, Kind::AckAging) {
                self.release(krb, &tx);
                continue;
            }
            let cfg = &self.peers[tx.peer];
            if tx.sent >= cfg.retransmit_tries {
                let reason = format!("no REPLY from {} after {} tries", cfg.address, tx.sent);
                self.give_up(krb, tx, &reason);
                continue;
            }
            let bytes = match self.refresh(krb, &mut tx) {
                Ok(b) => b,
                Err(reason) => {
                    self.give_up(krb, tx, &reason);
                    continue;
                }
            };
            tx.sent += 1;
            tx.interval = (tx.interval * 2).min(MAX_RETRANSMIT_INTERVAL);
            tx.next = now + tx.interval;
            tx.last = bytes.clone();
            self.stats.retransmits += 1;
            let to = self.peers[tx.peer].address;
            self.transactions.insert(xid, tx);
            self.send(to, bytes);
        }
    }

    /// The command again with a fresh AP-REQ (a replayed authenticator
    /// would be refused by the responder's replay cache).
    fn refresh(&self, krb: &mut dyn Kerberos, tx: &mut Transaction) -> Result<Vec<u8>, String> {
        let Ok(msg) = Message::parse(&tx.last) else {
            return Err("internal: cannot re-read our own message".into());
        };
        if msg.msg_type == MessageType::GetTgt {
            return Ok(tx.last.clone());
        }
        let principal = self.peers[tx.peer].principal.clone();
        let ap_req = krb
            .make_ap_req(&principal, self.ticket_kind(tx.peer))
            .map_err(|e| format!("cannot build an AP-REQ for {principal}: {e}"))?;
        // The ticket, and so the key, may have been renewed meanwhile; the
        // optimistic inbound SA keeps the key it was made with, so a CREATE
        // must stay on its original key.
        if let Some(key) = &tx.key
            && *key != ap_req.session_key
            && tx.creating().is_some()
        {
            krb.release_ap_req(ap_req.id);
            return Err("the ticket changed during the exchange".into());
        }
        let inner = match &tx.kind {
            Kind::Create(c) => vec![Payload::Isakmp(c.isakmp.clone())],
            Kind::Delete { spi_in } => vec![Payload::Isakmp(qm::build_delete(&[*spi_in]))],
            Kind::GetTgt | Kind::AckAging => Vec::new(),
        };
        let bytes = seal::seal(
            krb,
            &ap_req.session_key,
            msg.msg_type,
            msg.xid,
            false,
            Payload::ApReq {
                epoch: self.epoch,
                ap_req: Cow::Owned(ap_req.bytes),
            },
            &inner,
        )
        .map_err(|e| format!("cannot protect the {}: {e}", msg.msg_type))?;
        tx.ap_reqs.push(ap_req.id);
        tx.key = Some(ap_req.session_key);
        Ok(bytes)
    }

    fn release(&self, krb: &mut dyn Kerberos, tx: &Transaction) {
        for id in &tx.ap_reqs {
            krb.release_ap_req(*id);
        }
    }

    /// A transaction failed for good.
    pub(super) fn give_up(&mut self, krb: &mut dyn Kerberos, tx: Transaction, reason: &str) {
        self.release(krb, &tx);
        match tx.kind {
            Kind::Create(c) => {
                self.outputs.push_back(Output::DeleteSa(SaId {
                    dst: self.peers[tx.peer].local,
                    spi: c.spi_in,
                }));
                self.abandon(
                    tx.peer,
                    Want::Create {
                        rekey_of: c.rekey_of,
                    },
                    reason,
                );
            }
            Kind::Delete { spi_in } => {
                self.abandon(tx.peer, Want::Delete { spi_in }, reason);
            }
            Kind::GetTgt => {
                self.state[tx.peer].fetching = false;
                let wants = std::mem::take(&mut self.state[tx.peer].wants);
                for want in wants {
                    self.abandon(tx.peer, want, &format!("GETTGT failed: {reason}"));
                }
            }
            Kind::AckAging => {}
        }
    }

    /// Deletes one of our pairs: outbound now, DELETE to the peer, inbound
    /// after the grace period.
    pub(super) fn delete_pair(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        peer: usize,
        spi_in: u32,
        reason: &str,
    ) {
        let Some(pair) = self.pairs.iter_mut().find(|p| p.spi_in == spi_in) else {
            return;
        };
        pair.state = PairState::Deleting(now + super::DELETE_GRACE);
        let (outbound, spi_in) = (pair.outbound, pair.spi_in);
        self.outputs.push_back(Output::DeleteSa(outbound));
        self.event(Event::Deleted {
            peer: self.peers[peer].name.clone(),
            spi_in,
            reason: reason.to_owned(),
        });
        self.want(now, krb, peer, Want::Delete { spi_in });
    }

    /// A REPLY to one of our commands.
    pub(super) fn on_reply(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        bytes: &[u8],
        msg: &Message<'_>,
    ) {
        let Some(tx) = self.transactions.get(&msg.xid) else {
            self.stats.unknown_xid += 1;
            self.dropped(from, format!("REPLY for unknown XID {:#010x}", msg.xid));
            return;
        };
        if from != self.peers[tx.peer].address {
            self.stats.unknown_xid += 1;
            self.dropped(
                from,
                format!("REPLY for XID {:#010x} from the wrong address", msg.xid),
            );
            return;
        }
        if matches!(tx.kind, Kind::GetTgt) {
            self.on_tgt_reply(now, krb, from, msg);
            return;
        }
        // Unauthenticated errors first: no AP_REP, no checksum.
        let ap_rep = msg.payloads.iter().find_map(|p| match p {
            Payload::ApRep { epoch, ap_rep } => Some((*epoch, ap_rep.clone())),
            _ => None,
        });
        let Some((epoch, ap_rep)) = ap_rep else {
            self.on_unauthenticated_error(krb, from, msg);
            return;
        };
        // The AP-REP answers one of the AP-REQs we sent (newest first).
        let Some(tx) = self.transactions.get(&msg.xid) else {
            return;
        };
        let verified = tx
            .ap_reqs
            .iter()
            .rev()
            .find_map(|id| krb.read_ap_rep(*id, &ap_rep).ok());
        let Some(info) = verified else {
            self.stats.bad_checksum += 1;
            self.dropped(
                from,
                "REPLY whose AP-REP answers none of our AP-REQs".into(),
            );
            return;
        };
        let inner = match seal::open(krb, &info.session_key, bytes, msg) {
            Ok(inner) => inner,
            Err(e) => {
                self.stats.bad_checksum += 1;
                self.dropped(from, format!("REPLY refused: {e}"));
                return;
            }
        };
        let Some(tx) = self.transactions.remove(&msg.xid) else {
            return;
        };
        let peer = tx.peer;
        match &tx.kind {
            Kind::Create(c) => self.check_epoch(peer, epoch, Some(c.spi_in)),
            _ => self.check_epoch(peer, epoch, None),
        }
        if let Some(reason) = self.authenticated_error(&inner) {
            self.give_up(krb, tx, &reason);
            return;
        }
        match tx.kind {
            Kind::Create(ref c) => {
                let c = c.clone_parts();
                self.finish_create(now, krb, tx, &info.session_key, msg, &inner, c);
            }
            Kind::Delete { .. } => self.release(krb, &tx),
            Kind::AckAging => {
                // The responder did not get our ACK: send it again.
                self.send_ack(krb, &info.session_key, msg.xid, peer);
                self.transactions.insert(msg.xid, tx);
            }
            Kind::GetTgt => {}
        }
    }

    /// KINK_ERROR, KRB_ERROR or an ISAKMP error notify inside an
    /// authenticated REPLY, as one line for the operator.
    fn authenticated_error(&mut self, inner: &[Payload<'_>]) -> Option<String> {
        for p in inner {
            match p {
                Payload::Error(code) if *code != crate::wire::ErrorCode::Ok => {
                    self.stats.kink_errors_received += 1;
                    return Some(format!("the peer answered {code}"));
                }
                Payload::KrbError(_) => {
                    self.stats.krb_errors_received += 1;
                    return Some("the peer answered with a Kerberos error".into());
                }
                Payload::Isakmp(isakmp) => {
                    if let Some(t) = qm::find_notify(isakmp) {
                        return Some(format!("the peer refused: {t}"));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A REPLY without AP_REP: a KRB_ERROR (the responder could not accept
    /// our AP-REQ) or a KINK_ERROR. Not authenticated, so it ends the
    /// transaction only for Kerberos errors, which a responder cannot
    /// authenticate by design; the operator learns the exact reason.
    fn on_unauthenticated_error(
        &mut self,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        let xid = msg.xid;
        for p in &msg.payloads {
            match p {
                Payload::KrbError(der) => {
                    self.stats.krb_errors_received += 1;
                    let text = match krb.read_error(der) {
                        Ok(e) => describe_krb_error(krb, &e),
                        Err(e) => format!("an undecodable KRB_ERROR ({e})"),
                    };
                    if let Some(tx) = self.transactions.remove(&xid) {
                        let peer = tx.peer;
                        if text.contains("KRB_AP_ERR_TKT_EXPIRED")
                            || text.contains("KRB_AP_ERR_BADKEYVER")
                        {
                            // A new ticket may help next time.
                            let principal = self.peers[peer].principal.clone();
                            krb.forget_tickets(&principal);
                            self.state[peer].ticket_end = None;
                        }
                        self.give_up(krb, tx, &format!("the peer refused our AP-REQ: {text}"));
                    }
                    return;
                }
                Payload::Error(code) => {
                    self.stats.kink_errors_received += 1;
                    self.dropped(
                        from,
                        format!(
                            "unauthenticated REPLY with {code} for XID {xid:#010x}; still waiting"
                        ),
                    );
                    return;
                }
                _ => {}
            }
        }
        self.stats.malformed += 1;
        self.dropped(from, "REPLY without AP_REP, KRB_ERROR or KINK_ERROR".into());
    }

    /// The REPLY to GETTGT: the peer's TGT, for a user-to-user ticket.
    fn on_tgt_reply(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        let tgt = msg.payloads.iter().find_map(|p| match p {
            Payload::TgtRep(t) => Some(t.to_vec()),
            _ => None,
        });
        let Some(tgt) = tgt else {
            self.on_unauthenticated_error(krb, from, msg);
            return;
        };
        let Some(tx) = self.transactions.remove(&msg.xid) else {
            return;
        };
        let peer = tx.peer;
        self.state[peer].tgt = Some(tgt.clone());
        self.outputs.push_back(Output::FetchTicket {
            peer: self.peers[peer].principal.clone(),
            kind: TicketKind::UserToUser,
            peer_tgt: Some(tgt),
        });
        let _ = now;
    }

    /// Installs what the REPLY to our CREATE settled; sends ACK when the
    /// responder asked for it or our optimistic keys no longer hold.
    #[allow(clippy::too_many_arguments)]
    fn finish_create(
        &mut self,
        now: Instant,
        krb: &mut dyn Kerberos,
        tx: Transaction,
        key: &SessionKey,
        msg: &Message<'_>,
        inner: &[Payload<'_>],
        c: CreateParts,
    ) {
        let peer = tx.peer;
        let isakmp = inner.iter().find_map(|p| match p {
            Payload::Isakmp(i) => Some(i),
            _ => None,
        });
        let answer = match isakmp.map(|i| qm::parse_reply(i, &self.peers[peer].proposals)) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                self.give_up(krb, tx, &format!("unusable REPLY: {e}"));
                return;
            }
            None => {
                self.give_up(krb, tx, "REPLY without Quick Mode payloads");
                return;
            }
        };
        if answer.mode != self.peers[peer].mode {
            let reason = format!("the peer answered with {:?} mode", answer.mode);
            self.give_up(krb, tx, &reason);
            return;
        }
        let optimistic = answer.index == 0 && answer.nonce.is_none();
        let lifetime = qm::negotiated_lifetime(&answer.lifetime, &self.peers[peer].lifetime);
        let cfg = &self.peers[peer];
        let keys = PairKeys {
            peer: cfg,
            key,
            esp: answer.esp,
            mode: answer.mode,
            lifetime,
            selector: cfg.selector.clone(),
            spi_in: c.spi_in,
            spi_out: answer.spi,
            ni: &c.nonce,
            nr: answer.nonce.as_deref(),
        };
        let (inbound, outbound) = match (keys.inbound(krb), keys.outbound(krb)) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => {
                self.give_up(krb, tx, &format!("cannot derive keys: {e}"));
                return;
            }
        };
        let esp = qm::esp_name(&answer.esp);
        let (inbound_id, outbound_id) = (inbound.id, outbound.id);
        // The inbound SA is re-keyed unless the optimistic guess held;
        // installing replaces the optimistic one under the same SPI.
        if !optimistic {
            self.outputs.push_back(Output::InstallSa(Box::new(inbound)));
        }
        self.outputs
            .push_back(Output::InstallSa(Box::new(outbound)));
        let three_way = !optimistic || msg.ack_request();
        if three_way {
            self.send_ack(krb, key, msg.xid, peer);
        }
        self.stats.creates += 1;
        self.pairs.push(Pair {
            peer,
            role: Role::Initiator,
            spi_in: c.spi_in,
            spi_out: answer.spi,
            esp: esp.clone(),
            state: PairState::Established,
            rekeying: false,
            inbound: inbound_id,
            outbound: outbound_id,
            created: now,
        });
        self.event(Event::Established {
            peer: self.peers[peer].name.clone(),
            spi_in: c.spi_in,
            spi_out: answer.spi,
            esp,
            rekey: c.rekey_of.is_some(),
            three_way,
        });
        if three_way {
            // Keep the transaction a while to answer a repeated REPLY.
            self.transactions.insert(
                msg.xid,
                Transaction {
                    kind: Kind::AckAging,
                    next: now + REPLY_CACHE_TIME,
                    ..tx
                },
            );
        } else {
            self.release(krb, &tx);
        }
        if let Some(old) = c.rekey_of {
            self.delete_pair(now, krb, peer, old, "replaced by a rekeyed pair");
        }
    }

    /// ACK: a fresh AP-REQ and the Cksum, nothing else (RFC 4430 §3.2).
    fn send_ack(&mut self, krb: &mut dyn Kerberos, key: &SessionKey, xid: u32, peer: usize) {
        let principal = self.peers[peer].principal.clone();
        let ap_req = match krb.make_ap_req(&principal, self.ticket_kind(peer)) {
            Ok(a) => a,
            Err(e) => {
                self.failed(peer, format!("cannot build the ACK's AP-REQ: {e}"));
                return;
            }
        };
        krb.release_ap_req(ap_req.id);
        let sealed = seal::seal(
            krb,
            key,
            MessageType::Ack,
            xid,
            false,
            Payload::ApReq {
                epoch: self.epoch,
                ap_req: Cow::Owned(ap_req.bytes),
            },
            &[],
        );
        match sealed {
            Ok(bytes) => {
                let to = self.peers[peer].address;
                self.send(to, bytes);
            }
            Err(e) => self.failed(peer, format!("cannot protect the ACK: {e}")),
        }
    }
}

/// The parts of a CREATE transaction needed after it is taken apart.
struct CreateParts {
    spi_in: u32,
    nonce: Vec<u8>,
    rekey_of: Option<u32>,
}

impl Create {
    fn clone_parts(&self) -> CreateParts {
        CreateParts {
            spi_in: self.spi_in,
            nonce: self.nonce.clone(),
            rekey_of: self.rekey_of,
        }
    }
}

/// A KRB_ERROR for the log: its name, and for clock skew how far off.
fn describe_krb_error(krb: &dyn Kerberos, e: &crate::krb5::KrbError) -> String {
    let mut text = e.code.to_string();
    if e.code == KrbErrorCode::KRB_AP_ERR_SKEW
        && let Ok((now, _)) = krb.now()
    {
        text.push_str(&format!(
            " (the peer's clock is {} s from ours; fix time synchronisation)",
            e.server_time.0 - now
        ));
    }
    // The e-text comes from the network: no control characters in our
    // log, and not a novel.
    let clean: String = e
        .text
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    if !clean.is_empty() {
        text.push_str(&format!(": {clean}"));
    }
    text
}
