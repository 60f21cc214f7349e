//! Quick Mode payloads inside KINK_ISAKMP
//! ([RFC 4430 §4.2.6](https://www.rfc-editor.org/rfc/rfc4430#section-4.2.6)), as pure
//! functions: build and read CREATE, REPLY, DELETE and error notifies; pick
//! a proposal.
//!
//! KINK carries IKEv1 Quick Mode ([RFC 2409 §5.5](https://www.rfc-editor.org/rfc/rfc2409#section-5.5))
//! without the ISAKMP header and without HASH payloads (KINK_CKSUM protects
//! the message), IPsec DOI only. kinkd negotiates ESP only, without PFS,
//! with one SPI per side that every proposal carries:
//!
//! ```text
//! CREATE:  SA(P1..Pn, one ESP transform each, SPI = initiator's inbound) Ni [IDci IDcr]
//! REPLY:   SA(the chosen proposal and transform, SPI = responder's inbound) [Nr] [IDci IDcr]
//! DELETE:  D(ESP, SPI size 4, the sender's inbound SPIs)
//! ```
//!
//! Proposal 1 (index 0) is the *optimistic* one: the initiator keys its
//! inbound SA for it before the REPLY arrives (RFC 4430 §3.2). Errors are
//! [`QmError`]s that carry the ISAKMP notify type to answer with and read
//! as a sentence an operator can act on.

mod ids;
mod transform;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::time::Duration;

use libracoon::ipsec::{IpsecMode, Lifetime, Selector};
use libracoon::isakmp::{
    DeletePayload, IPSEC_DOI, NotifyPayload, NotifyType, Payload, Proposal, ProtocolId, SaPayload,
};

use crate::proto::config::{EspProposal, PeerConfig};
use crate::proto::keymat::mirror;
use crate::wire::IsakmpPayload;

pub use transform::{ESP_CHACHA20_POLY1305, esp_name};

/// ESP and AH SPIs are 4 octets (RFC 2407 §4.4.1).
const SPI_LEN: usize = 4;
/// How many skipped transforms a [`CreateRequest`] remembers for the log.
const MAX_SKIPPED: usize = 16;

/// Why Quick Mode payloads were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QmError {
    /// A payload the message needs is absent (PAYLOAD-MALFORMED).
    #[error("no {0} in the Quick Mode payloads")]
    Missing(&'static str),
    /// A payload breaks an IPsec DOI rule; `notify` names the ISAKMP notify
    /// type for it.
    #[error("{what} ({notify})")]
    Malformed {
        /// What is wrong.
        what: &'static str,
        /// The notify type to report it with.
        notify: NotifyType,
    },
    /// The SA holds no transform kinkd can use at all (NO-PROPOSAL-CHOSEN).
    #[error("peer offered nothing kinkd can use: {}", .skipped.join("; "))]
    NothingUsable {
        /// Each proposal or transform left out, and why.
        skipped: Vec<String>,
    },
    /// No usable offer matches our configuration (NO-PROPOSAL-CHOSEN).
    #[error(
        "peer offered only {}; we accept {} in {} mode",
        .offered.join(", "), .ours.join(", "), mode_name(*.mode)
    )]
    NoProposalChosen {
        /// What the peer offered, in its order, with the mode.
        offered: Vec<String>,
        /// What we accept.
        ours: Vec<String>,
        /// Our mode.
        mode: IpsecMode,
    },
    /// A REPLY chose a transform we did not offer: broken or spoofed
    /// (NO-PROPOSAL-CHOSEN).
    #[error("peer's REPLY chose {0}, which we did not offer")]
    NotOffered(String),
    /// The peer's IDci/IDcr select traffic outside our policy
    /// (INVALID-ID-INFORMATION).
    #[error("peer's traffic selector {theirs} is not inside ours {ours}")]
    IdNotAllowed {
        /// The peer's selector, in our view (`src` is ours).
        theirs: String,
        /// Our selector.
        ours: String,
    },
    /// A REPLY carries an error notify instead of an SA.
    #[error("peer refused with {0}")]
    Refused(NotifyType),
}

impl QmError {
    /// The ISAKMP notify type to put into our REPLY for this error (or, for
    /// [`QmError::Refused`], the one the peer sent).
    #[must_use]
    pub fn notify(&self) -> NotifyType {
        match self {
            Self::Missing(_) => NotifyType::PayloadMalformed,
            Self::Malformed { notify, .. } => *notify,
            Self::NothingUsable { .. } | Self::NoProposalChosen { .. } | Self::NotOffered(_) => {
                NotifyType::NoProposalChosen
            }
            Self::IdNotAllowed { .. } => NotifyType::InvalidIdInformation,
            Self::Refused(t) => *t,
        }
    }
}

/// What an initiator puts into a CREATE.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    /// Transforms in preference order; the first is the optimistic one. At
    /// most 255 are sent (proposal numbers are one octet).
    pub proposals: &'a [EspProposal],
    /// Our inbound SPI, in every proposal.
    pub spi: u32,
    /// Ni (8..=256 octets, RFC 2409 §5; the peer's parser checks).
    pub nonce: &'a [u8],
    /// Tunnel or transport, in every transform.
    pub mode: IpsecMode,
    /// Its hard limits go out as SA Life attributes (none: the peer assumes
    /// 28800 seconds, RFC 2407 §4.5).
    pub lifetime: &'a Lifetime,
    /// Traffic from our side (`src` is ours), sent as IDci/IDcr.
    pub ids: Option<&'a Selector>,
}

/// The KINK_ISAKMP payload of a CREATE: `SA Ni [IDci IDcr]`, one proposal
/// per transform, numbered from 1, each with transform number 1.
pub fn build_create(offer: &Offer<'_>) -> IsakmpPayload<'static> {
    let proposals = offer
        .proposals
        .iter()
        .zip(1..=u8::MAX)
        .map(|(p, num)| esp_proposal(num, offer.spi, 1, p, offer.mode, offer.lifetime))
        .collect();
    let mut payloads = vec![
        Payload::Sa(SaPayload::ipsec(proposals)),
        Payload::Nonce(Cow::Owned(offer.nonce.to_vec())),
    ];
    push_ids(&mut payloads, offer.ids);
    IsakmpPayload { payloads }
}

/// One transform the initiator offered, readable by kinkd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedProposal {
    /// Proposal #, echoed in the REPLY.
    pub proposal_num: u8,
    /// Transform #, echoed in the REPLY.
    pub transform_num: u8,
    /// The initiator's inbound SPI: our outbound one.
    pub spi: u32,
    /// The transform.
    pub esp: EspProposal,
    /// Its encapsulation mode.
    pub mode: IpsecMode,
    /// Its hard limits (28800 seconds when it named none); soft limits are
    /// left to the daemon.
    pub lifetime: Lifetime,
}

/// A CREATE's Quick Mode payloads as kinkd reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// Usable transforms in the initiator's order; index 0 is its
    /// optimistic choice only if nothing before it was skipped (see
    /// [`Choice::optimistic`]).
    pub proposals: Vec<OfferedProposal>,
    /// Transforms left out because kinkd cannot represent them, with why
    /// (the first 16), for the log.
    pub skipped: Vec<String>,
    /// Ni.
    pub nonce: Vec<u8>,
    /// IDci/IDcr as a selector from the initiator's view (`src` is IDci).
    pub ids: Option<Selector>,
    /// Whether `proposals[0]` is the initiator's very first proposal and
    /// transform, the one it keyed optimistically (false when that one was
    /// skipped).
    pub first_usable: bool,
}

/// Reads a CREATE's KINK_ISAKMP payload.
///
/// Proposals that are not a lone ESP proposal (AH, IPComp, bundles of the
/// same number) and transforms kinkd cannot represent (other ciphers, PFS,
/// ESN, UDP encapsulation, ...) are skipped, not errors.
///
/// # Errors
/// No SA or nonce (PAYLOAD-MALFORMED), an SA without proposals or a
/// proposal without transforms (BAD-PROPOSAL-SYNTAX), an ESP SPI not 4
/// octets (INVALID-SPI), bad IDs (INVALID-ID-INFORMATION), a KE payload
/// (PFS) or nothing usable left (NO-PROPOSAL-CHOSEN).
pub fn parse_create(p: &IsakmpPayload<'_>) -> Result<CreateRequest, QmError> {
    let sa = find_sa(p)?;
    if sa.proposals.is_empty() {
        return Err(bad_syntax("SA payload without proposal"));
    }
    let nonce = find_nonce(p)
        .ok_or(QmError::Missing("Nonce payload"))?
        .to_vec();
    let ids = find_ids(p)?;
    if has_ke(p) {
        // KEYMAT would have to include g(qm)^xy (RFC 2409 §5.5), which kinkd
        // does not compute: refuse rather than derive keys the peer won't.
        return Err(QmError::NothingUsable {
            skipped: vec!["KE payload: PFS is not supported".to_owned()],
        });
    }
    let mut offer = Vec::new();
    let mut skipped = Vec::new();
    let mut first_usable = false;
    for (i, group) in sa.proposals.chunk_by(|a, b| a.num == b.num).enumerate() {
        let usable = read_group(group, &mut offer, &mut skipped)?;
        first_usable |= i == 0 && usable;
    }
    if offer.is_empty() {
        return Err(QmError::NothingUsable { skipped });
    }
    Ok(CreateRequest {
        proposals: offer,
        skipped,
        nonce,
        ids,
        first_usable,
    })
}

/// What the responder settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<'r> {
    /// The offered transform chosen.
    pub proposal: &'r OfferedProposal,
    /// Whether it is the initiator's optimistic one (its first proposal's
    /// first transform): then no ACK is needed unless we send Nr.
    pub optimistic: bool,
    /// Hard limits: the smaller of offered and ours; soft limits ours, kept
    /// below the hard ones.
    pub lifetime: Lifetime,
    /// The traffic to install, from our side (`src` is ours): the peer's
    /// IDs mirrored, or our own selector when it sent none.
    pub selector: Selector,
}

/// Picks the first offered transform (initiator's order) that is in
/// `ours.proposals` with `ours.mode`, and checks the IDs against our
/// selector.
///
/// # Errors
/// Nothing matches (NO-PROPOSAL-CHOSEN); the peer's IDs select traffic
/// outside our selector (INVALID-ID-INFORMATION).
pub fn choose<'r>(req: &'r CreateRequest, ours: &PeerConfig) -> Result<Choice<'r>, QmError> {
    let (index, proposal) = req
        .proposals
        .iter()
        .enumerate()
        .find(|(_, o)| o.mode == ours.mode && ours.proposals.contains(&o.esp))
        .ok_or_else(|| no_proposal(req, ours))?;
    let selector = match &req.ids {
        None => ours.selector.clone(),
        Some(theirs) => {
            let ours_view = mirror(theirs);
            if !ids::within(&ours_view, &ours.selector) {
                return Err(QmError::IdNotAllowed {
                    theirs: ids::describe(&ours_view),
                    ours: ids::describe(&ours.selector),
                });
            }
            ours_view
        }
    };
    Ok(Choice {
        proposal,
        optimistic: index == 0 && req.first_usable,
        lifetime: negotiated_lifetime(&proposal.lifetime, &ours.lifetime),
        selector,
    })
}

/// The lifetime of an SA pair: each hard limit the smaller of `offered` and
/// `ours` (absent = unlimited); packets and soft limits from `ours`, a soft
/// limit not below its hard one lowered to 90 % of it.
#[must_use]
pub fn negotiated_lifetime(offered: &Lifetime, ours: &Lifetime) -> Lifetime {
    // A peer cannot make us rekey in a loop (or, with 0, never: the kernel
    // reads 0 as no limit): offers below the floor count as the floor.
    let floor = |t: Duration| t.max(MIN_LIFETIME);
    let offered_time = offered.hard_time.map(floor);
    let hard_time = smaller(offered_time, ours.hard_time);
    let hard_bytes = smaller(offered.hard_bytes.filter(|&b| b > 0), ours.hard_bytes);
    Lifetime {
        hard_time,
        hard_bytes,
        soft_time: below(ours.soft_time, hard_time, |t| t - t / 10),
        soft_bytes: below(ours.soft_bytes, hard_bytes, |b| b - b / 10),
        ..*ours
    }
}

/// The shortest SA lifetime a peer may impose on us.
pub const MIN_LIFETIME: Duration = Duration::from_secs(5);

/// The KINK_ISAKMP payload of a REPLY: SA with exactly `chosen` (same
/// proposal and transform numbers) and our inbound `spi`, with `lifetime`'s
/// hard limits; Nr if given; `ids` echoed as received (initiator's view:
/// `src` is IDci).
pub fn build_reply(
    chosen: &OfferedProposal,
    spi: u32,
    nonce: Option<&[u8]>,
    lifetime: &Lifetime,
    ids: Option<&Selector>,
) -> IsakmpPayload<'static> {
    let proposal = esp_proposal(
        chosen.proposal_num,
        spi,
        chosen.transform_num,
        &chosen.esp,
        chosen.mode,
        lifetime,
    );
    let mut payloads = vec![Payload::Sa(SaPayload::ipsec(vec![proposal]))];
    if let Some(nr) = nonce {
        payloads.push(Payload::Nonce(Cow::Owned(nr.to_vec())));
    }
    push_ids(&mut payloads, ids);
    IsakmpPayload { payloads }
}

/// What a REPLY to our CREATE settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAnswer {
    /// The responder's inbound SPI: our outbound one.
    pub spi: u32,
    /// Position of the chosen transform in what we offered; 0 = optimistic.
    pub index: usize,
    /// The chosen transform.
    pub esp: EspProposal,
    /// The mode the responder put in it (check it against ours).
    pub mode: IpsecMode,
    /// Hard limits it returned (28800 seconds when none).
    pub lifetime: Lifetime,
    /// Nr, if the responder contributed one (then KEYMAT includes it).
    pub nonce: Option<Vec<u8>>,
}

/// Reads a REPLY's KINK_ISAKMP payload against the transforms we `offered`.
///
/// # Errors
/// The REPLY carries an error notify and no SA ([`QmError::Refused`]); no
/// SA (PAYLOAD-MALFORMED); not exactly one proposal with one transform
/// (BAD-PROPOSAL-SYNTAX); a bad SPI (INVALID-SPI); a transform we did not
/// offer, or a KE payload (PFS, never offered) (NO-PROPOSAL-CHOSEN).
pub fn parse_reply(p: &IsakmpPayload<'_>, offered: &[EspProposal]) -> Result<ReplyAnswer, QmError> {
    let sa = match (find_sa(p), find_notify(p)) {
        (Err(QmError::Missing(_)), Some(t)) => return Err(QmError::Refused(t)),
        (sa, _) => sa?,
    };
    let [proposal] = sa.proposals.as_slice() else {
        return Err(bad_syntax("REPLY SA must hold exactly one proposal"));
    };
    let [t] = proposal.transforms.as_slice() else {
        return Err(bad_syntax("REPLY proposal must hold exactly one transform"));
    };
    if proposal.protocol != ProtocolId::Esp {
        return Err(QmError::NotOffered(format!(
            "protocol {}",
            proposal.protocol
        )));
    }
    if has_ke(p) {
        return Err(QmError::NotOffered("PFS (a KE payload)".to_owned()));
    }
    let spi = esp_spi(proposal)?;
    let reading = transform::from_transform(t).map_err(QmError::NotOffered)?;
    let index = offered
        .iter()
        .position(|o| *o == reading.esp)
        .ok_or_else(|| QmError::NotOffered(esp_name(&reading.esp)))?;
    Ok(ReplyAnswer {
        spi,
        index,
        esp: reading.esp,
        mode: reading.mode,
        lifetime: reading.lifetime,
        nonce: find_nonce(p).map(<[u8]>::to_vec),
    })
}

/// The KINK_ISAKMP payload of a DELETE for our inbound `spis` (ESP, SPI
/// size 4; one Delete payload per 65535 SPIs).
pub fn build_delete(spis: &[u32]) -> IsakmpPayload<'static> {
    let payloads = spis
        .chunks(usize::from(u16::MAX))
        .map(|chunk| {
            Payload::Delete(DeletePayload {
                doi: IPSEC_DOI,
                protocol: ProtocolId::Esp,
                spi_size: 4,
                spis: chunk
                    .iter()
                    .map(|s| Cow::Owned(s.to_be_bytes().to_vec()))
                    .collect(),
            })
        })
        .collect();
    IsakmpPayload { payloads }
}

/// The ESP SPIs of every Delete payload (the sender's inbound SPIs: our
/// outbound ones); Delete payloads for other protocols are ignored.
///
/// # Errors
/// No Delete payload (PAYLOAD-MALFORMED), a DOI other than IPsec
/// (DOI-NOT-SUPPORTED), an ESP SPI size other than 4 (INVALID-SPI).
pub fn parse_delete(p: &IsakmpPayload<'_>) -> Result<Vec<u32>, QmError> {
    let mut spis = Vec::new();
    let mut seen = false;
    for d in p.payloads.iter().filter_map(|x| match x {
        Payload::Delete(d) => Some(d),
        _ => None,
    }) {
        seen = true;
        if d.doi != IPSEC_DOI {
            return Err(malformed(
                "Delete payload DOI is not IPsec",
                NotifyType::DoiNotSupported,
            ));
        }
        if d.protocol != ProtocolId::Esp {
            continue;
        }
        for spi in &d.spis {
            let spi = <[u8; SPI_LEN]>::try_from(&spi[..]).map_err(|_| {
                malformed("ESP SPI in Delete is not 4 octets", NotifyType::InvalidSpi)
            })?;
            spis.push(u32::from_be_bytes(spi));
        }
    }
    if seen {
        Ok(spis)
    } else {
        Err(QmError::Missing("Delete payload"))
    }
}

/// A KINK_ISAKMP payload holding one error Notification of type `t` (IPsec
/// DOI, ESP, no SPI), for a REPLY that refuses a command.
pub fn build_notify(t: NotifyType) -> IsakmpPayload<'static> {
    IsakmpPayload {
        payloads: vec![Payload::Notification(NotifyPayload {
            doi: IPSEC_DOI,
            protocol: ProtocolId::Esp,
            spi: Cow::Owned(Vec::new()),
            ntype: t,
            data: Cow::Owned(Vec::new()),
        })],
    }
}

/// The type of the first error notify (1..=16383) in `p`; status notifies
/// (INITIAL-CONTACT, RESPONDER-LIFETIME, ...) are not errors.
pub fn find_notify(p: &IsakmpPayload<'_>) -> Option<NotifyType> {
    p.payloads.iter().find_map(|x| match x {
        Payload::Notification(n) if n.ntype.is_error() => Some(n.ntype),
        _ => None,
    })
}

/// `tunnel` or `transport`, for messages.
fn mode_name(m: IpsecMode) -> &'static str {
    match m {
        IpsecMode::Tunnel => "tunnel",
        IpsecMode::Transport => "transport",
    }
}

/// One ESP proposal with a single transform.
fn esp_proposal(
    num: u8,
    spi: u32,
    transform_num: u8,
    p: &EspProposal,
    mode: IpsecMode,
    life: &Lifetime,
) -> Proposal<'static> {
    Proposal {
        num,
        protocol: ProtocolId::Esp,
        spi: Cow::Owned(spi.to_be_bytes().to_vec()),
        transforms: vec![transform::to_transform(transform_num, p, mode, life)],
    }
}

/// Appends IDci and IDcr for `ids`.
fn push_ids(payloads: &mut Vec<Payload<'static>>, ids: Option<&Selector>) {
    if let Some(s) = ids {
        let (ci, cr) = ids::to_ids(s);
        payloads.push(Payload::Id(ci));
        payloads.push(Payload::Id(cr));
    }
}

/// The first SA payload, IPsec DOI.
fn find_sa<'p>(p: &'p IsakmpPayload<'_>) -> Result<&'p SaPayload<'p>, QmError> {
    let sa = p
        .payloads
        .iter()
        .find_map(|x| match x {
            Payload::Sa(sa) => Some(sa),
            _ => None,
        })
        .ok_or(QmError::Missing("SA payload"))?;
    if sa.doi != IPSEC_DOI {
        return Err(malformed(
            "SA payload DOI is not IPsec",
            NotifyType::DoiNotSupported,
        ));
    }
    Ok(sa)
}

/// The first Nonce payload's data.
fn find_nonce<'p>(p: &'p IsakmpPayload<'_>) -> Option<&'p [u8]> {
    p.payloads.iter().find_map(|x| match x {
        Payload::Nonce(n) => Some(&n[..]),
        _ => None,
    })
}

/// Whether a KE payload (PFS) is present.
fn has_ke(p: &IsakmpPayload<'_>) -> bool {
    p.payloads.iter().any(|x| matches!(x, Payload::Ke(_)))
}

/// IDci/IDcr: none, or exactly two ID payloads.
fn find_ids(p: &IsakmpPayload<'_>) -> Result<Option<Selector>, QmError> {
    let found: Vec<_> = p
        .payloads
        .iter()
        .filter_map(|x| match x {
            Payload::Id(id) => Some(id),
            _ => None,
        })
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [ci, cr] => ids::from_ids(ci, cr)
            .map(Some)
            .map_err(|what| malformed(what, NotifyType::InvalidIdInformation)),
        _ => Err(malformed(
            "Quick Mode IDs must come as the pair IDci, IDcr",
            NotifyType::InvalidIdInformation,
        )),
    }
}

/// Reads the proposals sharing one number into `offer`, or notes in
/// `skipped` why not; returns whether the group's first transform was
/// usable.
fn read_group(
    group: &[Proposal<'_>],
    offer: &mut Vec<OfferedProposal>,
    skipped: &mut Vec<String>,
) -> Result<bool, QmError> {
    let mut skip = |why: String| {
        if skipped.len() < MAX_SKIPPED {
            skipped.push(why);
        }
    };
    if group.iter().any(|p| p.transforms.is_empty()) {
        return Err(bad_syntax("proposal without transform"));
    }
    let [proposal] = group else {
        let protocols: Vec<String> = group.iter().map(|p| p.protocol.to_string()).collect();
        let num = group.first().map_or(0, |p| p.num);
        skip(format!("proposal {num}: bundle {}", protocols.join("+")));
        return Ok(false);
    };
    if proposal.protocol != ProtocolId::Esp {
        skip(format!(
            "proposal {}: protocol {}",
            proposal.num, proposal.protocol
        ));
        return Ok(false);
    }
    let spi = esp_spi(proposal)?;
    let mut first = false;
    for (i, t) in proposal.transforms.iter().enumerate() {
        match transform::from_transform(t) {
            Ok(r) => {
                first |= i == 0;
                offer.push(OfferedProposal {
                    proposal_num: proposal.num,
                    transform_num: t.num,
                    spi,
                    esp: r.esp,
                    mode: r.mode,
                    lifetime: r.lifetime,
                });
            }
            Err(why) => skip(format!(
                "proposal {} transform {}: {why}",
                proposal.num, t.num
            )),
        }
    }
    Ok(first)
}

/// An ESP proposal's 4-octet SPI.
fn esp_spi(p: &Proposal<'_>) -> Result<u32, QmError> {
    <[u8; SPI_LEN]>::try_from(&p.spi[..])
        .map(u32::from_be_bytes)
        .map_err(|_| malformed("ESP proposal SPI is not 4 octets", NotifyType::InvalidSpi))
}

/// NO-PROPOSAL-CHOSEN, naming both sides.
fn no_proposal(req: &CreateRequest, ours: &PeerConfig) -> QmError {
    let offered = req
        .proposals
        .iter()
        .map(|o| format!("{} ({})", esp_name(&o.esp), mode_name(o.mode)))
        .collect();
    QmError::NoProposalChosen {
        offered,
        ours: ours.proposals.iter().map(esp_name).collect(),
        mode: ours.mode,
    }
}

fn malformed(what: &'static str, notify: NotifyType) -> QmError {
    QmError::Malformed { what, notify }
}

fn bad_syntax(what: &'static str) -> QmError {
    malformed(what, NotifyType::BadProposalSyntax)
}

/// The smaller of two limits, `None` being no limit.
fn smaller<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `soft`, or `lower(hard)` when it is not below `hard`.
fn below<T: Ord + Copy>(soft: Option<T>, hard: Option<T>, lower: impl Fn(T) -> T) -> Option<T> {
    match (soft, hard) {
        (Some(s), Some(h)) if s >= h => Some(lower(h)),
        _ => soft,
    }
}
