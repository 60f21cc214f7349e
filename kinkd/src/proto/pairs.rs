//! The SA pairs kinkd installed, and the KEYMAT that keys them.
//!
//! A pair is what one CREATE makes: our inbound SA (the SPI we chose)
//! and our outbound SA (the peer's SPI). RFC 4430 keys each SA from the
//! ticket session key with the Quick Mode formula (`keymat`), so both
//! ends derive the same keys for a given SPI without a Diffie-Hellman.

use std::net::IpAddr;
use std::time::Instant;

use libracoon::ipsec::{IpsecMode, Lifetime, SaDirection, SaId, SaSpec, Selector};

use super::config::{EspProposal, PeerConfig};
use super::keymat;
use crate::krb5::{self, Kerberos, SessionKey};

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
    pub(crate) fn inbound(&self, krb: &dyn Kerberos) -> krb5::Result<SaSpec> {
        let mirrored = Selector {
            src: self.selector.dst,
            dst: self.selector.src,
            proto: self.selector.proto,
            src_port: self.selector.dst_port,
            dst_port: self.selector.src_port,
        };
        self.spec(
            krb,
            SaDirection::Inbound,
            SaId {
                dst: self.peer.local,
                spi: self.spi_in,
            },
            self.peer.address.ip(),
            mirrored,
        )
    }

    /// Our outbound SA: packets to the peer's SPI.
    pub(crate) fn outbound(&self, krb: &dyn Kerberos) -> krb5::Result<SaSpec> {
        self.spec(
            krb,
            SaDirection::Outbound,
            SaId {
                dst: self.peer.address.ip(),
                spi: self.spi_out,
            },
            self.peer.local,
            self.selector.clone(),
        )
    }

    fn spec(
        &self,
        krb: &dyn Kerberos,
        direction: SaDirection,
        id: SaId,
        src: IpAddr,
        selector: Selector,
    ) -> krb5::Result<SaSpec> {
        let (encr_len, auth_len) = keymat::key_lengths(&self.esp);
        let mut material = keymat::keymat(
            krb,
            self.key,
            id.spi,
            self.ni,
            self.nr,
            encr_len + auth_len,
        )?;
        let auth_key = zeroize::Zeroizing::new(material.split_off(encr_len));
        Ok(SaSpec {
            id,
            src,
            direction,
            mode: self.mode,
            encr: self.esp.encr,
            encr_key: zeroize::Zeroizing::new(std::mem::take(&mut *material)),
            auth: self.esp.auth,
            auth_key,
            encap: None,
            selectors: vec![selector],
            reqid: self.peer.reqid,
            esn: false,
            replay_window: 0,
            lifetime: self.lifetime,
        })
    }
}
