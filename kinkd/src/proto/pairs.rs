//! The SA pairs kinkd installed, and the KEYMAT that keys them.
//!
//! A pair is what one CREATE makes: our inbound SA (the SPI we chose)
//! and our outbound SA (the peer's SPI). RFC 4430 keys each SA from the
//! ticket session key with the Quick Mode formula (`keymat`), so both
//! ends derive the same keys for a given SPI without a Diffie-Hellman.

use std::time::Instant;

use libracoon::ipsec::{IpsecMode, Lifetime, SaDirection, SaId, SaSpec, Selector};

use super::config::{EspProposal, PeerConfig};
use super::keymat;
use crate::krb5::{Kerberos, SessionKey};

/// Which side of the CREATE we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Initiator,
    Responder,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Initiator => "initiator",
            Self::Responder => "responder",
        }
    }
}

/// Lifecycle of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairState {
    /// Both SAs installed.
    Established,
    /// Responder of a three-message CREATE: inbound installed, outbound
    /// waits for the ACK.
    WaitingAck,
    /// Outbound removed; inbound goes at the instant (packets in flight).
    Deleting(Instant),
}

/// One installed pair.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub(crate) peer: usize,
    pub(crate) role: Role,
    pub(crate) spi_in: u32,
    pub(crate) spi_out: u32,
    pub(crate) esp: String,
    pub(crate) state: PairState,
    /// A replacement CREATE was started for it (soft expiry).
    pub(crate) rekeying: bool,
    pub(crate) inbound: SaId,
    pub(crate) outbound: SaId,
    /// When it was made: an ACQUIRE for a pair older than
    /// [`super::OUT_OF_STEP_AGE`] means the kernel lost its SAs.
    pub(crate) created: Instant,
}

/// Everything both SAs of a pair are built from.
pub(crate) struct PairKeys<'a> {
    pub(crate) peer: &'a PeerConfig,
    pub(crate) key: &'a SessionKey,
    pub(crate) esp: EspProposal,
    pub(crate) mode: IpsecMode,
    pub(crate) lifetime: Lifetime,
    /// Our selector (src = our side), the negotiated one.
    pub(crate) selector: Selector,
    pub(crate) spi_in: u32,
    pub(crate) spi_out: u32,
    pub(crate) ni: &'a [u8],
    pub(crate) nr: Option<&'a [u8]>,
}

impl PairKeys<'_> {
    /// Our inbound SA: packets from the peer to our SPI.
    pub(crate) fn inbound(&self, krb: &dyn Kerberos) -> Result<SaSpec, String> {
        self.spec(krb, SaDirection::Inbound, self.spi_in)
    }

    /// Our outbound SA: packets to the peer's SPI.
    pub(crate) fn outbound(&self, krb: &dyn Kerberos) -> Result<SaSpec, String> {
        self.spec(krb, SaDirection::Outbound, self.spi_out)
    }

    /// Each SA is keyed with the SPI its receiver chose, so both ends
    /// derive the same keys for it.
    fn spec(&self, krb: &dyn Kerberos, direction: SaDirection, spi: u32) -> Result<SaSpec, String> {
        let (encr_len, auth_len) = keymat::key_lengths(&self.esp);
        let material = keymat::keymat(krb, self.key, spi, self.ni, self.nr, encr_len + auth_len)
            .map_err(|e| e.to_string())?;
        let params = keymat::PairParams {
            local: self.peer.local,
            remote: self.peer.address.ip(),
            spi_in: self.spi_in,
            spi_out: self.spi_out,
            esp: &self.esp,
            mode: self.mode,
            selector: &self.selector,
            reqid: self.peer.reqid,
            lifetime: &self.lifetime,
        };
        keymat::sa_spec(&params, direction, &material).map_err(|e| e.to_string())
    }
}
