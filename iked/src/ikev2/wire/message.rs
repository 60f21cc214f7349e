//! Whole IKE datagrams: header, payload chain, opaque SK payload, charon-style summaries
//! ([RFC 7296 §3](https://www.rfc-editor.org/rfc/rfc7296#section-3), §3.14).

use std::fmt;

use super::chain::{ChainWriter, GENERIC_HEADER_LEN, walk};
use super::{DecodeError, HEADER_LEN, Header, Payload, PayloadType, split};

/// A whole datagram, decoded. For encrypted messages the SK payload is kept opaque: decrypting
/// it, then [`parse_chain`](super::parse_chain) on the plaintext, is a separate step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The IKE header.
    pub header: Header,
    /// Plaintext payloads before SK (all of them in IKE_SA_INIT; usually none otherwise).
    pub payloads: Vec<Payload>,
    /// The SK payload, last in the chain, if the message is encrypted.
    pub sk: Option<SkPayload>,
}

/// The Encrypted and Authenticated payload, undecrypted
/// ([RFC 7296 §3.14](https://www.rfc-editor.org/rfc/rfc7296#section-3.14)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkPayload {
    /// Its Next Payload field: the type of the first payload inside.
    pub first_inner: PayloadType,
    /// Its critical bit (zero from conforming peers).
    pub critical: bool,
    /// Offset of the SK generic payload header inside the datagram. AEAD's associated data is
    /// `datagram[..header_offset + 4]` (RFC 5282 §5.1); for CBC+HMAC the ICV covers the
    /// datagram up to the ICV itself (RFC 7296 §3.14).
    pub header_offset: usize,
    /// The encrypted body: IV || ciphertext || ICV, i.e.
    /// `datagram[header_offset + 4 .. header_offset + length]`.
    pub body: Vec<u8>,
}

impl Message {
    /// Decodes a whole datagram (after any non-ESP marker).
    ///
    /// The header's Length must equal the datagram's length. An SK payload must be the last
    /// payload ("the Encrypted payload ... MUST be the last payload", RFC 7296 §3.14). An SKF
    /// payload (RFC 7383 fragment) is an error: we never announce IKEV2_FRAGMENTATION_SUPPORTED,
    /// and "the initiator MUST NOT send fragmented messages" without it (RFC 7383 §2.5).
    ///
    /// # Errors
    /// Any [`Header::parse`] or [`parse_chain`](super::parse_chain) error; `BadLength` for a
    /// length mismatch; `Trailing` for bytes after the SK payload.
    pub fn parse(datagram: &[u8]) -> Result<Self, DecodeError> {
        let header = Header::parse(datagram)?;
        let length = usize::try_from(header.length).unwrap_or(usize::MAX);
        if length != datagram.len() {
            return Err(DecodeError::BadLength("IKE message length", length));
        }
        let (_, chain) = split("IKE header", datagram, HEADER_LEN)?;
        let (payloads, sk) = walk(header.next_payload, chain, HEADER_LEN)?;
        Ok(Self {
            header,
            payloads,
            sk,
        })
    }

    /// Encodes the message, setting the header's Next Payload and Length from the payloads.
    ///
    /// Meant for plaintext messages (`sk` is `None`); an SK payload is re-emitted as is, last,
    /// which is what a retransmission or a fuzz round trip needs. Encrypting is
    /// [`emit_sk_frame`]'s job.
    ///
    /// # Panics
    /// If a payload does not fit its length fields (see
    /// [`emit_chain`](super::emit_chain)).
    #[must_use]
    pub fn emit(&self) -> Vec<u8> {
        let mut chain = Vec::new();
        let mut writer = ChainWriter::new(&mut chain);
        for payload in &self.payloads {
            writer.push(payload);
        }
        let first = match &self.sk {
            Some(sk) => writer.finish_with_sk(sk.first_inner, sk.critical, |out| {
                out.extend_from_slice(&sk.body);
            }),
            None => writer.finish(),
        };
        let header = Header {
            next_payload: first,
            length: message_len(chain.len()),
            ..self.header
        };
        let mut out = Vec::with_capacity(HEADER_LEN + chain.len());
        header.emit(&mut out);
        out.extend_from_slice(&chain);
        out
    }
}

/// Builds an encrypted message frame: `header` (Next Payload SK, Length set), the SK generic
/// header naming `first_inner`, and `body_len` zero octets for the caller to fill with
/// IV || ciphertext || ICV.
///
/// Returns the datagram and the offset of the SK generic header (always [`HEADER_LEN`]), from
/// which the caller derives the AEAD associated data (`datagram[..offset + 4]`) or the range
/// an HMAC ICV covers (everything before the ICV, RFC 7296 §3.14).
///
/// # Panics
/// If `body_len + 4` exceeds 65535 (the SK payload's length field).
#[must_use]
pub fn emit_sk_frame(
    header: &Header,
    first_inner: PayloadType,
    body_len: usize,
) -> (Vec<u8>, usize) {
    let total = HEADER_LEN + GENERIC_HEADER_LEN + body_len;
    let header = Header {
        next_payload: PayloadType::Sk,
        length: message_len(total - HEADER_LEN),
        ..*header
    };
    let mut out = Vec::with_capacity(total);
    header.emit(&mut out);
    ChainWriter::new(&mut out).finish_with_sk(first_inner, false, |out| {
        out.resize(out.len() + body_len, 0);
    });
    (out, HEADER_LEN)
}

/// charon's one-line summary of a message: `IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP)
/// N(NATD_D_IP) ]`.
///
/// Works on decrypted inner payloads too, so logs and simulator transcripts read like
/// strongSwan's, which operators already know. Notifies print charon's short name, or the
/// number if it has none (`N(40960)`).
#[must_use]
pub fn summary(header: &Header, payloads: &[Payload]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_summary(&mut out, header, payloads, false);
    out
}

impl fmt::Display for Message {
    /// The [`summary`] line; an SK payload shows as `E` (`IKE_AUTH request 1 [ E ]`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_summary(f, &self.header, &self.payloads, self.sk.is_some())
    }
}

/// Writes the summary line; `encrypted` appends the `E` token.
fn write_summary(
    out: &mut impl fmt::Write,
    header: &Header,
    payloads: &[Payload],
    encrypted: bool,
) -> fmt::Result {
    let kind = if header.flags.response() {
        "response"
    } else {
        "request"
    };
    write!(out, "{} {kind} {} [", header.exchange, header.message_id)?;
    for payload in payloads {
        match payload {
            Payload::Notify(n) => match n.ntype.short_name() {
                Some(name) => write!(out, " N({name})")?,
                None => write!(out, " N({})", u16::from(n.ntype))?,
            },
            other => write!(out, " {}", other.ptype())?,
        }
    }
    if encrypted {
        write!(out, " {}", PayloadType::Sk)?;
    }
    out.write_str(" ]")
}

/// The header Length for a chain of `chain_len` octets.
///
/// # Panics
/// Beyond 4 GiB, which no caller can build in practice.
fn message_len(chain_len: usize) -> u32 {
    u32::try_from(HEADER_LEN + chain_len).unwrap_or_else(|_| panic!("IKE message too long"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ikev2::wire::{
        ExchangeType, Flags, NotifyType, ProtocolId, TransformType, captures, parse_chain,
        strategies,
    };

    #[test]
    fn parses_captured_ike_sa_init_request() {
        let msg = Message::parse(captures::PSK_INIT_REQ).unwrap();
        assert_eq!(msg.header.spi_i, 0x60b8_2e9a_b87c_2915);
        assert_eq!(msg.header.spi_r, 0);
        assert!(msg.sk.is_none());
        let Payload::Sa(proposals) = &msg.payloads[0] else {
            panic!("SA first")
        };
        assert_eq!(proposals.len(), 2);
        assert_eq!(proposals[0].protocol, ProtocolId::Ike);
        let encr = &proposals[0].transforms[0];
        assert_eq!(
            (encr.ttype, encr.id, encr.key_len),
            (TransformType::Encr, 12, Some(128))
        );
        let Payload::Ke(ke) = &msg.payloads[1] else {
            panic!("KE second")
        };
        assert_eq!((ke.group, ke.data.len()), (19, 64));
        let Payload::Nonce(nonce) = &msg.payloads[2] else {
            panic!("No third")
        };
        assert_eq!(nonce.len(), 32);
        for (i, ntype) in [
            NotifyType::NatDetectionSourceIp,
            NotifyType::NatDetectionDestinationIp,
        ]
        .into_iter()
        .enumerate()
        {
            let Payload::Notify(n) = &msg.payloads[3 + i] else {
                panic!("NAT-D")
            };
            assert_eq!(
                (n.ntype, n.protocol, n.data.len()),
                (ntype, ProtocolId::None, 20)
            );
        }
    }

    #[test]
    fn parses_captured_ike_sa_init_response() {
        let msg = Message::parse(captures::PSK_INIT_RESP).unwrap();
        assert_eq!(msg.header.spi_r, 0xe823_1b50_cb2c_e35c);
        assert_eq!(msg.header.flags, Flags(Flags::RESPONSE));
        let Payload::Sa(proposals) = &msg.payloads[0] else {
            panic!("SA first")
        };
        assert_eq!(proposals.len(), 1, "the chosen proposal");
        assert_eq!(proposals[0].num, 1);
        let Payload::Ke(ke) = &msg.payloads[1] else {
            panic!("KE second")
        };
        assert_eq!((ke.group, ke.data.len()), (19, 64));
    }

    #[test]
    fn parses_captured_cert_ike_sa_init_with_ecp384() {
        let msg = Message::parse(captures::CERT_INIT_REQ).unwrap();
        let Payload::Ke(ke) = &msg.payloads[1] else {
            panic!("KE second")
        };
        assert_eq!((ke.group, ke.data.len()), (20, 96));
    }

    #[test]
    fn emit_reproduces_every_captured_datagram() {
        for c in captures::all() {
            let msg = Message::parse(c.datagram).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(msg.emit(), c.datagram, "{}", c.name);
        }
    }

    #[test]
    fn captured_ike_auth_keeps_sk_opaque() {
        let msg = Message::parse(captures::PSK_AUTH_REQ).unwrap();
        assert!(msg.payloads.is_empty());
        let sk = msg.sk.as_ref().unwrap();
        assert_eq!(sk.first_inner, PayloadType::IdI);
        assert_eq!(sk.header_offset, HEADER_LEN);
        assert_eq!(sk.body.len(), captures::PSK_AUTH_REQ.len() - HEADER_LEN - 4);
        assert_eq!(sk.body, captures::PSK_AUTH_REQ[HEADER_LEN + 4..]);
        assert_eq!(msg.to_string(), "IKE_AUTH request 1 [ E ]");

        let msg = Message::parse(captures::CERT_AUTH_RESP).unwrap();
        let sk = msg.sk.as_ref().unwrap();
        assert_eq!(sk.first_inner, PayloadType::IdR);
        assert_eq!(sk.body.len(), captures::CERT_AUTH_RESP.len() - 32);
    }

    #[test]
    fn captured_empty_informational_response_names_no_inner_payload() {
        let msg = Message::parse(captures::PSK_INFO_RESP_LAST).unwrap();
        assert_eq!(msg.sk.unwrap().first_inner, PayloadType::None);
    }

    /// charon 5.9.8 logs these lines for the captured exchange ("generating ..."/"parsed ...").
    #[test]
    fn display_matches_charon_for_captured_ike_sa_init() {
        let req = Message::parse(captures::PSK_INIT_REQ).unwrap();
        assert_eq!(
            req.to_string(),
            "IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) \
             N(REDIR_SUP) ]"
        );
        let resp = Message::parse(captures::PSK_INIT_RESP).unwrap();
        assert_eq!(
            resp.to_string(),
            "IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) \
             N(CHDLESS_SUP) N(MULT_AUTH) ]"
        );
    }

    #[test]
    fn summary_of_decrypted_inner_payloads_matches_charon() {
        let cases = [
            (
                captures::PSK_AUTH_REQ,
                captures::PSK_AUTH_REQ_INNER,
                "IKE_AUTH request 1 [ IDi N(INIT_CONTACT) IDr AUTH SA TSi TSr N(MOBIKE_SUP) \
                 N(ADD_6_ADDR) N(MULT_AUTH) N(EAP_ONLY) N(MSG_ID_SYN_SUP) ]",
            ),
            (
                captures::PSK_AUTH_RESP,
                captures::PSK_AUTH_RESP_INNER,
                "IKE_AUTH response 1 [ IDr AUTH SA TSi TSr N(MOBIKE_SUP) N(ADD_6_ADDR) ]",
            ),
            (
                captures::CERT_AUTH_REQ,
                captures::CERT_AUTH_REQ_INNER,
                "IKE_AUTH request 1 [ IDi CERT N(INIT_CONTACT) CERTREQ IDr AUTH SA TSi TSr \
                 N(MOBIKE_SUP) N(ADD_6_ADDR) N(MULT_AUTH) N(EAP_ONLY) N(MSG_ID_SYN_SUP) ]",
            ),
            (
                captures::PSK_CHILD_REQ,
                captures::PSK_CHILD_REQ_INNER,
                "CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No TSi TSr ]",
            ),
            (
                captures::PSK_INFO_REQ,
                captures::PSK_INFO_REQ_INNER,
                "INFORMATIONAL request 3 [ D ]",
            ),
        ];
        for (datagram, inner, want) in cases {
            let msg = Message::parse(datagram).unwrap();
            let payloads = parse_chain(msg.sk.unwrap().first_inner, inner).unwrap();
            assert_eq!(summary(&msg.header, &payloads), want);
        }
    }

    #[test]
    fn summary_prints_unknown_notify_number_and_empty_brackets() {
        let mut header = Message::parse(captures::PSK_INIT_REQ).unwrap().header;
        header.exchange = ExchangeType::Informational;
        header.message_id = 7;
        header.flags = Flags::new(true, true);
        assert_eq!(summary(&header, &[]), "INFORMATIONAL response 7 [ ]");
        let n = Payload::Notify(crate::ikev2::wire::NotifyPayload {
            protocol: ProtocolId::None,
            spi: vec![],
            ntype: NotifyType::from(40960),
            data: vec![],
        });
        assert_eq!(
            summary(&header, &[n]),
            "INFORMATIONAL response 7 [ N(40960) ]"
        );
    }

    #[test]
    fn length_must_equal_datagram() {
        let mut bytes = captures::PSK_INIT_REQ.to_vec();
        bytes.push(0);
        let len = captures::PSK_INIT_REQ.len();
        assert_eq!(
            Message::parse(&bytes),
            Err(DecodeError::BadLength("IKE message length", len))
        );
        assert_eq!(
            Message::parse(&bytes[..len - 1]),
            Err(DecodeError::BadLength("IKE header length", len))
        );
    }

    #[test]
    fn sk_must_be_last() {
        let (mut frame, _) = emit_sk_frame(
            &Message::parse(captures::PSK_AUTH_REQ).unwrap().header,
            PayloadType::IdI,
            16,
        );
        // Shorten the SK payload by 4 octets so a fake payload header follows it.
        frame[30..32].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            Message::parse(&frame),
            Err(DecodeError::Trailing("SK payload"))
        );
    }

    #[test]
    fn skf_payload_is_rejected() {
        let mut frame = emit_sk_frame(
            &Message::parse(captures::PSK_AUTH_REQ).unwrap().header,
            PayloadType::IdI,
            16,
        )
        .0;
        frame[16] = 53;
        assert!(matches!(
            Message::parse(&frame),
            Err(DecodeError::BadValue(_))
        ));
    }

    #[test]
    fn unknown_critical_payload_in_plaintext_message_is_rejected() {
        let mut bytes = captures::PSK_INIT_REQ.to_vec();
        // The last payload (N(REDIR_SUP), 8 octets) becomes an unknown critical type 200.
        let last = bytes.len() - 8;
        bytes[last - 16] = 200; // N(HASH_ALG)'s Next Payload
        bytes[last + 1] = 0x80;
        assert_eq!(
            Message::parse(&bytes),
            Err(DecodeError::UnknownCritical(200))
        );
        assert_eq!(
            NotifyType::from(Message::parse(&bytes).unwrap_err()),
            NotifyType::UnsupportedCriticalPayload
        );
    }

    #[test]
    fn sk_frame_matches_captured_layout() {
        let captured = Message::parse(captures::PSK_AUTH_REQ).unwrap();
        let sk = captured.sk.as_ref().unwrap();
        let (mut frame, offset) = emit_sk_frame(&captured.header, sk.first_inner, sk.body.len());
        assert_eq!(offset, HEADER_LEN);
        assert_eq!(frame.len(), captures::PSK_AUTH_REQ.len());
        assert!(frame[offset + 4..].iter().all(|&b| b == 0));
        frame[offset + 4..].copy_from_slice(&sk.body);
        assert_eq!(frame, captures::PSK_AUTH_REQ);
    }

    proptest! {
        #[test]
        fn messages_round_trip(msg in strategies::message()) {
            let bytes = msg.emit();
            let parsed = Message::parse(&bytes).unwrap();
            prop_assert_eq!(&parsed.payloads, &msg.payloads);
            prop_assert_eq!(parsed.header.length as usize, bytes.len());
            match (&parsed.sk, &msg.sk) {
                (Some(p), Some(m)) => {
                    prop_assert_eq!((p.first_inner, p.critical, &p.body), (m.first_inner, m.critical, &m.body));
                    prop_assert_eq!(&bytes[p.header_offset + 4..], &m.body[..]);
                }
                (None, None) => {}
                _ => prop_assert!(false, "SK presence changed"),
            }
            prop_assert_eq!(parsed.emit(), bytes);
        }
    }
}
