//! The values that cross the [`crate::Kernel`] boundary.

use std::net::IpAddr;

use zeroize::Zeroizing;

/// Identifies one installed SA: RFC 4301 looks SAs up by (destination, SPI,
/// protocol); racoon3 only installs ESP, so protocol is implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaId {
    /// Outer destination address.
    pub dst: IpAddr,
    /// Security Parameter Index, host byte order.
    pub spi: u32,
}

/// Whether an SA protects packets we send or packets we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaDirection {
    /// Packets arriving from the peer.
    Inbound,
    /// Packets leaving towards the peer.
    Outbound,
}

/// RFC 4301 mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpsecMode {
    /// Inner packet carried whole, between gateways.
    Tunnel,
    /// Only the payload protected, between hosts.
    Transport,
}

/// ESP encryption transform, by IANA number and key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspEncr {
    /// IKEv2 transform ID (12 AES-CBC, 20 AES-GCM-16, 28 ChaCha20-Poly1305).
    pub id: u16,
    /// Key size in bits, without salt.
    pub key_bits: u16,
}

/// ESP integrity transform, by IANA number; absent for AEAD ciphers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspAuth {
    /// IKEv2 integrity transform ID (2, 12, 13, 14).
    pub id: u16,
}

/// RFC 3948 UDP encapsulation ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    /// Source port of encapsulated packets.
    pub sport: u16,
    /// Destination port of encapsulated packets.
    pub dport: u16,
}

/// Traffic the SA protects, as a pair of address ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Source range start and end (inclusive).
    pub src: (IpAddr, IpAddr),
    /// Destination range start and end (inclusive).
    pub dst: (IpAddr, IpAddr),
    /// IP protocol, 0 for any.
    pub proto: u8,
}

/// Everything a backend needs to install one unidirectional ESP SA.
#[derive(Debug, Clone)]
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
    pub encr_key: Zeroizing<Vec<u8>>,
    /// Integrity algorithm, absent for AEAD.
    pub auth: Option<EspAuth>,
    /// Integrity key (empty for AEAD).
    pub auth_key: Zeroizing<Vec<u8>>,
    /// UDP encapsulation, when a NAT was detected.
    pub encap: Option<UdpEncap>,
    /// Traffic selectors negotiated for this SA, one entry per pair.
    pub selectors: Vec<Selector>,
    /// Request ID tying both directions and the policy together.
    pub reqid: u32,
}

/// What a policy does with the packets its selector matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Traffic the policy applies to.
    pub selector: Selector,
    /// Inbound or outbound traffic.
    pub direction: SaDirection,
    /// What to do with it.
    pub action: PolicyAction,
    /// Outer addresses (local, remote) for tunnel mode.
    pub tunnel: Option<(IpAddr, IpAddr)>,
}

/// What a backend tells the key-exchange daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// Bytes and packets an SA has protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Payload bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}
