//! Kerberos errors: what failed, the library's code and text, and the
//! RFC 4120 error number a KRB-ERROR would carry.

use std::fmt;

use super::sys;

/// A Kerberos protocol error number (RFC 4120 §7.5.9), as carried in a
/// KRB-ERROR's `error-code` and in KINK_KRB_ERROR.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KrbErrorCode(pub u32);

macro_rules! krb_error_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl KrbErrorCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// The RFC 4120 name (`KRB_AP_ERR_SKEW`), if the code is one kinkd knows.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

krb_error_codes! {
    /// The client is unknown to the KDC.
    KDC_ERR_C_PRINCIPAL_UNKNOWN = 6,
    /// The server is unknown to the KDC.
    KDC_ERR_S_PRINCIPAL_UNKNOWN = 7,
    /// The ticket is not yet, or no longer, valid (KDC side).
    KDC_ERR_NEVER_VALID = 11,
    /// Pre-authentication failed: typically a stale keytab on the client.
    KDC_ERR_PREAUTH_FAILED = 24,
    /// The KDC wants user-to-user for this server (KINK GETTGT).
    KDC_ERR_MUST_USE_USER2USER = 27,
    /// Integrity check failed: wrong key or a modified message.
    KRB_AP_ERR_BAD_INTEGRITY = 31,
    /// The ticket has expired: get a new one and retry.
    KRB_AP_ERR_TKT_EXPIRED = 32,
    /// The ticket is not yet valid.
    KRB_AP_ERR_TKT_NYV = 33,
    /// The authenticator was seen before (replay cache).
    KRB_AP_ERR_REPEAT = 34,
    /// The ticket is not for this server.
    KRB_AP_ERR_NOT_US = 35,
    /// Ticket and authenticator do not match.
    KRB_AP_ERR_BADMATCH = 36,
    /// Clock skew too great.
    KRB_AP_ERR_SKEW = 37,
    /// Message stream modified.
    KRB_AP_ERR_MODIFIED = 41,
    /// The server does not have the ticket's key version (stale keytab).
    KRB_AP_ERR_BADKEYVER = 44,
    /// The server has no key for the ticket.
    KRB_AP_ERR_NOKEY = 45,
    /// Mutual authentication failed.
    KRB_AP_ERR_MUT_FAIL = 46,
    /// Generic error.
    KRB_ERR_GENERIC = 60,
}

impl fmt::Debug for KrbErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "KrbErrorCode({})", self.0),
        }
    }
}

impl fmt::Display for KrbErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl KrbErrorCode {
    /// The protocol error behind a library (com_err) code, if there is one.
    ///
    /// Codes in the krb5 error table map one to one; MIT's keytab and
    /// replay-cache codes map to what RFC 4120 calls the same condition.
    pub fn from_library_code(code: i32) -> Option<Self> {
        match code {
            sys::KRB5_RC_REPLAY => Some(Self::KRB_AP_ERR_REPEAT),
            sys::KRB5_KT_KVNONOTFOUND => Some(Self::KRB_AP_ERR_BADKEYVER),
            sys::KRB5_KT_NOTFOUND => Some(Self::KRB_AP_ERR_NOKEY),
            c if (sys::ERROR_TABLE_BASE_KRB5..sys::ERROR_TABLE_BASE_KRB5 + 128).contains(&c) => {
                u32::try_from(c - sys::ERROR_TABLE_BASE_KRB5).ok().map(Self)
            }
            _ => None,
        }
    }
}

/// A failed Kerberos operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op}: {message}")]
pub struct Error {
    /// What kinkd asked for (`"rd_req"`, `"get_init_creds_keytab"`, ...).
    pub op: &'static str,
    /// The library's com_err code, or `None` for a failure detected here.
    pub code: Option<i32>,
    /// The library's message (or ours).
    pub message: String,
}

impl Error {
    /// A failure detected in kinkd, not in the library.
    pub(crate) fn local(op: &'static str, message: impl Into<String>) -> Self {
        Self {
            op,
            code: None,
            message: message.into(),
        }
    }

    /// The RFC 4120 error number this failure corresponds to, if any.
    pub fn krb_error(&self) -> Option<KrbErrorCode> {
        self.code.and_then(KrbErrorCode::from_library_code)
    }

    /// The error number for a KRB-ERROR reply: [`Self::krb_error`], or
    /// `KRB_ERR_GENERIC` for failures RFC 4120 has no number for.
    pub fn krb_error_or_generic(&self) -> KrbErrorCode {
        self.krb_error().unwrap_or(KrbErrorCode::KRB_ERR_GENERIC)
    }
}

/// Result of a Kerberos operation.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_codes_map_to_protocol_numbers() {
        // KRB5KRB_AP_ERR_SKEW and friends from <krb5/krb5.h>.
        assert_eq!(
            KrbErrorCode::from_library_code(-1_765_328_347),
            Some(KrbErrorCode::KRB_AP_ERR_SKEW)
        );
        assert_eq!(
            KrbErrorCode::from_library_code(-1_765_328_350),
            Some(KrbErrorCode::KRB_AP_ERR_REPEAT)
        );
        assert_eq!(
            KrbErrorCode::from_library_code(-1_765_328_353),
            Some(KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY)
        );
        assert_eq!(
            KrbErrorCode::from_library_code(sys::KRB5_RC_REPLAY),
            Some(KrbErrorCode::KRB_AP_ERR_REPEAT)
        );
        assert_eq!(
            KrbErrorCode::from_library_code(sys::KRB5_KT_KVNONOTFOUND),
            Some(KrbErrorCode::KRB_AP_ERR_BADKEYVER)
        );
        // ENOMEM and ASN.1 codes have no protocol number.
        assert_eq!(KrbErrorCode::from_library_code(12), None);
        assert_eq!(KrbErrorCode::from_library_code(1_859_794_436), None);
        let e = Error::local("x", "y");
        assert_eq!(e.krb_error(), None);
        assert_eq!(e.krb_error_or_generic(), KrbErrorCode::KRB_ERR_GENERIC);
    }

    #[test]
    fn codes_print_their_names() {
        assert_eq!(
            KrbErrorCode::KRB_AP_ERR_SKEW.to_string(),
            "KRB_AP_ERR_SKEW(37)"
        );
        assert_eq!(KrbErrorCode(99).to_string(), "KrbErrorCode(99)");
    }
}
