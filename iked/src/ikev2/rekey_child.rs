//! CREATE_CHILD_SA as initiator: rekeying our CHILD SA, or creating one
//! when the IKE SA has none
//! ([RFC 7296 §1.3.1, §1.3.3, §2.8](https://www.rfc-editor.org/rfc/rfc7296#section-2.8)).
//!
//! Request `SK {[N(REKEY_SA),] [N(USE_TRANSPORT_MODE),] SA, Ni, [KEi,] TSi,
//! TSr}`, with KEi when the configuration asks for PFS. On the answer to a
//! rekey the new pair is installed, then the old one is deleted with an
//! INFORMATIONAL `D(ESP)`; its kernel SAs go when the peer confirms.
//!
//! What the answers do:
//! - INVALID_KE_PAYLOAD: one retry with the group the peer names, if our
//!   IKE groups allow it.
//! - TEMPORARY_FAILURE: retry after a random 2–10 s (§2.25).
//! - CHILD_SA_NOT_FOUND: the peer lost the SA; we silently delete ours (§2.25).
//! - NO_PROPOSAL_CHOSEN and the rest: reported; the old SA stays until
//!   its hard lifetime.
//!
//! Simultaneous rekeys of one CHILD SA (§2.8.1): when the peer's rekey of
//! the SA arrives while ours is in flight we answer it as usual and note
//! both of its nonces. When our answer arrives, the exchange holding the
//! lowest of the four nonces (octet by octet) made the redundant pair: its
//! initiator deletes that pair, and the initiator of the surviving exchange
//! deletes the old one. Both peers see the same four nonces, so they agree.

use libracoon::crypto::{DhGroup, DhSecret};
use zeroize::Zeroizing;

use crate::ikev2::child::{self, ChildHandle, Negotiated};
use crate::ikev2::config::Mode;
use crate::ikev2::error::Error;
use crate::ikev2::ike_auth::find_ts;
use crate::ikev2::info::{Established, Outgoing, Queued};
use crate::ikev2::init::{check_nonce, find_ke, find_nonce, find_notify, find_sa, first_error};
use crate::ikev2::output::{Event, Output};
use crate::ikev2::proposal;
use crate::ikev2::sa::{Context, IkeSa, Role};
use crate::ikev2::ts::TsRange;
use crate::ikev2::wire::{ExchangeType, KePayload, NotifyPayload, NotifyType, Payload, ProtocolId};

/// Our CHILD SA rekey in flight.
pub(crate) struct ChildRekey {
    /// Inbound SPI of the CHILD SA being replaced; `None` when creating
    /// a CHILD SA for an IKE SA that has none.
    pub(crate) old_spi_in: Option<u32>,
    /// Inbound SPI we offered for the new one.
    spi_in: u32,
    mode: Mode,
    nonce_i: Vec<u8>,
    /// Our PFS key pair, when we sent KEi.
    dh: Option<DhSecret>,
    /// Whether this is already the retry after INVALID_KE_PAYLOAD.
    ke_retried: bool,
    /// The peer's rekey of the same SA, answered while ours was in flight.
    collision: Option<Collision>,
}

/// The nonces of the peer's colliding rekey exchange.
struct Collision {
    peer_ni: Vec<u8>,
    our_nr: Vec<u8>,
}

impl Established {
    /// Sends a rekey of the CHILD SA with inbound SPI `old`, if it is still
    /// the current one (a queued rekey may have been overtaken by the
    /// peer's); with `old` `None`, creates a CHILD SA if the IKE SA has
    /// none. `group` overrides the configured PFS group (the retry after
    /// INVALID_KE_PAYLOAD).
    pub(crate) fn start_child_rekey(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        old: Option<u32>,
        group: Option<DhGroup>,
    ) -> Result<(), Error> {
        let cfg = sa.config.clone();
        let (local_ts, remote_ts, mode) = match (old, &self.child) {
            (Some(old), Some(c)) if c.spi_in == old => {
                (c.local_ts.clone(), c.remote_ts.clone(), c.mode)
            }
            (None, None) => (
                cfg.child.local_ts.clone(),
                cfg.child.remote_ts.clone(),
                cfg.child.mode,
            ),
            _ => return Ok(()),
        };
        if self.closing() {
            return Ok(());
        }
        let ke_retried = group.is_some();
        let group = group.or(cfg.child.pfs);
        let spi_in = child::random_spi(cx.rng)?;
        let mut nonce_i = vec![0u8; cfg.nonce_len];
        cx.rng.fill(&mut nonce_i)?;
        let dh = group.map(|g| g.generate(cx.rng)).transpose()?;
        let mut payloads = Vec::new();
        // RFC 7296 §1.3.3: the REKEY_SA SPI is "the SPI the exchange
        // initiator would expect in inbound ESP or AH packets".
        payloads.extend(old.map(|old| {
            Payload::Notify(NotifyPayload {
                protocol: ProtocolId::Esp,
                spi: old.to_be_bytes().to_vec(),
                ntype: NotifyType::RekeySa,
                data: Vec::new(),
            })
        }));
        if mode == Mode::Transport {
            payloads.push(crate::ikev2::init::notify(
                NotifyType::UseTransportMode,
                Vec::new(),
            ));
        }
        let pfs = group.map(|g| (g, cfg.ike.dh.as_slice()));
        payloads.push(Payload::Sa(proposal::esp_rekey_proposals(
            &cfg.child.esp,
            spi_in,
            pfs,
        )));
        payloads.push(Payload::Nonce(nonce_i.clone()));
        if let Some(dh) = &dh {
            payloads.push(Payload::Ke(KePayload {
                group: dh.group().iana(),
                data: dh.public_key().to_vec(),
            }));
        }
        payloads.push(Payload::TsI(
            local_ts.iter().map(TsRange::to_wire).collect(),
        ));
        payloads.push(Payload::TsR(
            remote_ts.iter().map(TsRange::to_wire).collect(),
        ));
        self.request(sa, cx, ExchangeType::CreateChildSa, &payloads)?;
        self.outgoing = Some(Outgoing::RekeyChild(Box::new(ChildRekey {
            old_spi_in: old,
            spi_in,
            mode,
            nonce_i,
            dh,
            ke_retried,
            collision: None,
        })));
        Ok(())
    }

    /// Responder side: we are answering the peer's rekey of the CHILD SA
    /// that our own rekey in flight replaces (RFC 7296 §2.25.1: "it SHOULD
    /// reply as usual, and SHOULD prepare to close redundant SAs later
    /// based on the nonces"). Call before the current CHILD SA changes.
    pub(crate) fn note_collision(&mut self, peer_ni: &[u8], our_nr: &[u8]) {
        let current = self.child.as_ref().map(|c| c.spi_in);
        if let Some(Outgoing::RekeyChild(r)) = &mut self.outgoing
            && r.old_spi_in.is_some()
            && r.old_spi_in == current
        {
            r.collision = Some(Collision {
                peer_ni: peer_ni.to_vec(),
                our_nr: our_nr.to_vec(),
            });
        }
    }

    /// Acts on the answer to our CHILD SA rekey. Only a local failure is
    /// an error; what the peer refuses is reported and the old SA kept.
    pub(crate) fn on_child_rekey_response(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        r: ChildRekey,
        inner: &[Payload],
    ) -> Result<(), Error> {
        if self.closing() {
            // Deleted meanwhile: its CHILD SAs are gone, the new one with
            // them (the peer removes its copy with the IKE SA).
            return Ok(());
        }
        if let Some(n) = find_notify(inner, NotifyType::InvalidKePayload) {
            return match retry_group(n, &r, &sa.config.ike.dh) {
                Ok(group) => self.start_child_rekey(sa, cx, r.old_spi_in, Some(group)),
                Err(e) => {
                    cx.out.push_back(Output::Event(Event::ChildFailed(e)));
                    Ok(())
                }
            };
        }
        if let Some(err) = first_error(inner) {
            self.child_rekey_refused(cx, &r, err);
            return Ok(());
        }
        if let Err(e) = self.complete_child_rekey(sa, cx, r, inner) {
            cx.out.push_back(Output::Event(Event::ChildFailed(e)));
        }
        Ok(())
    }

    fn child_rekey_refused(&mut self, cx: &mut Context<'_>, r: &ChildRekey, err: NotifyType) {
        if r.collision.is_some() {
            return; // the peer's rekey of the same SA replaced it
        }
        match err {
            NotifyType::TemporaryFailure => self.retry_later(cx, Queued::child(r.old_spi_in)),
            NotifyType::ChildSaNotFound => {
                // RFC 7296 §2.25: "SHOULD silently delete the Child SA (if it still exists)".
                if let Some(c) = self.take_child_where(|c| Some(c.spi_in) == r.old_spi_in) {
                    cx.out.push_back(Output::DeleteChild {
                        inbound: c.inbound,
                        outbound: c.outbound,
                    });
                }
                cx.out
                    .push_back(Output::Event(Event::ChildFailed(Error::RekeyRefused(err))));
            }
            other => cx
                .out
                .push_back(Output::Event(Event::ChildFailed(Error::RekeyRefused(
                    other,
                )))),
        }
    }

    /// Checks the answer, installs the new pair and settles which pair to delete.
    fn complete_child_rekey(
        &mut self,
        sa: &IkeSa,
        cx: &mut Context<'_>,
        r: ChildRekey,
        inner: &[Payload],
    ) -> Result<(), Error> {
        let cfg = &sa.config;
        let proposals = find_sa(inner).ok_or(Error::PeerMisbehaved(
            "CREATE_CHILD_SA response without SA payload",
        ))?;
        let (suite, spi_out) =
            proposal::accept_esp_pfs_reply(proposals, &cfg.child.esp, &cfg.ike.dh)?;
        if suite.dh != r.dh.as_ref().map(DhSecret::group) {
            return Err(Error::PeerMisbehaved(
                "responder chose a PFS group other than our KEi's",
            ));
        }
        let nonce_r = find_nonce(inner).ok_or(Error::PeerMisbehaved(
            "CREATE_CHILD_SA response without nonce",
        ))?;
        check_nonce(nonce_r)?;
        let (tsi, tsr) = find_ts(inner).ok_or(Error::PeerMisbehaved(
            "CREATE_CHILD_SA response without TSi/TSr",
        ))?;
        let (local_ts, remote_ts) = (child::ts_from_wire(tsi)?, child::ts_from_wire(tsr)?);
        child::check_narrowed(&cfg.child, &local_ts, &remote_ts)?;
        let transport = find_notify(inner, NotifyType::UseTransportMode).is_some();
        if transport != (r.mode == Mode::Transport) {
            return Err(Error::PeerMisbehaved(
                "responder answered with another IPsec mode",
            ));
        }
        let mut seed = Zeroizing::new(Vec::new());
        if let Some(dh) = r.dh {
            let ke = find_ke(inner).ok_or(Error::PeerMisbehaved(
                "PFS proposal chosen but no KE payload",
            ))?;
            if ke.group != dh.group().iana() {
                return Err(Error::PeerMisbehaved("responder's KE group differs"));
            }
            seed.extend_from_slice(&dh.agree(&ke.data)?);
        }
        seed.extend_from_slice(&r.nonce_i);
        seed.extend_from_slice(nonce_r);
        let n = Negotiated {
            suite,
            spi_in: r.spi_in,
            spi_out,
            local_ts,
            remote_ts,
            mode: r.mode,
            keymat_seed: Some(seed),
            lifetime: child::new_lifetime(&cfg.child, cx.rng),
        };
        // We started this exchange: we are "i" for the KEYMAT order (RFC 7296 §2.17).
        let (spec, handle) =
            child::build(Role::Initiator, sa.path, &self.keyed, &n, cfg.child.reqid);
        cx.out.push_back(Output::InstallChild(Box::new(spec)));
        let redundant = r
            .collision
            .as_ref()
            .map(|c| lowest(&r.nonce_i, nonce_r) < lowest(&c.peer_ni, &c.our_nr));
        self.settle(r.old_spi_in, handle, redundant);
        Ok(())
    }

    /// Decides which CHILD SA goes once ours is installed; `redundant` is
    /// `None` without a collision, else whether ours holds the lowest nonce.
    fn settle(&mut self, old: Option<u32>, new: ChildHandle, redundant: Option<bool>) {
        let Some(old) = old else {
            // A new CHILD SA: if the peer created one meanwhile, ours is
            // the extra one (one CHILD SA per IKE SA).
            if self.child.is_some() {
                let spi = new.spi_in;
                self.rekeyed.push(new);
                self.queue.push_front(Queued::DeleteChild(spi));
            } else {
                self.child = Some(new);
            }
            return;
        };
        if redundant == Some(true) {
            // RFC 7296 §2.8.1: "the SA created with the lowest of the four
            // nonces used in the two exchanges SHOULD be closed by the
            // endpoint that created it". The peer deletes the old one.
            let spi = new.spi_in;
            self.rekeyed.push(new);
            self.queue.push_front(Queued::DeleteChild(spi));
            return;
        }
        // Ours survives: "The node that initiated the surviving rekeyed SA
        // should delete the replaced SA". After a collision the current
        // CHILD SA is the peer's redundant one, which the peer deletes.
        let previous = self.child.replace(new);
        if let Some(p) = previous {
            let extra = redundant.is_none() && p.spi_in != old;
            let spi = p.spi_in;
            self.rekeyed.push(p);
            if extra {
                // Not the SA we rekeyed (the peer replaced that one
                // meanwhile): one CHILD SA per IKE SA, so it goes too.
                self.queue.push_front(Queued::DeleteChild(spi));
            }
        }
        self.queue.push_front(Queued::DeleteChild(old));
    }
}

/// The lower of an exchange's two nonces, octet by octet (a prefix is
/// lower), which is how RFC 7296 §2.8.1 compares them and how `[u8]`
/// orders.
fn lowest<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    a.min(b)
}

/// The group to retry with after INVALID_KE_PAYLOAD, once, if we allow it.
fn retry_group(n: &NotifyPayload, r: &ChildRekey, ours: &[DhGroup]) -> Result<DhGroup, Error> {
    if r.ke_retried {
        return Err(Error::PeerMisbehaved(
            "responder asked for another DH group twice",
        ));
    }
    let wanted = <[u8; 2]>::try_from(n.data.as_slice())
        .map(u16::from_be_bytes)
        .map_err(|_| Error::PeerMisbehaved("INVALID_KE_PAYLOAD without a 2-byte group"))?;
    let current = r.dh.as_ref().map(DhSecret::group);
    DhGroup::from_iana(wanted)
        .filter(|g| ours.contains(g) && Some(*g) != current)
        .ok_or(Error::NoProposalChosen(
            "peer wants a PFS group we do not allow",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_compare_octet_by_octet_and_a_prefix_is_lower() {
        // RFC 7296 §2.8.1: "If you reach the end of one nonce, that nonce is the lower one."
        assert_eq!(lowest(&[1, 2, 3], &[1, 2]), &[1, 2]);
        assert_eq!(lowest(&[0, 255], &[1, 0]), &[0, 255]);
        assert!(lowest(&[9, 9], &[2, 200]) < lowest(&[3, 0], &[4, 0]));
    }
}
