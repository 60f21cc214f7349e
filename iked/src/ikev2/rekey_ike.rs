//! CREATE_CHILD_SA as initiator: rekeying the IKE SA
//! ([RFC 7296 §1.3.2, §2.18](https://www.rfc-editor.org/rfc/rfc7296#section-2.18)).
//!
//! Request `SK {SA, Ni, KEi}` (the proposals carry our new SPI), answer
//! `SK {SA, Nr, KEr}`. The new IKE SA's keys come from
//! `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)` as on the responder
//! side (`create_child.rs`); we are its original initiator. The CHILD SAs
//! and their pending requests move to it, and we delete the old IKE SA.
//!
//! INVALID_KE_PAYLOAD gets one retry with the named group, TEMPORARY_FAILURE
//! a retry after 2–10 s; other refusals are reported and the IKE SA is
//! deleted at its hard lifetime.
//!
//! Simultaneous IKE SA rekeys: RFC 7296 §2.8.2 lets both exchanges finish
//! and then closes the one with the lowest nonce. We resolve earlier: while
//! our rekey is in flight, a peer's IKE SA rekey whose Ni is lower than ours
//! is answered as usual, one whose Ni is higher gets TEMPORARY_FAILURE
//! (`create_child.rs`). Two racoon3 peers thus complete exactly one
//! exchange, the one with the higher Ni, and never hold two new IKE SAs;
//! the refused side's old SA is replaced by the peer's rekey and deleted by
//! the peer.

use libracoon::crypto::{DhGroup, DhSecret};

use crate::ikev2::error::Error;
use crate::ikev2::info::{Established, Outgoing, Queued};
use crate::ikev2::init::{check_nonce, find_ke, find_nonce, find_notify, find_sa, first_error};
use crate::ikev2::keys::{Keyed, derive_rekeyed_ike_keys};
use crate::ikev2::output::{Event, Output};
use crate::ikev2::proposal;
use crate::ikev2::sa::{Context, IkeSa, Role, State};
use crate::ikev2::wire::{ExchangeType, KePayload, NotifyType, Payload};

/// Our IKE SA rekey in flight.
pub(crate) struct IkeRekey {
    /// Our SPI of the new IKE SA.
    spi: u64,
    /// Compared with a colliding request's nonce in `create_child.rs`.
    pub(crate) nonce_i: Vec<u8>,
    dh: DhSecret,
    /// Whether this is already the retry after INVALID_KE_PAYLOAD.
    ke_retried: bool,
}

impl Established {
    /// Sends an IKE SA rekey; `group` overrides the first configured group
    /// (the retry after INVALID_KE_PAYLOAD).
    pub(crate) fn start_ike_rekey(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        group: Option<DhGroup>,
    ) -> Result<(), Error> {
        if self.replaced {
            return Ok(());
        }
        let cfg = sa.config.clone();
        let ke_retried = group.is_some();
        let group = match group {
            Some(g) => g,
            None => *cfg
                .ike
                .dh
                .first()
                .ok_or(Error::NoProposalChosen("no DH group configured"))?,
        };
        let mut spi = [0u8; 8];
        cx.rng.fill(&mut spi)?;
        let spi = u64::from_be_bytes(spi) | 1;
        let mut nonce_i = vec![0u8; cfg.nonce_len];
        cx.rng.fill(&mut nonce_i)?;
        let dh = group.generate(cx.rng)?;
        let payloads = [
            Payload::Sa(proposal::ike_rekey_proposals(&cfg.ike, spi, group)),
            Payload::Nonce(nonce_i.clone()),
            Payload::Ke(KePayload {
                group: group.iana(),
                data: dh.public_key().to_vec(),
            }),
        ];
        self.request(sa, cx, ExchangeType::CreateChildSa, &payloads)?;
        self.outgoing = Some(Outgoing::RekeyIke(Box::new(IkeRekey {
            spi,
            nonce_i,
            dh,
            ke_retried,
        })));
        Ok(())
    }

    /// Acts on the answer to our IKE SA rekey. Only a local failure is an
    /// error; what the peer refuses is reported.
    pub(crate) fn on_ike_rekey_response(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        r: IkeRekey,
        inner: &[Payload],
    ) -> Result<(), Error> {
        if self.replaced {
            return Ok(()); // the peer's rekey went through instead
        }
        if let Some(n) = find_notify(inner, NotifyType::InvalidKePayload) {
            let group = crate::ikev2::init::invalid_ke_group(n, &sa.config.ike.dh, r.dh.group())
                .and_then(|g| {
                    if r.ke_retried {
                        Err(Error::PeerMisbehaved(
                            "responder asked for another DH group twice",
                        ))
                    } else {
                        Ok(g)
                    }
                });
            return match group {
                Ok(g) => self.start_ike_rekey(sa, cx, Some(g)),
                Err(e) => {
                    cx.out.push_back(Output::Event(Event::ChildFailed(e)));
                    Ok(())
                }
            };
        }
        match first_error(inner) {
            Some(NotifyType::TemporaryFailure) => self.retry_later(cx, Queued::RekeyIke),
            Some(other) => {
                cx.out
                    .push_back(Output::Event(Event::ChildFailed(Error::RekeyRefused(
                        other,
                    ))))
            }
            None => {
                if let Err(e) = self.complete_ike_rekey(sa, cx, r, inner) {
                    cx.out.push_back(Output::Event(Event::ChildFailed(e)));
                }
            }
        }
        Ok(())
    }

    /// Derives the new IKE SA, hands it everything and deletes this one.
    fn complete_ike_rekey(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        r: IkeRekey,
        inner: &[Payload],
    ) -> Result<(), Error> {
        let cfg = sa.config.clone();
        let proposals = find_sa(inner).ok_or(Error::PeerMisbehaved(
            "IKE SA rekey answer without SA payload",
        ))?;
        let (suite, peer_spi) = proposal::accept_ike_rekey_reply(proposals, &cfg.ike)?;
        let ke = find_ke(inner).ok_or(Error::PeerMisbehaved(
            "IKE SA rekey answer without KE payload",
        ))?;
        if suite.dh != r.dh.group() || ke.group != suite.dh.iana() {
            return Err(Error::PeerMisbehaved(
                "responder's KE group differs from the chosen group",
            ));
        }
        let nonce_r =
            find_nonce(inner).ok_or(Error::PeerMisbehaved("IKE SA rekey answer without nonce"))?;
        check_nonce(nonce_r)?;
        let shared = r.dh.agree(&ke.data)?;
        let keys = derive_rekeyed_ike_keys(
            &suite,
            (self.keyed.suite.prf, &self.keyed.keys.sk_d),
            &shared,
            &r.nonce_i,
            nonce_r,
            r.spi,
            peer_spi,
        );
        let keyed = Keyed {
            suite,
            keys,
            ni: r.nonce_i,
            nr: nonce_r.to_vec(),
            nat: self.keyed.nat,
        };
        let mut next = Self::new(keyed, None, cx.now);
        self.hand_over(&mut next, cx.now);
        if self.queue.contains(&Queued::DeleteIke) {
            // Deleted while the rekey was in flight: the peer has the new
            // IKE SA now, so delete that one too.
            next.retry.push((cx.now, Queued::DeleteIke));
        }
        self.replaced = true;
        let next = next.arm_lifetime(&cfg, cx);
        let new_sa = IkeSa::rekeyed(
            cx.now,
            sa,
            r.spi,
            peer_spi,
            Role::Initiator,
            State::Established(Box::new(next)),
        );
        sa.spawned = Some(Box::new(new_sa));
        cx.out
            .push_back(Output::Event(Event::IkeRekeyed { new_spi: r.spi }));
        // RFC 7296 §1.3.2: after the rekey, the initiator deletes the old
        // IKE SA (its CHILD SAs have moved, so nothing else goes with it).
        self.queue.clear();
        self.retry.clear();
        self.queue.push_back(Queued::DeleteIke);
        Ok(())
    }

    /// Moves the CHILD SAs and their pending requests to the IKE SA that
    /// replaces this one. A moved request is due at once on the new SA
    /// (its first timer sends it), since nothing else wakes that SA.
    pub(crate) fn hand_over(&mut self, next: &mut Self, now: std::time::Instant) {
        next.child = self.child.take();
        next.rekeyed = std::mem::take(&mut self.rekeyed);
        let (queued, retry) = self.take_child_requests();
        next.retry = retry;
        next.retry.extend(queued.into_iter().map(|q| (now, q)));
        // Our D(ESP) in flight here is answered here, but the SA it
        // deletes has moved: ask again on the new IKE SA.
        if let Some(Outgoing::DeleteChild(spi)) = self.outgoing {
            next.retry.push((now, Queued::DeleteChild(spi)));
        }
    }
}
