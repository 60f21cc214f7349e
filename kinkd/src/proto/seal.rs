//! Authenticated KINK messages (RFC 4430 §4.2.7, §4.3): the AP_REQ or
//! AP_REP first, everything else inside KINK_ENCRYPT, KINK_CKSUM last,
//! both keyed with the ticket's session key.
//!
//! One place builds and opens them so every exchange checks the same
//! things in the same order: checksum first (cheap, and it covers the
//! ciphertext), then decryption.

use std::borrow::Cow;

use crate::krb5::{self, KEY_USAGE_KINK_CKSUM, KEY_USAGE_KINK_ENCRYPT, Kerberos, SessionKey};
use crate::wire::{
    self, ACKREQ, ErrorCode, Message, MessageType, Payload, append_cksum, cksum_input,
    encrypt_plaintext, parse_encrypted,
};

/// Why an authenticated message could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    /// No Cksum, or it does not verify with the session key.
    #[error("KINK_CKSUM missing or wrong")]
    BadChecksum,
    /// KINK_ENCRYPT did not decrypt (wrong key or modified ciphertext).
    #[error("KINK_ENCRYPT does not decrypt: {0}")]
    BadCiphertext(String),
    /// The decrypted content is malformed.
    #[error("malformed KINK_ENCRYPT content: {0}")]
    Malformed(wire::DecodeError),
}

/// An authenticated message: `auth` (KINK_AP_REQ or KINK_AP_REP) in the
/// clear, `inner` encrypted, then the Cksum.
///
/// # Errors
/// The Kerberos library refused the key (unsupported enctype).
pub(crate) fn seal(
    krb: &dyn Kerberos,
    key: &SessionKey,
    msg_type: MessageType,
    xid: u32,
    ack_request: bool,
    auth: Payload<'_>,
    inner: &[Payload<'_>],
) -> krb5::Result<Vec<u8>> {
    let mut msg = Message::new(msg_type, xid);
    if ack_request {
        msg.flags |= ACKREQ;
    }
    msg.payloads.push(auth);
    if !inner.is_empty() {
        let plain = zeroize::Zeroizing::new(encrypt_plaintext(inner));
        let cipher = krb.encrypt(key, KEY_USAGE_KINK_ENCRYPT, &plain)?;
        msg.payloads.push(Payload::Encrypt(Cow::Owned(cipher)));
    }
    let mut bytes = msg.emit_for_cksum();
    let cksum = krb.checksum(key, KEY_USAGE_KINK_CKSUM, &bytes)?;
    append_cksum(&mut bytes, &cksum)
        .map_err(|e| krb5::Error::local("KINK_CKSUM", e.to_string()))?;
    Ok(bytes)
}

/// An unauthenticated message (GETTGT, its REPLY, errors sent before a
/// session key exists).
pub(crate) fn plain(msg_type: MessageType, xid: u32, payloads: Vec<Payload<'_>>) -> Vec<u8> {
    let mut msg = Message::new(msg_type, xid);
    msg.payloads = payloads;
    msg.emit()
}

/// An unauthenticated REPLY carrying a KINK_ERROR.
pub(crate) fn error_reply(xid: u32, code: ErrorCode) -> Vec<u8> {
    plain(MessageType::Reply, xid, vec![Payload::Error(code)])
}

/// Verifies the Cksum of `datagram` (whose parse is `msg`) and returns the
/// payloads outside and inside KINK_ENCRYPT, in order, minus the AP_REQ /
/// AP_REP / ENCRYPT payloads themselves.
///
/// # Errors
/// [`OpenError`] naming the first check that failed.
pub(crate) fn open(
    krb: &dyn Kerberos,
    key: &SessionKey,
    datagram: &[u8],
    msg: &Message<'_>,
) -> Result<Vec<Payload<'static>>, OpenError> {
    if msg.cksum.is_empty() {
        return Err(OpenError::BadChecksum);
    }
    let input = cksum_input(datagram).map_err(|_| OpenError::BadChecksum)?;
    match krb.verify_checksum(key, KEY_USAGE_KINK_CKSUM, &input.covered, input.cksum) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(OpenError::BadChecksum),
    }
    let mut out = Vec::new();
    for payload in &msg.payloads {
        match payload {
            Payload::ApReq { .. } | Payload::ApRep { .. } => {}
            Payload::Encrypt(cipher) => {
                let plain = krb
                    .decrypt(key, KEY_USAGE_KINK_ENCRYPT, cipher)
                    .map_err(|e| OpenError::BadCiphertext(e.to_string()))?;
                let inner = parse_encrypted(&plain).map_err(OpenError::Malformed)?;
                out.extend(inner.into_iter().map(Payload::into_owned));
            }
            other => out.push(other.clone().into_owned()),
        }
    }
    Ok(out)
}
