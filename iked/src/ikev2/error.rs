//! Why an IKE SA or an exchange failed, and what each failure costs.
//!
//! Every failure goes through [`Error::notify`] to pick the notify the peer
//! gets (RFC 7296 §2.21) and through its `Display` for the operator's log
//! line, which says what to fix.

use crate::ikev2::wire::{DecodeError, NotifyType};

/// A failure of an IKE SA or one of its exchanges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message did not parse.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// The SK payload's integrity check failed or it did not decrypt.
    #[error("integrity check of an encrypted payload failed (wrong keys or tampered message)")]
    Integrity,
    /// No proposal of the peer matched our configuration.
    #[error("no proposal chosen: {0}; make the algorithm lists of both peers overlap")]
    NoProposalChosen(&'static str),
    /// The peer's KE payload uses a group we accept but did not choose.
    #[error("peer sent a KE payload for DH group {got}, but group {want} was chosen")]
    InvalidKe {
        /// Group in the peer's KE payload.
        got: u16,
        /// Group we want.
        want: u16,
    },
    /// The peer's AUTH payload did not verify, or its identity is not the one configured.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(&'static str),
    /// The peer rejected our authentication.
    #[error(
        "peer refused our authentication (AUTHENTICATION_FAILED): check that both sides use the same pre-shared key and IDs"
    )]
    AuthenticationRejected,
    /// The peer refused our proposals.
    #[error("peer sent NO_PROPOSAL_CHOSEN: the algorithm lists of both peers do not overlap")]
    ProposalRejected,
    /// Traffic selectors do not overlap the configured ones.
    #[error("traffic selectors unacceptable: {0}")]
    TsUnacceptable(&'static str),
    /// The peer refused our traffic selectors.
    #[error("peer sent TS_UNACCEPTABLE: the selectors of both peers do not overlap")]
    TsRejected,
    /// A CREATE_CHILD_SA request we do not serve (IKE SA rekeying, extra
    /// CHILD SAs): the peer gets NO_ADDITIONAL_SAS.
    #[error("refused a CREATE_CHILD_SA request: {0}")]
    NoAdditionalSas(&'static str),
    /// A rekey names a CHILD SA we do not have.
    #[error("peer asked to rekey a CHILD SA we do not have")]
    ChildSaNotFound,
    /// The peer sent an error notify we do not handle specifically.
    #[error("peer sent error notify {0}")]
    PeerError(NotifyType),
    /// A required payload was missing or a payload was where it must not be.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(&'static str),
    /// A responder's half-open SA got no valid IKE_AUTH in time.
    #[error("half-open SA expired: no valid IKE_AUTH within 30 s")]
    HalfOpenTimeout,
    /// The peer stopped answering.
    #[error("no response after {0} retransmissions; peer unreachable or dead")]
    RetransmitsExhausted(u32),
    /// The peer deleted the SA.
    #[error("deleted by peer")]
    DeletedByPeer,
    /// Deleted on request.
    #[error("closed locally")]
    LocallyClosed,
    /// A rekey or delete was asked for an IKE SA we do not have.
    #[error("no IKE SA with that SPI")]
    NoSuchSa,
    /// A local request cannot be served in the SA's current state.
    #[error("cannot do that now: {0}")]
    NotReady(&'static str),
    /// A peer's request collides with an exchange of ours (RFC 7296
    /// §2.25): it gets TEMPORARY_FAILURE and retries later.
    #[error("refused a request that collides with our own exchange: {0}")]
    Collision(&'static str),
    /// The peer refused our rekey of a CHILD SA or of the IKE SA; the SA
    /// stays until its hard lifetime.
    #[error("peer refused our rekey with {0}")]
    RekeyRefused(NotifyType),
    /// A local failure (random source, crypto backend).
    #[error("internal failure: {0}")]
    Internal(&'static str),
}

impl Error {
    /// The notify the peer should receive for this failure, if any.
    ///
    /// Failures the peer caused by an unauthenticated message map to `None`
    /// where answering would let anyone tear down state (RFC 7296 §2.21).
    pub fn notify(&self) -> Option<NotifyType> {
        match self {
            Self::Decode(e) => Some(NotifyType::from(*e)),
            Self::NoProposalChosen(_) => Some(NotifyType::NoProposalChosen),
            Self::InvalidKe { .. } => Some(NotifyType::InvalidKePayload),
            Self::AuthenticationFailed(_) => Some(NotifyType::AuthenticationFailed),
            Self::TsUnacceptable(_) => Some(NotifyType::TsUnacceptable),
            Self::NoAdditionalSas(_) => Some(NotifyType::NoAdditionalSas),
            Self::ChildSaNotFound => Some(NotifyType::ChildSaNotFound),
            Self::PeerMisbehaved(_) => Some(NotifyType::InvalidSyntax),
            Self::Collision(_) => Some(NotifyType::TemporaryFailure),
            _ => None,
        }
    }
}

impl From<libracoon::crypto::CryptoError> for Error {
    fn from(e: libracoon::crypto::CryptoError) -> Self {
        match e {
            libracoon::crypto::CryptoError::Integrity => Self::Integrity,
            libracoon::crypto::CryptoError::PeerPublic => {
                Self::PeerMisbehaved("invalid Diffie-Hellman public value")
            }
            _ => Self::Internal("crypto backend failure"),
        }
    }
}
