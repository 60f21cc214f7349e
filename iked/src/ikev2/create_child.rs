//! CREATE_CHILD_SA as responder: rekeying the CHILD SA, with or without
//! PFS ([RFC 7296 §1.3.3](https://www.rfc-editor.org/rfc/rfc7296#section-1.3.3)).
//!
//! Request `SK {N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr}`, response
//! `SK {SA, Nr, [KEr,] TSi, TSr}`. The new SAs are installed before the
//! response leaves; the old ones stay until the peer deletes them.
//! IKE SA rekeys are answered too (the new IKE SA takes over the CHILD
//! SAs); extra CHILD SAs are refused with NO_ADDITIONAL_SAS, and a CHILD
//! SA to replace one that is gone is accepted.
//!
//! Collisions with our own exchanges (RFC 7296 §2.25): a rekey of the
//! CHILD SA we are rekeying ourselves is answered as usual and recorded,
//! so that `rekey_child` can close the redundant pair by the nonces
//! (§2.8.1). Anything that would touch SAs an IKE SA rekey of ours is
//! moving, and an IKE SA rekey while our CHILD SA rekey is in flight, get
//! TEMPORARY_FAILURE. For simultaneous IKE SA rekeys see `rekey_ike`.

use zeroize::Zeroizing;

use crate::ikev2::child::{self, Negotiated};
use crate::ikev2::error::Error;
use crate::ikev2::ike_auth::find_ts;
use crate::ikev2::info::{Established, Outgoing};
use crate::ikev2::init::{check_nonce, find_ke, find_nonce, find_notify, find_sa, notify};
use crate::ikev2::keys::{Keyed, derive_rekeyed_ike_keys};
use crate::ikev2::output::{Event, Output};
use crate::ikev2::proposal;
use crate::ikev2::sa::{Context, IkeSa, Role, State};
use crate::ikev2::ts::TsRange;
use crate::ikev2::wire::{KePayload, NotifyType, Payload, ProtocolId};

impl Established {
    /// Answers a CREATE_CHILD_SA request: the rekeyed CHILD SA, or the
    /// notify that says why not.
    pub(crate) fn answer_create_child(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        inner: &[Payload],
    ) -> Vec<Payload> {
        let rekeys_ike =
            find_sa(inner).is_some_and(|p| p.iter().any(|p| p.protocol == ProtocolId::Ike));
        let result = match self.collision(rekeys_ike, inner) {
            Some(e) => Err(e),
            None if rekeys_ike => self.rekey_ike(sa, cx, inner),
            None => self.rekey_child(sa, cx, inner),
        };
        match result {
            Ok(reply) => reply,
            Err(e) => {
                let data = match &e {
                    Error::InvalidKe { want, .. } => want.to_be_bytes().to_vec(),
                    _ => Vec::new(),
                };
                let ntype = e.notify().unwrap_or(NotifyType::NoAdditionalSas);
                if !matches!(e, Error::InvalidKe { .. } | Error::Collision(_)) {
                    cx.out.push_back(Output::Event(Event::ChildFailed(e)));
                }
                vec![notify(ntype, data)]
            }
        }
    }

    /// Why a CREATE_CHILD_SA request must wait (TEMPORARY_FAILURE), if
    /// it collides with what this IKE SA is doing (RFC 7296 §2.25).
    fn collision(&self, rekeys_ike: bool, inner: &[Payload]) -> Option<Error> {
        if self.closing() {
            return Some(Error::Collision(
                "the IKE SA is being deleted or was rekeyed",
            ));
        }
        match (&self.outgoing, rekeys_ike) {
            (Some(Outgoing::RekeyIke(_)), false) => Some(Error::Collision(
                "our IKE SA rekey is in flight (RFC 7296 §2.25.2)",
            )),
            (Some(Outgoing::RekeyChild(_)), true) => {
                Some(Error::Collision("our CHILD SA rekey is in flight"))
            }
            // Both sides rekey the IKE SA: the request with the higher
            // nonce goes through, the other is refused (see rekey_ike).
            (Some(Outgoing::RekeyIke(ours)), true)
                if find_nonce(inner).is_some_and(|theirs| ours.nonce_i.as_slice() > theirs) =>
            {
                Some(Error::Collision(
                    "simultaneous IKE SA rekey: ours has the higher nonce",
                ))
            }
            _ => None,
        }
    }

    /// IKE SA rekey (RFC 7296 §1.3.2): `SK {SA, Ni, KEi}` answered with
    /// `SK {SA, Nr, KEr}`. The new IKE SA takes over the CHILD SAs; the
    /// peer then deletes this one.
    fn rekey_ike(
        &mut self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        inner: &[Payload],
    ) -> Result<Vec<Payload>, Error> {
        let cfg = sa.config.clone();
        let proposals =
            find_sa(inner).ok_or(Error::PeerMisbehaved("CREATE_CHILD_SA without SA payload"))?;
        let mut spi = [0u8; 8];
        cx.rng.fill(&mut spi)?;
        let our_spi = u64::from_be_bytes(spi) | 1;
        let (suite, peer_spi, chosen) = proposal::select_ike_rekey(proposals, &cfg.ike, our_spi)?;
        let nonce_i =
            find_nonce(inner).ok_or(Error::PeerMisbehaved("IKE SA rekey without nonce"))?;
        check_nonce(nonce_i)?;
        let ke = find_ke(inner).ok_or(Error::PeerMisbehaved("IKE SA rekey without KE payload"))?;
        if ke.group != suite.dh.iana() {
            return Err(Error::InvalidKe {
                got: ke.group,
                want: suite.dh.iana(),
            });
        }
        let dh = suite.dh.generate(cx.rng)?;
        let ke_reply = KePayload {
            group: suite.dh.iana(),
            data: dh.public_key().to_vec(),
        };
        let shared = dh.agree(&ke.data)?;
        let mut nonce_r = vec![0u8; cfg.nonce_len];
        cx.rng.fill(&mut nonce_r)?;
        // The peer started the rekey: it is the initiator of the new IKE SA.
        let keys = derive_rekeyed_ike_keys(
            &suite,
            (self.keyed.suite.prf, &self.keyed.keys.sk_d),
            &shared,
            nonce_i,
            &nonce_r,
            peer_spi,
            our_spi,
        );
        let keyed = Keyed {
            suite,
            keys,
            ni: nonce_i.to_vec(),
            nr: nonce_r.clone(),
            nat: self.keyed.nat,
        };
        let mut next = Self::new(keyed, None, cx.now);
        self.hand_over(&mut next, cx.now);
        self.replaced = true;
        self.linger_until = Some(cx.now + crate::ikev2::info::REPLACED_LINGER);
        let next = next.arm_lifetime(&cfg, cx);
        let new_sa = IkeSa::rekeyed(
            cx.now,
            sa,
            peer_spi,
            our_spi,
            Role::Responder,
            State::Established(Box::new(next)),
        );
        sa.spawned = Some(Box::new(new_sa));
        cx.out
            .push_back(Output::Event(Event::IkeRekeyed { new_spi: our_spi }));
        Ok(vec![
            Payload::Sa(vec![chosen]),
            Payload::Nonce(nonce_r),
            Payload::Ke(ke_reply),
        ])
    }

    fn rekey_child(
        &mut self,
        sa: &IkeSa,
        cx: &mut Context<'_>,
        inner: &[Payload],
    ) -> Result<Vec<Payload>, Error> {
        let cfg = &sa.config;
        let proposals =
            find_sa(inner).ok_or(Error::PeerMisbehaved("CREATE_CHILD_SA without SA payload"))?;
        let rekey =
            find_notify(inner, NotifyType::RekeySa).filter(|n| n.protocol == ProtocolId::Esp);
        match (rekey, &self.child) {
            (Some(n), Some(current)) if n.spi == current.spi_out.to_be_bytes() => {}
            // RFC 7296 §2.25.1: "If a peer receives a request to rekey a
            // Child SA that it is currently trying to close, it SHOULD reply
            // with TEMPORARY_FAILURE."
            (Some(n), _)
                if self
                    .rekeyed
                    .iter()
                    .any(|c| n.spi == c.spi_out.to_be_bytes()) =>
            {
                return Err(Error::Collision(
                    "that CHILD SA was replaced and is being deleted",
                ));
            }
            (Some(_), _) => return Err(Error::ChildSaNotFound),
            // A new CHILD SA replacing one that expired or was deleted.
            (None, None) => {}
            (None, Some(_)) => {
                return Err(Error::NoAdditionalSas(
                    "one CHILD SA per IKE SA is supported",
                ));
            }
        }
        let nonce_i =
            find_nonce(inner).ok_or(Error::PeerMisbehaved("CREATE_CHILD_SA without nonce"))?;
        check_nonce(nonce_i)?;
        let (tsi, tsr) =
            find_ts(inner).ok_or(Error::PeerMisbehaved("CREATE_CHILD_SA without TSi/TSr"))?;
        let spi_in = child::random_spi(cx.rng)?;
        let (suite, spi_out, chosen) =
            proposal::select_esp_pfs(proposals, &cfg.child.esp, &cfg.ike.dh, spi_in)?;
        let (local_ts, remote_ts) = child::narrow_as_responder(
            &cfg.child,
            &child::ts_from_wire(tsi)?,
            &child::ts_from_wire(tsr)?,
        )?;
        let mode = child::responder_mode(&cfg.child, inner)?;
        let mut nonce_r = vec![0u8; cfg.nonce_len];
        cx.rng.fill(&mut nonce_r)?;
        let mut seed = Zeroizing::new(Vec::new());
        let mut ke_reply = None;
        if let Some(group) = suite.dh {
            let ke = find_ke(inner).ok_or(Error::PeerMisbehaved(
                "PFS proposal chosen but no KE payload",
            ))?;
            if ke.group != group.iana() {
                return Err(Error::InvalidKe {
                    got: ke.group,
                    want: group.iana(),
                });
            }
            let dh = group.generate(cx.rng)?;
            ke_reply = Some(KePayload {
                group: group.iana(),
                data: dh.public_key().to_vec(),
            });
            seed.extend_from_slice(&dh.agree(&ke.data)?);
        }
        seed.extend_from_slice(nonce_i);
        seed.extend_from_slice(&nonce_r);
        self.note_collision(nonce_i, &nonce_r);
        let n = Negotiated {
            suite,
            spi_in,
            spi_out,
            local_ts: local_ts.clone(),
            remote_ts: remote_ts.clone(),
            mode,
            keymat_seed: Some(seed),
            lifetime: child::new_lifetime(&cfg.child, cx.rng),
        };
        // The peer started this exchange: it is "i" for the KEYMAT order
        // (RFC 7296 §2.17), whatever our role in the IKE SA.
        let (spec, handle) =
            child::build(Role::Responder, sa.path, &self.keyed, &n, cfg.child.reqid);
        cx.out.push_back(Output::InstallChild(Box::new(spec)));
        if let Some(old) = self.child.replace(handle) {
            self.rekeyed.push(old);
        }
        let mut reply = Vec::new();
        if mode == crate::ikev2::config::Mode::Transport {
            reply.push(notify(NotifyType::UseTransportMode, Vec::new()));
        }
        reply.push(Payload::Sa(vec![chosen]));
        reply.push(Payload::Nonce(nonce_r));
        reply.extend(ke_reply.map(Payload::Ke));
        reply.push(Payload::TsI(
            remote_ts.iter().map(TsRange::to_wire).collect(),
        ));
        reply.push(Payload::TsR(
            local_ts.iter().map(TsRange::to_wire).collect(),
        ));
        Ok(reply)
    }
}
