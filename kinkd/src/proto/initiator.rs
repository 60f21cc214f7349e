//! Our side of the exchanges we start: what waits for a ticket, and the
//! first message of CREATE (with the optimistic inbound SA), DELETE and
//! GETTGT. Retransmission is in `retransmit`, the REPLY in `reply`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use libracoon::ipsec::IpsecMode;

use super::output::{Event, Output};
use super::pairs::{PairKeys, PairState};
use super::{Engine, TICKET_MARGIN_SECS, qm, seal};
use crate::krb5::{ApReqId, Kerberos, SessionKey, TicketKind};
use crate::wire::{IsakmpPayload, MessageType, Payload};

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
    pub(super) kind: Kind,
    /// Every AP-REQ sent for it: the REPLY may answer any of them.
    pub(super) ap_reqs: Vec<ApReqId>,
    pub(super) key: Option<SessionKey>,
    /// Sends so far.
    pub(super) sent: u32,
    pub(super) next: Instant,
    pub(super) interval: Duration,
    pub(super) last: Vec<u8>,
}

pub(super) enum Kind {
    Create(Box<Create>),
    Delete {
        spi_in: u32,
    },
    GetTgt,
    /// A finished three-message CREATE: re-send the ACK if the REPLY comes
    /// again (our ACK was lost), until `next`.
    AckAging,
}

pub(super) struct Create {
    pub(super) spi_in: u32,
    pub(super) nonce: Vec<u8>,
    pub(super) isakmp: IsakmpPayload<'static>,
    pub(super) rekey_of: Option<u32>,
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

    pub(super) fn ticket_kind(&self, peer: usize) -> TicketKind {
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
}
