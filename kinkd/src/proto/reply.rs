//! Reading the REPLY to one of our commands: the AP-REP against every
//! AP-REQ we sent, KINK_CKSUM and KINK_ENCRYPT, errors (authenticated or
//! not), the GETTGT answer, and finishing a CREATE (with ACK when needed).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use super::initiator::{Create, Kind, Transaction};
use super::output::{Event, Output};
use super::pairs::{Pair, PairKeys, PairState, Role};
use super::{Engine, REPLY_CACHE_TIME, qm, seal};
use crate::krb5::{Kerberos, KrbErrorCode, SessionKey, TicketKind};
use crate::wire::{Message, MessageType, Payload};

impl Engine {
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
    #[expect(
        clippy::too_many_arguments,
        reason = "the REPLY, its transaction and the parts of the CREATE it completes"
    )]
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
