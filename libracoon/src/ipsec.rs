//! The IPsec vocabulary every daemon shares: SAs, policies, selectors and
//! kernel events, as they cross pfkey's `Kernel` trait and, between iked or
//! kinkd and spmd, the control protocol ([`crate::ctl`]).
//!
//! They live here rather than in pfkey so the control protocol can carry
//! them typed; pfkey re-exports them.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Identifies one installed SA: RFC 4301 looks SAs up by (destination, SPI,
/// protocol); racoon3 only installs ESP, so protocol is implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SaId {
    /// Outer destination address.
    pub dst: IpAddr,
    /// Security Parameter Index, host byte order.
    pub spi: u32,
}

/// Whether an SA protects packets we send or packets we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaDirection {
    /// Packets arriving from the peer.
    Inbound,
    /// Packets leaving towards the peer.
    Outbound,
}

/// RFC 4301 mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpsecMode {
    /// Inner packet carried whole, between gateways.
    Tunnel,
    /// Only the payload protected, between hosts.
    Transport,
}

/// ESP encryption transform, by IANA number and key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspEncr {
    /// IKEv2 transform ID (12 AES-CBC, 20 AES-GCM-16, 28 ChaCha20-Poly1305).
    pub id: u16,
    /// Key size in bits, without salt.
    pub key_bits: u16,
}

/// ESP integrity transform, by IANA number; absent for AEAD ciphers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspAuth {
    /// IKEv2 integrity transform ID (2, 12, 13, 14).
    pub id: u16,
}

/// RFC 3948 UDP encapsulation ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpEncap {
    /// Source port of encapsulated packets.
    pub sport: u16,
    /// Destination port of encapsulated packets.
    pub dport: u16,
}

/// Traffic the SA protects, as a pair of address ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// Source range start and end (inclusive).
    pub src: (IpAddr, IpAddr),
    /// Destination range start and end (inclusive).
    pub dst: (IpAddr, IpAddr),
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Source port (TCP, UDP, SCTP), 0 for any.
    #[serde(default)]
    pub src_port: u16,
    /// Destination port, 0 for any.
    #[serde(default)]
    pub dst_port: u16,
}

impl Selector {
    /// All traffic between two address ranges, any protocol and port.
    pub fn ranges(src: (IpAddr, IpAddr), dst: (IpAddr, IpAddr)) -> Self {
        Self {
            src,
            dst,
            proto: 0,
            src_port: 0,
            dst_port: 0,
        }
    }
}

/// Everything a backend needs to install one unidirectional ESP SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaSpec {
    /// Which SA this is.
    pub id: SaId,
    /// Outer source address.
    pub src: IpAddr,
    /// Inbound or outbound.
    pub direction: SaDirection,
    /// Tunnel or transport.
    pub mode: IpsecMode,
    /// Cipher.
    pub encr: EspEncr,
    /// Cipher key, with the 4-byte salt appended for AEAD ciphers.
    #[serde(with = "hex_key")]
    pub encr_key: Zeroizing<Vec<u8>>,
    /// Integrity algorithm, absent for AEAD.
    pub auth: Option<EspAuth>,
    /// Integrity key (empty for AEAD).
    #[serde(with = "hex_key")]
    pub auth_key: Zeroizing<Vec<u8>>,
    /// UDP encapsulation, when a NAT was detected.
    pub encap: Option<UdpEncap>,
    /// Traffic selectors negotiated for this SA, one entry per pair.
    pub selectors: Vec<Selector>,
    /// Request ID tying both directions and the policy together.
    pub reqid: u32,
    /// Extended (64-bit) sequence numbers, as negotiated (RFC 4303 §2.2.1).
    #[serde(default)]
    pub esn: bool,
    /// Anti-replay window in packets for inbound SAs; 0 takes the
    /// backend's default (the userspace datapath's is 1024).
    #[serde(default)]
    pub replay_window: u32,
    /// Soft and hard limits; the soft one raises [`KernelEvent::Expire`]
    /// so the key exchange rekeys before the hard one removes the SA.
    #[serde(default)]
    pub lifetime: Lifetime,
}

/// Soft and hard limits of one SA (RFC 4301 §4.4.2.1); `None` means no
/// limit. Times count from installation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetime {
    /// Soft limit on inner bytes.
    pub soft_bytes: Option<u64>,
    /// Hard limit on inner bytes.
    pub hard_bytes: Option<u64>,
    /// Soft limit on packets.
    pub soft_packets: Option<u64>,
    /// Hard limit on packets.
    pub hard_packets: Option<u64>,
    /// Soft limit on time since installation.
    pub soft_time: Option<Duration>,
    /// Hard limit on time since installation.
    pub hard_time: Option<Duration>,
}

/// What a backend reports about one installed SA: no keys, but the
/// counters racoonctl shows and lifetimes are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaInfo {
    /// Which SA.
    pub id: SaId,
    /// Outer source address.
    pub src: IpAddr,
    /// Inbound or outbound.
    pub direction: SaDirection,
    /// Tunnel or transport.
    pub mode: IpsecMode,
    /// Request ID.
    pub reqid: u32,
    /// UDP encapsulation, if any.
    pub encap: Option<UdpEncap>,
    /// Bytes and packets protected so far.
    pub counters: Counters,
}

/// What a policy does with the packets its selector matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyAction {
    /// Protect with the SA of this request ID; with none installed, raise
    /// an ACQUIRE and drop the packet (no queueing).
    Protect {
        /// Ties the policy to the SAs a key exchange installs.
        reqid: u32,
        /// Tunnel or transport.
        mode: IpsecMode,
    },
    /// Let the packets pass unprotected.
    Bypass,
    /// Drop them.
    Discard,
}

/// One security policy (RFC 4301 §4.4.1): a selector, a direction, an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Traffic the policy applies to.
    pub selector: Selector,
    /// Inbound or outbound traffic.
    pub direction: SaDirection,
    /// What to do with it.
    pub action: PolicyAction,
    /// Outer addresses for tunnel mode, as (local, remote) in both
    /// directions: an inbound policy's packets come from `remote`.
    pub tunnel: Option<(IpAddr, IpAddr)>,
}

/// What a backend tells the key-exchange daemons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KernelEvent {
    /// Outbound traffic matched a `Protect` policy that has no SA yet:
    /// negotiate one (RFC 2367 SADB_ACQUIRE, XFRM_MSG_ACQUIRE). Raised once
    /// per policy until an SA with its request ID is installed, or again
    /// after a few seconds if none is.
    Acquire {
        /// The policy's request ID.
        reqid: u32,
        /// Source of the packet that triggered it.
        src: IpAddr,
        /// Its destination.
        dst: IpAddr,
        /// Its IP protocol.
        proto: u8,
    },
    /// An SA reached a lifetime limit: soft means renegotiate now, hard
    /// means it is already gone.
    Expire {
        /// Which SA.
        id: SaId,
        /// Hard (removed) or soft (warning).
        hard: bool,
    },
    /// A policy's tunnel endpoints moved (RFC 2367 KAME SADB_X_MIGRATE,
    /// XFRM_MSG_MIGRATE, e.g. from a Mobile IPv6 daemon): SAs and IKE
    /// traffic for it should follow.
    Migrate {
        /// The policy that moved.
        selector: Selector,
        /// Its direction.
        direction: SaDirection,
        /// Old tunnel endpoints (local, remote).
        old: (IpAddr, IpAddr),
        /// New tunnel endpoints (local, remote).
        new: (IpAddr, IpAddr),
    },
    /// The backend lost every SA it held (spmd, which hosts the userspace
    /// datapath, restarted): key exchanges must forget their CHILD SAs and
    /// renegotiate on demand.
    Reset,
}

/// Bytes and packets an SA has protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Payload bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

/// Keys cross the control socket as hex strings, and are zeroized on both
/// ends.
mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(
        key: &Zeroizing<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(hex::encode(key.as_slice()));
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        hex::decode(text.as_bytes())
            .map(Zeroizing::new)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sa_spec_survives_json_with_its_keys_in_hex() {
        let spec = SaSpec {
            id: SaId {
                dst: "192.0.2.2".parse().unwrap(),
                spi: 0x1234_5678,
            },
            src: "192.0.2.1".parse().unwrap(),
            direction: SaDirection::Outbound,
            mode: IpsecMode::Tunnel,
            encr: EspEncr {
                id: 20,
                key_bits: 128,
            },
            encr_key: Zeroizing::new(vec![0xab; 20]),
            auth: None,
            auth_key: Zeroizing::new(Vec::new()),
            encap: Some(UdpEncap {
                sport: 4500,
                dport: 4500,
            }),
            selectors: vec![Selector::ranges(
                (
                    "198.51.100.0".parse().unwrap(),
                    "198.51.100.255".parse().unwrap(),
                ),
                (
                    "203.0.113.0".parse().unwrap(),
                    "203.0.113.255".parse().unwrap(),
                ),
            )],
            reqid: 7,
            esn: true,
            replay_window: 64,
            lifetime: Lifetime {
                soft_time: Some(Duration::from_secs(50)),
                ..Lifetime::default()
            },
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.contains(&"ab".repeat(20)), "{json}");
        let back: SaSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.encr_key.as_slice(), spec.encr_key.as_slice());
        assert_eq!(
            (back.id, back.esn, back.lifetime),
            (spec.id, true, spec.lifetime)
        );
        assert_eq!(back.selectors, spec.selectors);
    }

    #[test]
    fn a_bad_hex_key_is_refused_not_truncated() {
        let err = serde_json::from_str::<SaSpec>(r#"{"encr_key":"zz"}"#).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
