//! KINK payload bodies ([RFC 4430 §4.2](https://www.rfc-editor.org/rfc/rfc4430#section-4.2)).
//!
//! Every payload starts with the generic header `Next Payload (8) | RESERVED (8) | Payload
//! Length (16)`, written only by the chain (chain.rs); this file codes the bodies after it.
//!
//! | type | body |
//! |------|------|
//! | KINK_AP_REQ (1) | EPOCH (32) + DER KRB_AP_REQ |
//! | KINK_AP_REP (2) | EPOCH (32) + DER KRB_AP_REP |
//! | KINK_KRB_ERROR (3) | DER KRB_ERROR |
//! | KINK_TGT_REQ (4) | PrincName (opaque octets) |
//! | KINK_TGT_REP (5) | DER TGT (Ticket) |
//! | KINK_ISAKMP (6) | InnerNextPload (8), QMMaj (4), QMMin (4), RESERVED (16), ISAKMP chain |
//! | KINK_ENCRYPT (7) | ciphertext of `InnerNextPload (8), RESERVED2 (24), inner chain` |
//! | KINK_ERROR (8) | ErrorCode (32) |

use libracoon::open_enum;
use std::borrow::Cow;

use libracoon::isakmp;
use nom::number::complete::{be_u8, be_u16, be_u32};

use super::{DecodeError, fields};

/// Quick Mode version 1.0 as the octet QMMaj|QMMin (RFC 4430 §4.2.6; racoon2 sends 0x10).
pub const QM_VERSION: u8 = 0x10;

open_enum! {
    /// KINK Next Payload Types (IANA "KINK Parameters"). Old drafts, and Wireshark's
    /// dissector, used other numbers; these are RFC 4430's.
    pub enum PayloadType(u8) {
        /// KINK_DONE: no next payload.
        Done = 0 => "KINK_DONE",
        /// KINK_AP_REQ.
        ApReq = 1 => "KINK_AP_REQ",
        /// KINK_AP_REP.
        ApRep = 2 => "KINK_AP_REP",
        /// KINK_KRB_ERROR.
        KrbError = 3 => "KINK_KRB_ERROR",
        /// KINK_TGT_REQ.
        TgtReq = 4 => "KINK_TGT_REQ",
        /// KINK_TGT_REP.
        TgtRep = 5 => "KINK_TGT_REP",
        /// KINK_ISAKMP.
        Isakmp = 6 => "KINK_ISAKMP",
        /// KINK_ENCRYPT.
        Encrypt = 7 => "KINK_ENCRYPT",
        /// KINK_ERROR.
        Error = 8 => "KINK_ERROR",
    }
}

open_enum! {
    /// KINK_ERROR codes (RFC 4430 §4.2.8, IANA "KINK Error Codes"); 8192-16383 are private
    /// use.
    pub enum ErrorCode(u32) {
        /// KINK_OK: no error detected.
        Ok = 0 => "KINK_OK",
        /// KINK_PROTOERR: the message was malformed.
        ProtoErr = 1 => "KINK_PROTOERR",
        /// KINK_INVDOI: invalid DOI.
        InvDoi = 2 => "KINK_INVDOI",
        /// KINK_INVMAJ: invalid major version.
        InvMaj = 3 => "KINK_INVMAJ",
        /// 4: racoon2's KINK_INVMIN (invalid minor version); see docs/design/kink.md.
        InvMin = 4 => "KINK_INVMIN",
        /// KINK_INTERR: an unrecoverable internal error.
        IntErr = 5 => "KINK_INTERR",
        /// KINK_BADQMVERS: unsupported Quick Mode version.
        BadQmVers = 6 => "KINK_BADQMVERS",
    }
}

/// One KINK payload. Byte fields borrow from the parsed datagram or own what a sender built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// KINK_AP_REQ: the sender's EPOCH and a DER KRB_AP_REQ (RFC 4120 §5.5.1).
    ApReq {
        /// Time (Unix seconds) the sender's KINK state began; for dead-peer detection.
        epoch: u32,
        /// DER-encoded KRB_AP_REQ.
        ap_req: Cow<'a, [u8]>,
    },
    /// KINK_AP_REP: the sender's EPOCH and a DER KRB_AP_REP (RFC 4120 §5.5.2).
    ApRep {
        /// Time (Unix seconds) the sender's KINK state began.
        epoch: u32,
        /// DER-encoded KRB_AP_REP.
        ap_rep: Cow<'a, [u8]>,
    },
    /// KINK_KRB_ERROR: a DER KRB_ERROR (RFC 4120 §5.9.1).
    KrbError(Cow<'a, [u8]>),
    /// KINK_TGT_REQ: the principal whose TGT the initiator asks for (user-to-user); opaque
    /// here (see docs/design/kink.md for the open layout question).
    TgtReq(Cow<'a, [u8]>),
    /// KINK_TGT_REP: the responder's DER TGT.
    TgtRep(Cow<'a, [u8]>),
    /// KINK_ISAKMP: Quick Mode payloads.
    Isakmp(IsakmpPayload<'a>),
    /// KINK_ENCRYPT: the ciphertext of its content ([`super::encrypt_plaintext`]).
    Encrypt(Cow<'a, [u8]>),
    /// KINK_ERROR.
    Error(ErrorCode),
}

/// The body of a KINK_ISAKMP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsakmpPayload<'a> {
    /// The ISAKMP payload chain (no ISAKMP header). Its first type is the InnerNextPload.
    pub payloads: Vec<isakmp::Payload<'a>>,
}

impl Payload<'_> {
    /// The Next Payload value this payload is announced with.
    #[must_use]
    pub fn ptype(&self) -> PayloadType {
        match self {
            Self::ApReq { .. } => PayloadType::ApReq,
            Self::ApRep { .. } => PayloadType::ApRep,
            Self::KrbError(_) => PayloadType::KrbError,
            Self::TgtReq(_) => PayloadType::TgtReq,
            Self::TgtRep(_) => PayloadType::TgtRep,
            Self::Isakmp(_) => PayloadType::Isakmp,
            Self::Encrypt(_) => PayloadType::Encrypt,
            Self::Error(_) => PayloadType::Error,
        }
    }

    /// Copies every borrowed byte field, detaching the payload from the datagram.
    #[must_use]
    pub fn into_owned(self) -> Payload<'static> {
        let own = |b: Cow<'_, [u8]>| Cow::Owned(b.into_owned());
        match self {
            Self::ApReq { epoch, ap_req } => Payload::ApReq {
                epoch,
                ap_req: own(ap_req),
            },
            Self::ApRep { epoch, ap_rep } => Payload::ApRep {
                epoch,
                ap_rep: own(ap_rep),
            },
            Self::KrbError(b) => Payload::KrbError(own(b)),
            Self::TgtReq(b) => Payload::TgtReq(own(b)),
            Self::TgtRep(b) => Payload::TgtRep(own(b)),
            Self::Isakmp(i) => Payload::Isakmp(IsakmpPayload {
                payloads: i
                    .payloads
                    .into_iter()
                    .map(isakmp::Payload::into_owned)
                    .collect(),
            }),
            Self::Encrypt(b) => Payload::Encrypt(own(b)),
            Self::Error(e) => Payload::Error(e),
        }
    }
}

/// Decodes one body by type.
pub(super) fn parse_body(ptype: PayloadType, body: &[u8]) -> Result<Payload<'_>, DecodeError> {
    Ok(match ptype {
        PayloadType::ApReq => {
            let (ap_req, epoch) = epoch("KINK_AP_REQ", body)?;
            Payload::ApReq { epoch, ap_req }
        }
        PayloadType::ApRep => {
            let (ap_rep, epoch) = epoch("KINK_AP_REP", body)?;
            Payload::ApRep { epoch, ap_rep }
        }
        PayloadType::KrbError => Payload::KrbError(Cow::Borrowed(body)),
        PayloadType::TgtReq => Payload::TgtReq(Cow::Borrowed(body)),
        PayloadType::TgtRep => Payload::TgtRep(Cow::Borrowed(body)),
        PayloadType::Isakmp => Payload::Isakmp(parse_isakmp(body)?),
        PayloadType::Encrypt => Payload::Encrypt(Cow::Borrowed(body)),
        PayloadType::Error => Payload::Error(parse_error(body)?),
        PayloadType::Done | PayloadType::Unknown(_) => {
            return Err(DecodeError::UnknownPayload(ptype.into()));
        }
    })
}

/// Encodes one body by variant.
pub(super) fn emit_body(payload: &Payload<'_>, out: &mut Vec<u8>) {
    match payload {
        Payload::ApReq { epoch, ap_req: b } | Payload::ApRep { epoch, ap_rep: b } => {
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(b);
        }
        Payload::KrbError(b) | Payload::TgtReq(b) | Payload::TgtRep(b) | Payload::Encrypt(b) => {
            out.extend_from_slice(b);
        }
        Payload::Isakmp(i) => emit_isakmp(i, out),
        Payload::Error(code) => out.extend_from_slice(&u32::from(*code).to_be_bytes()),
    }
}

/// Splits EPOCH off an AP_REQ/AP_REP body.
fn epoch<'a>(ctx: &'static str, body: &'a [u8]) -> Result<(Cow<'a, [u8]>, u32), DecodeError> {
    let (rest, epoch) = fields(ctx, body, be_u32)?;
    Ok((Cow::Borrowed(rest), epoch))
}

/// KINK_ERROR: exactly one 32-bit ErrorCode.
fn parse_error(body: &[u8]) -> Result<ErrorCode, DecodeError> {
    match <[u8; 4]>::try_from(body) {
        Ok(code) => Ok(u32::from_be_bytes(code).into()),
        Err(_) => Err(DecodeError::BadLength("KINK_ERROR", body.len() + 4)),
    }
}

/// KINK_ISAKMP: version check, then the ISAKMP chain, which fills the rest of the body
/// exactly (ISAKMP payloads are not padded; KINK padding lies outside Payload Length).
fn parse_isakmp(body: &[u8]) -> Result<IsakmpPayload<'_>, DecodeError> {
    let (chain, (inner_next, version, _reserved)) =
        fields("KINK_ISAKMP", body, (be_u8, be_u8, be_u16))?;
    if version != QM_VERSION {
        return Err(DecodeError::BadQmVersion(version));
    }
    let payloads = isakmp::parse_chain(inner_next.into(), chain)?;
    Ok(IsakmpPayload { payloads })
}

/// Encodes a KINK_ISAKMP body; InnerNextPload is the first ISAKMP payload's type.
fn emit_isakmp(body: &IsakmpPayload<'_>, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0, QM_VERSION, 0, 0]);
    let first = isakmp::emit_chain(&body.payloads, out);
    if let Some(slot) = out.get_mut(at) {
        *slot = first.into();
    }
}

#[cfg(test)]
mod tests {
    use libracoon::isakmp::{NotifyType, PayloadType as IsakmpType};

    use super::*;

    #[test]
    fn ap_req_body() {
        let body = [0x5f, 0x00, 0x00, 0x01, 0x6e, 0x82];
        let p = parse_body(PayloadType::ApReq, &body).unwrap();
        assert_eq!(
            p,
            Payload::ApReq {
                epoch: 0x5f00_0001,
                ap_req: Cow::Borrowed(&[0x6e, 0x82]),
            }
        );
        let mut out = Vec::new();
        emit_body(&p, &mut out);
        assert_eq!(out, body);
        assert_eq!(
            parse_body(PayloadType::ApRep, &body[..3]),
            Err(DecodeError::Truncated("KINK_AP_REP"))
        );
    }

    #[test]
    fn error_body_is_exactly_four_octets() {
        assert_eq!(
            parse_body(PayloadType::Error, &[0, 0, 0, 6]),
            Ok(Payload::Error(ErrorCode::BadQmVers))
        );
        assert_eq!(
            parse_body(PayloadType::Error, &[0, 0, 6]),
            Err(DecodeError::BadLength("KINK_ERROR", 7))
        );
        assert_eq!(
            parse_body(PayloadType::Error, &[0, 0, 0, 6, 0]),
            Err(DecodeError::BadLength("KINK_ERROR", 9))
        );
        assert_eq!(ErrorCode::from(8192), ErrorCode::Unknown(8192));
    }

    #[test]
    fn isakmp_body_with_a_nonce() {
        // InnerNextPload NONCE (10), QM 1.0, RESERVED, then one Nonce payload of 8 octets.
        let body = [10, 0x10, 0, 0, 0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8];
        let p = parse_body(PayloadType::Isakmp, &body).unwrap();
        let Payload::Isakmp(ref i) = p else {
            panic!("not KINK_ISAKMP")
        };
        assert_eq!(i.payloads.len(), 1);
        assert_eq!(i.payloads[0].ptype(), IsakmpType::Nonce);
        let mut out = Vec::new();
        emit_body(&p, &mut out);
        assert_eq!(out, body);
    }

    #[test]
    fn isakmp_errors() {
        assert_eq!(
            parse_body(PayloadType::Isakmp, &[0, 0x11, 0, 0]),
            Err(DecodeError::BadQmVersion(0x11))
        );
        assert_eq!(
            DecodeError::BadQmVersion(0x11).kink_error(),
            ErrorCode::BadQmVers
        );
        let err = parse_body(PayloadType::Isakmp, &[14, 0x10, 0, 0, 0, 0, 0, 4]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Isakmp(isakmp::DecodeError::InvalidPayloadType(14))
        );
        assert_eq!(err.kink_error(), ErrorCode::ProtoErr);
        assert_eq!(err.isakmp_notify(), Some(NotifyType::InvalidPayloadType));
        assert_eq!(
            parse_body(PayloadType::Isakmp, &[0, 0x10, 0]),
            Err(DecodeError::Truncated("KINK_ISAKMP"))
        );
    }

    #[test]
    fn unknown_types_are_protoerr() {
        for t in [0u8, 9, 14, 127, 128, 255] {
            let err = parse_body(PayloadType::from(t), &[]).unwrap_err();
            assert_eq!(err, DecodeError::UnknownPayload(t));
            assert_eq!(err.kink_error(), ErrorCode::ProtoErr);
        }
    }

    #[test]
    fn names() {
        let names: Vec<_> = (0..=8).map(|t| PayloadType::from(t).to_string()).collect();
        assert_eq!(
            names.join(" "),
            "KINK_DONE KINK_AP_REQ KINK_AP_REP KINK_KRB_ERROR KINK_TGT_REQ KINK_TGT_REP \
             KINK_ISAKMP KINK_ENCRYPT KINK_ERROR"
        );
        assert_eq!(ErrorCode::ProtoErr.to_string(), "KINK_PROTOERR");
    }
}
