//! Retransmission of our commands (same XID, fresh AP-REQ, doubling
//! intervals up to a cap) and giving up on them.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use libracoon::ipsec::SaId;

use super::initiator::{Kind, Transaction, Want};
use super::output::Output;
use super::{Engine, qm, seal};
use crate::krb5::Kerberos;
use crate::wire::{Message, MessageType, Payload};

/// Retransmission intervals double up to this.
const MAX_RETRANSMIT_INTERVAL: Duration = Duration::from_secs(30);

impl Engine {
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

    pub(super) fn release(&self, krb: &mut dyn Kerberos, tx: &Transaction) {
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
}
