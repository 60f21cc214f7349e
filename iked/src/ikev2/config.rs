//! What the protocol core needs to know about a peer, independent of
//! racoon2.conf syntax (the daemon translates; tests build these directly).

use std::net::IpAddr;
use std::time::Duration;

use libracoon::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use zeroize::Zeroizing;

use crate::ikev2::ts::TsRange;
use crate::ikev2::wire::IdType;

/// An IKE identity (RFC 7296 §3.5) as sent in IDi/IDr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// ID type.
    pub id_type: IdType,
    /// ID data in wire form.
    pub data: Vec<u8>,
}

impl Identity {
    /// An address identity (ID_IPV4_ADDR or ID_IPV6_ADDR).
    pub fn addr(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Self {
                id_type: IdType::Ipv4Addr,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => Self {
                id_type: IdType::Ipv6Addr,
                data: a.octets().to_vec(),
            },
        }
    }

    /// An ID_FQDN identity.
    pub fn fqdn(name: &str) -> Self {
        Self {
            id_type: IdType::Fqdn,
            data: name.as_bytes().to_vec(),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id_type {
            IdType::Ipv4Addr | IdType::Ipv6Addr => {
                let addr = match self.data.len() {
                    4 => <[u8; 4]>::try_from(&self.data[..]).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(&self.data[..]).ok().map(IpAddr::from),
                    _ => None,
                };
                match addr {
                    Some(a) => write!(f, "{a}"),
                    None => write!(f, "<bad address id>"),
                }
            }
            IdType::Fqdn | IdType::Rfc822Addr => f.write_str(&String::from_utf8_lossy(&self.data)),
            _ => {
                for b in &self.data {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// IKE SA algorithm lists, in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeAlgorithms {
    /// Ciphers.
    pub encr: Vec<EncrAlg>,
    /// PRFs.
    pub prf: Vec<PrfAlg>,
    /// Integrity algorithms (ignored for AEAD ciphers).
    pub integ: Vec<IntegAlg>,
    /// DH groups; the first is used for the initial KE payload.
    pub dh: Vec<DhGroup>,
}

/// ESP algorithm lists, in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspAlgorithms {
    /// Ciphers.
    pub encr: Vec<EncrAlg>,
    /// Integrity algorithms (ignored for AEAD ciphers).
    pub integ: Vec<IntegAlg>,
}

/// RFC 4301 mode of a CHILD SA.
pub use pfkey::IpsecMode as Mode;

/// One CHILD SA the peer configuration allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildConfig {
    /// Our side's traffic (TSi when we initiate).
    pub local_ts: Vec<TsRange>,
    /// The peer's side (TSr when we initiate).
    pub remote_ts: Vec<TsRange>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// ESP algorithms.
    pub esp: EspAlgorithms,
    /// Request ID that ties SAs to policy.
    pub reqid: u32,
    /// Diffie-Hellman group for KEi when we rekey this CHILD SA (PFS,
    /// racoon2's `need_pfs`); `None` rekeys without a new key exchange.
    pub pfs: Option<DhGroup>,
    /// Hard limits of each CHILD SA; the soft limits (when we rekey) are
    /// drawn below them, see [`crate::ikev2::lifetime`].
    pub lifetime: ChildLifetime,
}

/// Hard limits of a CHILD SA as configured (`ipsec_sa_lifetime_time`,
/// `ipsec_sa_lifetime_byte`); `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildLifetime {
    /// Time since installation.
    pub time: Option<Duration>,
    /// Bytes protected by one SA (one direction).
    pub bytes: Option<u64>,
}

/// Retransmission schedule: `base * 2^n` for `tries` attempts (RFC 7296 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// First timeout.
    pub base: Duration,
    /// How many retransmissions before giving up.
    pub tries: u32,
}

/// No single wait between retransmissions exceeds this, whatever the
/// configuration says, so the arithmetic cannot overflow and a peer that
/// comes back is noticed within minutes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl Retransmit {
    /// The wait after the `sent`-th transmission: `base * 2^(sent)`, capped.
    pub fn backoff(&self, sent: u32) -> Duration {
        self.base
            .checked_mul(2u32.saturating_pow(sent))
            .map_or(MAX_BACKOFF, |d| d.min(MAX_BACKOFF))
    }
}

impl Default for Retransmit {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            tries: 5,
        }
    }
}

/// Everything the core needs about one peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Name for logs (racoon2's remote block name).
    pub name: String,
    /// Our identity.
    pub local_id: Identity,
    /// Expected peer identity; `None` accepts any identity that authenticates.
    pub remote_id: Option<Identity>,
    /// The peer's address, if fixed.
    pub remote_addr: Option<IpAddr>,
    /// Shared secret for PSK authentication.
    pub psk: Zeroizing<Vec<u8>>,
    /// IKE SA algorithms.
    pub ike: IkeAlgorithms,
    /// CHILD SA to create with IKE_AUTH.
    pub child: ChildConfig,
    /// Hard lifetime of the IKE SA (`kmp_sa_lifetime_time`): we rekey it
    /// somewhat earlier and delete it if that has not happened by then.
    pub ike_lifetime: Option<Duration>,
    /// Send a liveness check after this much idle time.
    pub dpd_delay: Option<Duration>,
    /// Retransmission schedule.
    pub retransmit: Retransmit,
    /// Demand a COOKIE from every IKE_SA_INIT of this peer, not only under
    /// load (racoon2's `cookie_required`).
    pub cookie_required: bool,
    /// Announce a NAT that is not there (`force_udp_encap`, strongSwan's
    /// `encap = yes`): a NAT_DETECTION_SOURCE_IP that cannot match, so both
    /// ends float to port 4500 and ESP is UDP-encapsulated.
    pub force_udp_encap: bool,
    /// Nonce length in bytes (RFC 7296 §2.10: at least half the PRF key size, 16..=256).
    pub nonce_len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped_without_overflow() {
        let r = Retransmit {
            base: Duration::from_secs(2),
            tries: 5,
        };
        assert_eq!(r.backoff(0), Duration::from_secs(2));
        assert_eq!(r.backoff(3), Duration::from_secs(16));
        assert_eq!(r.backoff(40), MAX_BACKOFF);
        let huge = Retransmit {
            base: Duration::MAX,
            tries: 5,
        };
        assert_eq!(huge.backoff(0), MAX_BACKOFF);
        assert_eq!(huge.backoff(31), MAX_BACKOFF);
    }
}
