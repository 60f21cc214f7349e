//! SA proposals: building ours and choosing from the peer's, as pure
//! functions ([RFC 7296 §2.7, §3.3](https://www.rfc-editor.org/rfc/rfc7296#section-3.3)).

use libracoon::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};

use crate::ikev2::config::{EspAlgorithms, IkeAlgorithms};
use crate::ikev2::error::Error;
use crate::ikev2::keys::IkeSuite;
use crate::ikev2::wire::{Proposal, ProtocolId, Transform, TransformType};

/// The algorithms negotiated for a CHILD SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    /// Cipher.
    pub encr: EncrAlg,
    /// Integrity, absent for AEAD.
    pub integ: Option<IntegAlg>,
    /// PFS group of a CREATE_CHILD_SA exchange; always `None` in IKE_AUTH,
    /// whose CHILD SA uses the IKE SA's key exchange (RFC 7296 §1.2).
    pub dh: Option<DhGroup>,
}

impl EspSuite {
    /// strongSwan-style summary, e.g. `AES_GCM_16-128` or `AES_CBC-128/HMAC_SHA2_256_128`.
    pub fn summary(&self) -> String {
        match self.integ {
            Some(i) => format!("{}/{}", self.encr.name(), i.name()),
            None => self.encr.name().to_string(),
        }
    }
}

/// Our IKE proposals: one with the AEAD ciphers, one with the others, as
/// strongSwan does, because AEAD and non-AEAD transforms cannot share one.
pub fn ike_proposals(algs: &IkeAlgorithms) -> Vec<Proposal> {
    split_by_aead(&algs.encr)
        .into_iter()
        .map(|(aead, encrs)| {
            let mut t: Vec<Transform> = encrs.iter().map(|e| encr_transform(*e)).collect();
            t.extend(
                algs.prf
                    .iter()
                    .map(|p| transform(TransformType::Prf, p.iana())),
            );
            if !aead {
                t.extend(
                    algs.integ
                        .iter()
                        .map(|i| transform(TransformType::Integ, i.iana())),
                );
            }
            t.extend(
                algs.dh
                    .iter()
                    .map(|d| transform(TransformType::Dh, d.iana())),
            );
            t
        })
        .enumerate()
        .map(|(i, transforms)| proposal(i, ProtocolId::Ike, Vec::new(), transforms))
        .collect()
}

/// Our ESP proposals with our inbound SPI; ESN off.
pub fn esp_proposals(algs: &EspAlgorithms, spi: u32) -> Vec<Proposal> {
    split_by_aead(&algs.encr)
        .into_iter()
        .map(|(aead, encrs)| {
            let mut t: Vec<Transform> = encrs.iter().map(|e| encr_transform(*e)).collect();
            if !aead {
                t.extend(
                    algs.integ
                        .iter()
                        .map(|i| transform(TransformType::Integ, i.iana())),
                );
            }
            t.push(transform(TransformType::Esn, 0));
            t
        })
        .enumerate()
        .map(|(i, transforms)| proposal(i, ProtocolId::Esp, spi.to_be_bytes().to_vec(), transforms))
        .collect()
}

/// Our IKE proposals for rekeying the IKE SA (RFC 7296 §1.3.2): each
/// carries our new 8-byte SPI, and `group` (the one our KEi uses) is
/// listed first so that a responder picking the first acceptable group
/// picks it.
pub fn ike_rekey_proposals(algs: &IkeAlgorithms, spi: u64, group: DhGroup) -> Vec<Proposal> {
    let mut algs = algs.clone();
    algs.dh.retain(|g| *g != group);
    algs.dh.insert(0, group);
    let mut props = ike_proposals(&algs);
    for p in &mut props {
        p.spi = spi.to_be_bytes().to_vec();
    }
    props
}

/// Our ESP proposals for a CREATE_CHILD_SA request: with PFS, `group`
/// (the one our KEi uses) and then the other `groups` as DH transforms.
pub fn esp_rekey_proposals(
    algs: &EspAlgorithms,
    spi: u32,
    pfs: Option<(DhGroup, &[DhGroup])>,
) -> Vec<Proposal> {
    let mut props = esp_proposals(algs, spi);
    if let Some((group, others)) = pfs {
        let dh = std::iter::once(group).chain(others.iter().copied().filter(|g| *g != group));
        let dh: Vec<Transform> = dh.map(|g| transform(TransformType::Dh, g.iana())).collect();
        for p in &mut props {
            // Before the ESN transform, in RFC 7296 §3.3.3's type order.
            let at = p.transforms.len().saturating_sub(1);
            p.transforms.splice(at..at, dh.iter().cloned());
        }
    }
    props
}

/// Picks the first of the peer's IKE proposals we can accept.
///
/// Returns the suite and the single-transform proposal to send back.
///
/// # Errors
/// [`Error::NoProposalChosen`] when nothing matches.
pub fn select_ike(
    offered: &[Proposal],
    ours: &IkeAlgorithms,
) -> Result<(IkeSuite, Proposal), Error> {
    offered
        .iter()
        .filter(|p| p.protocol == ProtocolId::Ike && p.spi.is_empty())
        .find_map(|p| match_ike(p, ours))
        .ok_or(Error::NoProposalChosen(
            "no IKE proposal of the peer matches ours",
        ))
}

/// For an IKE SA rekey (CREATE_CHILD_SA): like [`select_ike`], but the
/// proposals carry the initiator's new 8-byte SPI. Returns the suite, the
/// peer's new SPI and our reply carrying `our_spi`.
///
/// # Errors
/// [`Error::NoProposalChosen`] when nothing matches.
pub fn select_ike_rekey(
    offered: &[Proposal],
    ours: &IkeAlgorithms,
    our_spi: u64,
) -> Result<(IkeSuite, u64, Proposal), Error> {
    offered
        .iter()
        .filter(|p| p.protocol == ProtocolId::Ike)
        .find_map(|p| {
            let spi = u64::from_be_bytes(p.spi.as_slice().try_into().ok()?);
            let (suite, mut reply) = match_ike(p, ours)?;
            reply.spi = our_spi.to_be_bytes().to_vec();
            Some((suite, spi, reply))
        })
        .ok_or(Error::NoProposalChosen(
            "no IKE proposal of the peer matches ours",
        ))
}

/// Picks the first of the peer's ESP proposals we can accept.
///
/// Returns the suite, the peer's SPI and the proposal to send back (its SPI
/// is replaced by `our_spi`).
///
/// # Errors
/// [`Error::NoProposalChosen`] when nothing matches.
pub fn select_esp(
    offered: &[Proposal],
    ours: &EspAlgorithms,
    our_spi: u32,
) -> Result<(EspSuite, u32, Proposal), Error> {
    offered
        .iter()
        .filter(|p| p.protocol == ProtocolId::Esp)
        .find_map(|p| match_esp(p, ours, our_spi, None))
        .ok_or(Error::NoProposalChosen(
            "no ESP proposal of the peer matches ours",
        ))
}

/// Checks that a responder's single-transform IKE reply is one we offered.
///
/// # Errors
/// [`Error::PeerMisbehaved`] if the reply is not one of our offers.
pub fn accept_ike_reply(reply: &[Proposal], ours: &IkeAlgorithms) -> Result<IkeSuite, Error> {
    match reply {
        [p] => match_ike(p, ours)
            .map(|(suite, _)| suite)
            .ok_or(Error::PeerMisbehaved(
                "responder chose an IKE proposal we did not offer",
            )),
        _ => Err(Error::PeerMisbehaved(
            "responder must return exactly one IKE proposal",
        )),
    }
}

/// Checks a responder's ESP reply; returns the suite and the peer's SPI.
///
/// # Errors
/// [`Error::PeerMisbehaved`] if the reply is not one of our offers.
pub fn accept_esp_reply(
    reply: &[Proposal],
    ours: &EspAlgorithms,
) -> Result<(EspSuite, u32), Error> {
    match reply {
        [p] => match_esp(p, ours, 0, None)
            .map(|(suite, spi, _)| (suite, spi))
            .ok_or(Error::PeerMisbehaved(
                "responder chose an ESP proposal we did not offer",
            )),
        _ => Err(Error::PeerMisbehaved(
            "responder must return exactly one ESP proposal",
        )),
    }
}

/// Checks a responder's answer to our IKE SA rekey; returns the suite
/// and the responder's new SPI.
///
/// # Errors
/// [`Error::PeerMisbehaved`] if the reply is not one of our offers or its
/// SPI is not 8 octets.
pub fn accept_ike_rekey_reply(
    reply: &[Proposal],
    ours: &IkeAlgorithms,
) -> Result<(IkeSuite, u64), Error> {
    let suite = accept_ike_reply(reply, ours)?;
    let spi = reply
        .first()
        .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
        .map(u64::from_be_bytes)
        .filter(|s| *s != 0)
        .ok_or(Error::PeerMisbehaved(
            "IKE SA rekey answer without an 8-octet SPI",
        ))?;
    Ok((suite, spi))
}

/// Checks a responder's answer to our CREATE_CHILD_SA request: like
/// [`accept_esp_reply`], but a chosen DH group must be one of `groups`.
///
/// # Errors
/// [`Error::PeerMisbehaved`] if the reply is not one of our offers.
pub fn accept_esp_pfs_reply(
    reply: &[Proposal],
    ours: &EspAlgorithms,
    groups: &[DhGroup],
) -> Result<(EspSuite, u32), Error> {
    match reply {
        [p] => match_esp(p, ours, 0, Some(groups))
            .map(|(suite, spi, _)| (suite, spi))
            .ok_or(Error::PeerMisbehaved(
                "responder chose an ESP proposal we did not offer",
            )),
        _ => Err(Error::PeerMisbehaved(
            "responder must return exactly one ESP proposal",
        )),
    }
}

fn match_ike(p: &Proposal, ours: &IkeAlgorithms) -> Option<(IkeSuite, Proposal)> {
    let encr = pick(p, TransformType::Encr, |t| {
        EncrAlg::from_iana(t.id, t.key_len).filter(|e| ours.encr.contains(e))
    })?;
    let prf = pick(p, TransformType::Prf, |t| {
        PrfAlg::from_iana(t.id).filter(|x| ours.prf.contains(x))
    })?;
    let dh = pick(p, TransformType::Dh, |t| {
        DhGroup::from_iana(t.id).filter(|x| ours.dh.contains(x))
    })?;
    let integ = pick_integ(p, encr, &ours.integ)?;
    let mut chosen = vec![
        encr_transform(encr),
        transform(TransformType::Prf, prf.iana()),
    ];
    chosen.extend(integ.map(|i| transform(TransformType::Integ, i.iana())));
    chosen.push(transform(TransformType::Dh, dh.iana()));
    let reply = Proposal {
        num: p.num,
        protocol: ProtocolId::Ike,
        spi: Vec::new(),
        transforms: chosen,
    };
    Some((
        IkeSuite {
            encr,
            prf,
            integ,
            dh,
        },
        reply,
    ))
}

/// Like [`select_esp`], for CREATE_CHILD_SA: a proposal with DH
/// transforms (PFS) needs one of `groups` (or NONE, if offered), and the
/// chosen group is part of the reply.
///
/// # Errors
/// [`Error::NoProposalChosen`] when nothing matches.
pub fn select_esp_pfs(
    offered: &[Proposal],
    ours: &EspAlgorithms,
    groups: &[DhGroup],
    our_spi: u32,
) -> Result<(EspSuite, u32, Proposal), Error> {
    offered
        .iter()
        .filter(|p| p.protocol == ProtocolId::Esp)
        .find_map(|p| match_esp(p, ours, our_spi, Some(groups)))
        .ok_or(Error::NoProposalChosen(
            "no ESP proposal of the peer matches ours",
        ))
}

/// `pfs_groups`: `None` in IKE_AUTH, where DH transforms are ignored;
/// `Some` in CREATE_CHILD_SA.
fn match_esp(
    p: &Proposal,
    ours: &EspAlgorithms,
    our_spi: u32,
    pfs_groups: Option<&[DhGroup]>,
) -> Option<(EspSuite, u32, Proposal)> {
    let spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
    let encr = pick(p, TransformType::Encr, |t| {
        EncrAlg::from_iana(t.id, t.key_len).filter(|e| ours.encr.contains(e))
    })?;
    let integ = pick_integ(p, encr, &ours.integ)?;
    let has_esn = p.transforms.iter().any(|t| t.ttype == TransformType::Esn);
    if has_esn && pick(p, TransformType::Esn, |t| (t.id == 0).then_some(())).is_none() {
        return None;
    }
    let dh = match pfs_groups {
        Some(groups) => pick_pfs(p, groups)?,
        None => None,
    };
    let mut chosen = vec![encr_transform(encr)];
    chosen.extend(integ.map(|i| transform(TransformType::Integ, i.iana())));
    chosen.extend(dh.map(|g| transform(TransformType::Dh, g.iana())));
    chosen.push(transform(TransformType::Esn, 0));
    let reply = Proposal {
        num: p.num,
        protocol: ProtocolId::Esp,
        spi: our_spi.to_be_bytes().to_vec(),
        transforms: chosen,
    };
    Some((EspSuite { encr, integ, dh }, spi, reply))
}

/// The PFS group of a CREATE_CHILD_SA proposal: none if it lists no DH
/// transform (or lists NONE), else the first of the peer's that we allow.
/// The outer `Option` is "acceptable at all".
fn pick_pfs(p: &Proposal, groups: &[DhGroup]) -> Option<Option<DhGroup>> {
    let dhs: Vec<&Transform> = p
        .transforms
        .iter()
        .filter(|t| t.ttype == TransformType::Dh)
        .collect();
    if dhs.is_empty() {
        return Some(None);
    }
    match pick(p, TransformType::Dh, |t| {
        DhGroup::from_iana(t.id).filter(|g| groups.contains(g))
    }) {
        Some(g) => Some(Some(g)),
        None => dhs.iter().any(|t| t.id == 0).then_some(None),
    }
}

/// Integrity for a cipher: none (or INTEG NONE) for AEAD, one of ours otherwise.
/// The outer `Option` is "acceptable at all".
fn pick_integ(p: &Proposal, encr: EncrAlg, ours: &[IntegAlg]) -> Option<Option<IntegAlg>> {
    let integs: Vec<&Transform> = p
        .transforms
        .iter()
        .filter(|t| t.ttype == TransformType::Integ)
        .collect();
    if encr.is_aead() {
        return integs.iter().all(|t| t.id == 0).then_some(None);
    }
    pick(p, TransformType::Integ, |t| {
        IntegAlg::from_iana(t.id).filter(|i| ours.contains(i))
    })
    .map(Some)
}

/// The peer's first transform of a type that `accept` maps to a value.
/// Transforms with attributes we do not understand are skipped (RFC 7296 §3.3.6).
fn pick<T>(
    p: &Proposal,
    ttype: TransformType,
    accept: impl Fn(&Transform) -> Option<T>,
) -> Option<T> {
    p.transforms
        .iter()
        .filter(|t| t.ttype == ttype && !t.unknown_attrs)
        .find_map(accept)
}

fn split_by_aead(encrs: &[EncrAlg]) -> Vec<(bool, Vec<EncrAlg>)> {
    let (aead, plain): (Vec<EncrAlg>, Vec<EncrAlg>) = encrs.iter().partition(|e| e.is_aead());
    [(true, aead), (false, plain)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn encr_transform(e: EncrAlg) -> Transform {
    Transform {
        ttype: TransformType::Encr,
        id: e.iana(),
        key_len: e.key_bits(),
        unknown_attrs: false,
    }
}

fn transform(ttype: TransformType, id: u16) -> Transform {
    Transform {
        ttype,
        id,
        key_len: None,
        unknown_attrs: false,
    }
}

fn proposal(
    index: usize,
    protocol: ProtocolId,
    spi: Vec<u8>,
    transforms: Vec<Transform>,
) -> Proposal {
    let num = u8::try_from(index + 1).unwrap_or(u8::MAX);
    Proposal {
        num,
        protocol,
        spi,
        transforms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike_algs() -> IkeAlgorithms {
        IkeAlgorithms {
            encr: vec![EncrAlg::AesGcm16_256, EncrAlg::AesCbc128],
            prf: vec![PrfAlg::HmacSha256],
            integ: vec![IntegAlg::HmacSha256_128],
            dh: vec![DhGroup::Curve25519, DhGroup::Ecp256],
        }
    }

    #[test]
    fn aead_and_cbc_go_in_separate_proposals_and_select_round_trips() {
        let props = ike_proposals(&ike_algs());
        assert_eq!(props.len(), 2);
        assert!(
            !props[0]
                .transforms
                .iter()
                .any(|t| t.ttype == TransformType::Integ)
        );
        let (suite, reply) = select_ike(&props, &ike_algs()).expect("match");
        assert_eq!(suite.encr, EncrAlg::AesGcm16_256);
        assert_eq!(suite.integ, None);
        assert_eq!(
            accept_ike_reply(&[reply], &ike_algs()).expect("accept"),
            suite
        );
    }

    #[test]
    fn disjoint_lists_give_no_proposal_chosen() {
        let mut theirs = ike_algs();
        theirs.dh = vec![DhGroup::Modp2048];
        let err = select_ike(&ike_proposals(&theirs), &ike_algs()).expect_err("no overlap");
        assert!(matches!(err, Error::NoProposalChosen(_)));
    }

    #[test]
    fn esp_selection_returns_the_peer_spi_and_ours_in_the_reply() {
        let esp = EspAlgorithms {
            encr: vec![EncrAlg::AesCbc256],
            integ: vec![IntegAlg::HmacSha1_96],
        };
        let (suite, peer_spi, reply) =
            select_esp(&esp_proposals(&esp, 0x1234), &esp, 0x9999).expect("match");
        assert_eq!(peer_spi, 0x1234);
        assert_eq!(suite.integ, Some(IntegAlg::HmacSha1_96));
        let (_, spi) = accept_esp_reply(&[reply], &esp).expect("accept");
        assert_eq!(spi, 0x9999);
    }

    #[test]
    fn pfs_rekey_proposals_carry_our_group_first_and_round_trip() {
        let esp = EspAlgorithms {
            encr: vec![EncrAlg::AesGcm16_256],
            integ: vec![],
        };
        let groups = [DhGroup::Curve25519, DhGroup::Ecp256];
        let props = esp_rekey_proposals(&esp, 0x4444, Some((DhGroup::Ecp256, &groups)));
        let dh: Vec<u16> = props[0]
            .transforms
            .iter()
            .filter(|t| t.ttype == TransformType::Dh)
            .map(|t| t.id)
            .collect();
        assert_eq!(dh, vec![DhGroup::Ecp256.iana(), DhGroup::Curve25519.iana()]);
        assert_eq!(
            props[0].transforms.last().map(|t| t.ttype),
            Some(TransformType::Esn)
        );
        let (suite, peer_spi, reply) =
            select_esp_pfs(&props, &esp, &groups, 0x9999).expect("match");
        assert_eq!((suite.dh, peer_spi), (Some(DhGroup::Ecp256), 0x4444));
        let (got, spi) = accept_esp_pfs_reply(&[reply], &esp, &groups).expect("accept");
        assert_eq!((got, spi), (suite, 0x9999));
        let none = esp_rekey_proposals(&esp, 1, None);
        assert!(
            none[0]
                .transforms
                .iter()
                .all(|t| t.ttype != TransformType::Dh)
        );
    }

    #[test]
    fn ike_rekey_proposals_carry_the_new_spi_both_ways() {
        let props = ike_rekey_proposals(&ike_algs(), 0x1111, DhGroup::Ecp256);
        assert!(props.iter().all(|p| p.spi == 0x1111u64.to_be_bytes()));
        let (suite, peer_spi, reply) =
            select_ike_rekey(&props, &ike_algs(), 0x2222).expect("match");
        assert_eq!((suite.dh, peer_spi), (DhGroup::Ecp256, 0x1111));
        let (got, spi) = accept_ike_rekey_reply(&[reply], &ike_algs()).expect("accept");
        assert_eq!((got, spi), (suite, 0x2222));
    }

    #[test]
    fn a_transform_with_unknown_attributes_is_skipped() {
        let mut props = ike_proposals(&ike_algs());
        for p in &mut props {
            for t in &mut p.transforms {
                if t.ttype == TransformType::Prf {
                    t.unknown_attrs = true;
                }
            }
        }
        assert!(select_ike(&props, &ike_algs()).is_err());
    }
}
