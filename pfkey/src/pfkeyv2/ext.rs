//! PF_KEY extension bodies (RFC 2367 §2.3 and the KAME/Linux `SADB_X_*`
//! extensions of `linux/pfkeyv2.h`): typed values with `parse` and `emit`.
//!
//! Each `parse` gets the extension's body (after the 4-byte
//! `sadb_ext_len`/`sadb_ext_type` header, padding included) and each
//! `emit` writes the body only: [`super::msg`] frames, pads and measures.

use std::fmt;
use std::net::SocketAddr;

use zeroize::Zeroizing;

use super::sockaddr;
use super::wire::{DecodeError, EncodeError, Reader, open_enum, put_u16, put_u32, put_u64};

open_enum! {
    /// `sadb_ext_type`.
    pub enum ExtType(u16) {
        /// `SADB_EXT_SA`.
        Sa = 1,
        /// `SADB_EXT_LIFETIME_CURRENT`.
        LifetimeCurrent = 2,
        /// `SADB_EXT_LIFETIME_HARD`.
        LifetimeHard = 3,
        /// `SADB_EXT_LIFETIME_SOFT`.
        LifetimeSoft = 4,
        /// `SADB_EXT_ADDRESS_SRC`.
        AddressSrc = 5,
        /// `SADB_EXT_ADDRESS_DST`.
        AddressDst = 6,
        /// `SADB_EXT_ADDRESS_PROXY`.
        AddressProxy = 7,
        /// `SADB_EXT_KEY_AUTH`.
        KeyAuth = 8,
        /// `SADB_EXT_KEY_ENCRYPT`.
        KeyEncrypt = 9,
        /// `SADB_EXT_PROPOSAL`.
        Proposal = 13,
        /// `SADB_EXT_SUPPORTED_AUTH`.
        SupportedAuth = 14,
        /// `SADB_EXT_SUPPORTED_ENCRYPT`.
        SupportedEncrypt = 15,
        /// `SADB_EXT_SPIRANGE`.
        SpiRange = 16,
        /// `SADB_X_EXT_POLICY`.
        Policy = 18,
        /// `SADB_X_EXT_SA2`.
        Sa2 = 19,
        /// `SADB_X_EXT_NAT_T_TYPE`.
        NatTType = 20,
        /// `SADB_X_EXT_NAT_T_SPORT`.
        NatTSport = 21,
        /// `SADB_X_EXT_NAT_T_DPORT`.
        NatTDport = 22,
        /// `SADB_X_EXT_NAT_T_OA`.
        NatTOa = 23,
        /// `SADB_X_EXT_KMADDRESS`.
        KmAddress = 25,
    }
}

open_enum! {
    /// `sadb_sa_state`.
    pub enum SaState(u8) {
        /// `SADB_SASTATE_LARVAL`: reserved by GETSPI or ACQUIRE, no keys yet.
        Larval = 0,
        /// `SADB_SASTATE_MATURE`.
        Mature = 1,
        /// `SADB_SASTATE_DYING`: past its soft lifetime.
        Dying = 2,
        /// `SADB_SASTATE_DEAD`.
        Dead = 3,
    }
}

open_enum! {
    /// `sadb_x_sa2_mode`, `sadb_x_ipsecrequest_mode` (`linux/ipsec.h`).
    pub enum Mode(u8) {
        /// `IPSEC_MODE_ANY`.
        Any = 0,
        /// `IPSEC_MODE_TRANSPORT`.
        Transport = 1,
        /// `IPSEC_MODE_TUNNEL`.
        Tunnel = 2,
        /// `IPSEC_MODE_BEET`.
        Beet = 3,
    }
}

open_enum! {
    /// `sadb_x_policy_type`.
    pub enum PolicyType(u16) {
        /// `IPSEC_POLICY_DISCARD`.
        Discard = 0,
        /// `IPSEC_POLICY_NONE`: pass in the clear.
        None = 1,
        /// `IPSEC_POLICY_IPSEC`: protect, as the ipsecrequests say.
        Ipsec = 2,
        /// `IPSEC_POLICY_ENTRUST`.
        Entrust = 3,
        /// `IPSEC_POLICY_BYPASS`.
        Bypass = 4,
    }
}

open_enum! {
    /// `sadb_x_policy_dir`.
    pub enum PolicyDir(u8) {
        /// `IPSEC_DIR_ANY`.
        Any = 0,
        /// `IPSEC_DIR_INBOUND`.
        Inbound = 1,
        /// `IPSEC_DIR_OUTBOUND`.
        Outbound = 2,
        /// `IPSEC_DIR_FWD` (Linux only): forwarded traffic.
        Fwd = 3,
    }
}

open_enum! {
    /// `sadb_x_ipsecrequest_level`.
    pub enum Level(u8) {
        /// `IPSEC_LEVEL_DEFAULT`.
        Default = 0,
        /// `IPSEC_LEVEL_USE`: protect if an SA exists.
        Use = 1,
        /// `IPSEC_LEVEL_REQUIRE`: any SA with the template's addresses.
        Require = 2,
        /// `IPSEC_LEVEL_UNIQUE`: only SAs with the request's reqid.
        Unique = 3,
    }
}

/// Which lifetime extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeKind {
    /// What the SA has used so far.
    Current,
    /// The limit that removes it.
    Hard,
    /// The limit that warns.
    Soft,
}

/// Which address extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// `SADB_EXT_ADDRESS_SRC`.
    Src,
    /// `SADB_EXT_ADDRESS_DST`.
    Dst,
    /// `SADB_EXT_ADDRESS_PROXY`.
    Proxy,
    /// `SADB_X_EXT_NAT_T_OA`: original address before NAT.
    NatTOa,
}

/// Which key extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `SADB_EXT_KEY_AUTH`.
    Auth,
    /// `SADB_EXT_KEY_ENCRYPT`.
    Encrypt,
}

/// `struct sadb_sa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaExt {
    /// SPI (network order on the wire, host order here).
    pub spi: u32,
    /// Replay window in packets (Linux caps it at 32).
    pub replay: u8,
    /// `sadb_sa_state`, as sent.
    pub state: u8,
    /// `SADB_AALG_*`.
    pub auth: u8,
    /// `SADB_EALG_*`.
    pub encrypt: u8,
    /// `SADB_SAFLAGS_*`.
    pub flags: u32,
}

/// `struct sadb_lifetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifetimeExt {
    /// Allocations; Linux uses it as the packet count or limit.
    pub allocations: u32,
    /// Bytes.
    pub bytes: u64,
    /// Seconds since creation (limits) or creation time (current).
    pub addtime: u64,
    /// Seconds since first use (limits) or first use time (current).
    pub usetime: u64,
}

/// `struct sadb_address` and its `sockaddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressExt {
    /// Upper-layer protocol, `IPSEC_ULPROTO_ANY` (255) for any.
    pub proto: u8,
    /// Prefix length of a selector; the full length for an SA address.
    pub prefixlen: u8,
    /// Address, and port for selectors.
    pub addr: SocketAddr,
}

/// `struct sadb_key` and its bits.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyExt {
    /// Key length in bits.
    pub bits: u16,
    /// `ceil(bits / 8)` bytes of key.
    pub key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for KeyExt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyExt {{ bits: {}, key: <redacted> }}", self.bits)
    }
}

/// `struct sadb_spirange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRange {
    /// Smallest acceptable SPI.
    pub min: u32,
    /// Largest acceptable SPI.
    pub max: u32,
}

/// `struct sadb_comb`: one algorithm combination of an ACQUIRE's proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Comb {
    /// `SADB_AALG_*`.
    pub auth: u8,
    /// `SADB_EALG_*`.
    pub encrypt: u8,
    /// `sadb_comb_flags`.
    pub flags: u16,
    /// Integrity key bits, least.
    pub auth_minbits: u16,
    /// Integrity key bits, most.
    pub auth_maxbits: u16,
    /// Cipher key bits, least.
    pub encrypt_minbits: u16,
    /// Cipher key bits, most.
    pub encrypt_maxbits: u16,
    /// Soft allocation limit.
    pub soft_allocations: u32,
    /// Hard allocation limit.
    pub hard_allocations: u32,
    /// Soft byte limit.
    pub soft_bytes: u64,
    /// Hard byte limit.
    pub hard_bytes: u64,
    /// Soft limit, seconds after creation.
    pub soft_addtime: u64,
    /// Hard limit, seconds after creation.
    pub hard_addtime: u64,
    /// Soft limit, seconds after first use.
    pub soft_usetime: u64,
    /// Hard limit, seconds after first use.
    pub hard_usetime: u64,
}

/// `struct sadb_prop` and its combinations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proposal {
    /// Replay window the kernel suggests.
    pub replay: u8,
    /// Acceptable combinations, most preferred first.
    pub combs: Vec<Comb>,
}

/// `struct sadb_alg`: one algorithm a REGISTER reply lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Alg {
    /// `SADB_AALG_*` or `SADB_EALG_*`.
    pub id: u8,
    /// IV length in bytes.
    pub ivlen: u8,
    /// Key bits, least.
    pub minbits: u16,
    /// Key bits, most.
    pub maxbits: u16,
}

/// `struct sadb_x_ipsecrequest`: one template of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpsecRequest {
    /// IP protocol of the SA: 50 for ESP.
    pub proto: u16,
    /// Transport or tunnel.
    pub mode: Mode,
    /// How strictly SAs must match.
    pub level: Level,
    /// Request ID, used with [`Level::Unique`].
    pub reqid: u32,
    /// Tunnel endpoints (source, destination), tunnel mode only.
    pub endpoints: Option<(SocketAddr, SocketAddr)>,
}

/// `struct sadb_x_policy` and its ipsecrequests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyExt {
    /// Discard, none (pass) or IPsec.
    pub policy_type: PolicyType,
    /// Direction.
    pub dir: PolicyDir,
    /// The kernel's policy index (ACQUIRE and dumps carry it).
    pub id: u32,
    /// Lower is preferred (Linux `xp->priority`).
    pub priority: u32,
    /// Templates, outermost last.
    pub requests: Vec<IpsecRequest>,
}

/// `struct sadb_x_sa2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sa2Ext {
    /// Transport or tunnel.
    pub mode: Mode,
    /// `sadb_x_sa2_sequence`.
    pub sequence: u32,
    /// Request ID.
    pub reqid: u32,
}

/// `struct sadb_x_kmaddress`: the addresses IKE uses after a MIGRATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmAddress {
    /// Our address.
    pub local: SocketAddr,
    /// The peer's.
    pub remote: SocketAddr,
}

/// One decoded extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// `SADB_EXT_SA`.
    Sa(SaExt),
    /// `SADB_EXT_LIFETIME_*`.
    Lifetime(LifetimeKind, LifetimeExt),
    /// `SADB_EXT_ADDRESS_*`, `SADB_X_EXT_NAT_T_OA`.
    Address(AddressKind, AddressExt),
    /// `SADB_EXT_KEY_*`.
    Key(KeyKind, KeyExt),
    /// `SADB_EXT_SPIRANGE`.
    SpiRange(SpiRange),
    /// `SADB_EXT_PROPOSAL`.
    Proposal(Proposal),
    /// `SADB_EXT_SUPPORTED_AUTH` (`false`) or `_ENCRYPT` (`true`).
    Supported {
        /// Encryption (`true`) or authentication (`false`) algorithms.
        encrypt: bool,
        /// The algorithms.
        algs: Vec<Alg>,
    },
    /// `SADB_X_EXT_POLICY`.
    Policy(PolicyExt),
    /// `SADB_X_EXT_SA2`.
    Sa2(Sa2Ext),
    /// `SADB_X_EXT_NAT_T_TYPE`: 2 is `UDP_ENCAP_ESPINUDP`.
    NatTType(u8),
    /// `SADB_X_EXT_NAT_T_SPORT` (`false`) or `_DPORT` (`true`), host order here.
    NatTPort {
        /// Destination (`true`) or source (`false`) port.
        dst: bool,
        /// The port.
        port: u16,
    },
    /// `SADB_X_EXT_KMADDRESS`.
    KmAddress(KmAddress),
    /// Any other type: kept as its body, skipped by the backend.
    Unknown(u16, Vec<u8>),
}

/// Size of `struct sadb_ipsecrequest` without addresses.
const IPSECREQUEST: usize = 16;
/// Size of `struct sadb_comb`.
const COMB: usize = 72;
/// Size of `struct sadb_alg`.
const ALG: usize = 8;

impl Extension {
    /// The `sadb_ext_type` this extension is sent as.
    pub fn ext_type(&self) -> ExtType {
        match self {
            Self::Sa(_) => ExtType::Sa,
            Self::Lifetime(LifetimeKind::Current, _) => ExtType::LifetimeCurrent,
            Self::Lifetime(LifetimeKind::Hard, _) => ExtType::LifetimeHard,
            Self::Lifetime(LifetimeKind::Soft, _) => ExtType::LifetimeSoft,
            Self::Address(AddressKind::Src, _) => ExtType::AddressSrc,
            Self::Address(AddressKind::Dst, _) => ExtType::AddressDst,
            Self::Address(AddressKind::Proxy, _) => ExtType::AddressProxy,
            Self::Address(AddressKind::NatTOa, _) => ExtType::NatTOa,
            Self::Key(KeyKind::Auth, _) => ExtType::KeyAuth,
            Self::Key(KeyKind::Encrypt, _) => ExtType::KeyEncrypt,
            Self::SpiRange(_) => ExtType::SpiRange,
            Self::Proposal(_) => ExtType::Proposal,
            Self::Supported { encrypt: false, .. } => ExtType::SupportedAuth,
            Self::Supported { encrypt: true, .. } => ExtType::SupportedEncrypt,
            Self::Policy(_) => ExtType::Policy,
            Self::Sa2(_) => ExtType::Sa2,
            Self::NatTType(_) => ExtType::NatTType,
            Self::NatTPort { dst: false, .. } => ExtType::NatTSport,
            Self::NatTPort { dst: true, .. } => ExtType::NatTDport,
            Self::KmAddress(_) => ExtType::KmAddress,
            Self::Unknown(t, _) => ExtType::from(*t),
        }
    }

    /// Decodes the body of an extension of type `ext_type`.
    pub fn parse(ext_type: u16, body: &[u8]) -> Result<Self, DecodeError> {
        let r = &mut Reader::new(body, "extension");
        Ok(match ExtType::from(ext_type) {
            ExtType::Sa => Self::Sa(parse_sa(r)?),
            ExtType::LifetimeCurrent => Self::Lifetime(LifetimeKind::Current, parse_lifetime(r)?),
            ExtType::LifetimeHard => Self::Lifetime(LifetimeKind::Hard, parse_lifetime(r)?),
            ExtType::LifetimeSoft => Self::Lifetime(LifetimeKind::Soft, parse_lifetime(r)?),
            ExtType::AddressSrc => Self::Address(AddressKind::Src, parse_address(r)?),
            ExtType::AddressDst => Self::Address(AddressKind::Dst, parse_address(r)?),
            ExtType::AddressProxy => Self::Address(AddressKind::Proxy, parse_address(r)?),
            ExtType::NatTOa => Self::Address(AddressKind::NatTOa, parse_address(r)?),
            ExtType::KeyAuth => Self::Key(KeyKind::Auth, parse_key(r)?),
            ExtType::KeyEncrypt => Self::Key(KeyKind::Encrypt, parse_key(r)?),
            ExtType::SpiRange => Self::SpiRange(parse_spirange(r)?),
            ExtType::Proposal => Self::Proposal(parse_proposal(r)?),
            ExtType::SupportedAuth => Self::Supported {
                encrypt: false,
                algs: parse_supported(r)?,
            },
            ExtType::SupportedEncrypt => Self::Supported {
                encrypt: true,
                algs: parse_supported(r)?,
            },
            ExtType::Policy => Self::Policy(parse_policy(r)?),
            ExtType::Sa2 => Self::Sa2(parse_sa2(r)?),
            ExtType::NatTType => Self::NatTType(r.u8()?),
            ExtType::NatTSport => Self::NatTPort {
                dst: false,
                port: r.be16()?,
            },
            ExtType::NatTDport => Self::NatTPort {
                dst: true,
                port: r.be16()?,
            },
            ExtType::KmAddress => {
                r.skip(4)?;
                let (local, remote) = sockaddr::parse_pair(r)?;
                Self::KmAddress(KmAddress { local, remote })
            }
            ExtType::Unknown(t) => Self::Unknown(t, body.to_vec()),
        })
    }

    /// Appends the body (unpadded; the caller pads to 8 bytes).
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Sa(sa) => emit_sa(sa, out),
            Self::Lifetime(_, lt) => emit_lifetime(lt, out),
            Self::Address(_, a) => emit_address(a, out),
            Self::Key(_, k) => emit_key(k, out)?,
            Self::SpiRange(s) => {
                put_u32(out, s.min);
                put_u32(out, s.max);
                put_u32(out, 0);
            }
            Self::Proposal(p) => emit_proposal(p, out),
            Self::Supported { algs, .. } => emit_supported(algs, out),
            Self::Policy(p) => emit_policy(p, out)?,
            Self::Sa2(s) => {
                out.extend_from_slice(&[s.mode.into(), 0, 0, 0]);
                put_u32(out, s.sequence);
                put_u32(out, s.reqid);
            }
            Self::NatTType(t) => out.extend_from_slice(&[*t, 0, 0, 0]),
            Self::NatTPort { port, .. } => {
                out.extend_from_slice(&port.to_be_bytes());
                put_u16(out, 0);
            }
            Self::KmAddress(k) => {
                put_u32(out, 0);
                sockaddr::emit(&k.local, out);
                sockaddr::emit(&k.remote, out);
            }
            Self::Unknown(_, body) => out.extend_from_slice(body),
        }
        Ok(())
    }
}

fn parse_sa(r: &mut Reader<'_>) -> Result<SaExt, DecodeError> {
    Ok(SaExt {
        spi: r.be32()?,
        replay: r.u8()?,
        state: r.u8()?,
        auth: r.u8()?,
        encrypt: r.u8()?,
        flags: r.u32()?,
    })
}

fn emit_sa(sa: &SaExt, out: &mut Vec<u8>) {
    out.extend_from_slice(&sa.spi.to_be_bytes());
    out.extend_from_slice(&[sa.replay, sa.state, sa.auth, sa.encrypt]);
    put_u32(out, sa.flags);
}

fn parse_sa2(r: &mut Reader<'_>) -> Result<Sa2Ext, DecodeError> {
    let mode = Mode::from(r.u8()?);
    r.skip(3)?;
    Ok(Sa2Ext {
        mode,
        sequence: r.u32()?,
        reqid: r.u32()?,
    })
}

fn parse_lifetime(r: &mut Reader<'_>) -> Result<LifetimeExt, DecodeError> {
    Ok(LifetimeExt {
        allocations: r.u32()?,
        bytes: r.u64()?,
        addtime: r.u64()?,
        usetime: r.u64()?,
    })
}

fn emit_lifetime(lt: &LifetimeExt, out: &mut Vec<u8>) {
    put_u32(out, lt.allocations);
    put_u64(out, lt.bytes);
    put_u64(out, lt.addtime);
    put_u64(out, lt.usetime);
}

fn parse_address(r: &mut Reader<'_>) -> Result<AddressExt, DecodeError> {
    let proto = r.u8()?;
    let prefixlen = r.u8()?;
    r.skip(2)?;
    let addr = sockaddr::parse(r)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefixlen > max {
        return Err(DecodeError::BadValue(
            "address prefix length",
            prefixlen.into(),
        ));
    }
    Ok(AddressExt {
        proto,
        prefixlen,
        addr,
    })
}

fn emit_address(a: &AddressExt, out: &mut Vec<u8>) {
    out.extend_from_slice(&[a.proto, a.prefixlen, 0, 0]);
    sockaddr::emit(&a.addr, out);
}

fn parse_key(r: &mut Reader<'_>) -> Result<KeyExt, DecodeError> {
    let bits = r.u16()?;
    r.skip(2)?;
    let key = r.bytes(usize::from(bits).div_ceil(8))?;
    Ok(KeyExt {
        bits,
        key: Zeroizing::new(key.to_vec()),
    })
}

fn emit_key(k: &KeyExt, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if k.key.len() != usize::from(k.bits).div_ceil(8) {
        return Err(EncodeError::TooLong("key (bits and bytes disagree)"));
    }
    put_u16(out, k.bits);
    put_u16(out, 0);
    out.extend_from_slice(&k.key);
    Ok(())
}

fn parse_spirange(r: &mut Reader<'_>) -> Result<SpiRange, DecodeError> {
    Ok(SpiRange {
        min: r.u32()?,
        max: r.u32()?,
    })
}

fn parse_proposal(r: &mut Reader<'_>) -> Result<Proposal, DecodeError> {
    let replay = r.u8()?;
    r.skip(3)?;
    let rest = r.rest();
    if !rest.len().is_multiple_of(COMB) {
        return Err(DecodeError::BadLength("proposal combinations", rest.len()));
    }
    let mut combs = Vec::with_capacity(rest.len() / COMB);
    for _ in 0..rest.len() / COMB {
        combs.push(parse_comb(r)?);
    }
    Ok(Proposal { replay, combs })
}

fn parse_comb(r: &mut Reader<'_>) -> Result<Comb, DecodeError> {
    let auth = r.u8()?;
    let encrypt = r.u8()?;
    let flags = r.u16()?;
    let auth_minbits = r.u16()?;
    let auth_maxbits = r.u16()?;
    let encrypt_minbits = r.u16()?;
    let encrypt_maxbits = r.u16()?;
    r.skip(4)?;
    Ok(Comb {
        auth,
        encrypt,
        flags,
        auth_minbits,
        auth_maxbits,
        encrypt_minbits,
        encrypt_maxbits,
        soft_allocations: r.u32()?,
        hard_allocations: r.u32()?,
        soft_bytes: r.u64()?,
        hard_bytes: r.u64()?,
        soft_addtime: r.u64()?,
        hard_addtime: r.u64()?,
        soft_usetime: r.u64()?,
        hard_usetime: r.u64()?,
    })
}

fn emit_proposal(p: &Proposal, out: &mut Vec<u8>) {
    out.extend_from_slice(&[p.replay, 0, 0, 0]);
    for c in &p.combs {
        out.extend_from_slice(&[c.auth, c.encrypt]);
        for v in [
            c.flags,
            c.auth_minbits,
            c.auth_maxbits,
            c.encrypt_minbits,
            c.encrypt_maxbits,
        ] {
            put_u16(out, v);
        }
        for v in [0, c.soft_allocations, c.hard_allocations] {
            put_u32(out, v);
        }
        for v in [
            c.soft_bytes,
            c.hard_bytes,
            c.soft_addtime,
            c.hard_addtime,
            c.soft_usetime,
            c.hard_usetime,
        ] {
            put_u64(out, v);
        }
    }
}

fn parse_supported(r: &mut Reader<'_>) -> Result<Vec<Alg>, DecodeError> {
    r.skip(4)?;
    let rest = r.rest();
    if !rest.len().is_multiple_of(ALG) {
        return Err(DecodeError::BadLength("supported algorithms", rest.len()));
    }
    let mut algs = Vec::with_capacity(rest.len() / ALG);
    for _ in 0..rest.len() / ALG {
        let alg = Alg {
            id: r.u8()?,
            ivlen: r.u8()?,
            minbits: r.u16()?,
            maxbits: r.u16()?,
        };
        r.skip(2)?;
        algs.push(alg);
    }
    Ok(algs)
}

fn emit_supported(algs: &[Alg], out: &mut Vec<u8>) {
    put_u32(out, 0);
    for a in algs {
        out.extend_from_slice(&[a.id, a.ivlen]);
        put_u16(out, a.minbits);
        put_u16(out, a.maxbits);
        put_u16(out, 0);
    }
}

fn parse_policy(r: &mut Reader<'_>) -> Result<PolicyExt, DecodeError> {
    let policy_type = PolicyType::from(r.u16()?);
    let dir = PolicyDir::from(r.u8()?);
    r.skip(1)?;
    let id = r.u32()?;
    let priority = r.u32()?;
    let mut requests = Vec::new();
    // Linux `parse_ipsecrequests`: requests while at least one header's
    // worth remains; each length (in bytes) covers its addresses.
    while r.rest().len() >= IPSECREQUEST {
        let len = usize::from(u16::from_ne_bytes([r.rest()[0], r.rest()[1]]));
        if len < IPSECREQUEST || len > r.rest().len() {
            return Err(DecodeError::BadLength("ipsecrequest", len));
        }
        requests.push(parse_request(r.bytes(len)?)?);
    }
    Ok(PolicyExt {
        policy_type,
        dir,
        id,
        priority,
        requests,
    })
}

fn parse_request(buf: &[u8]) -> Result<IpsecRequest, DecodeError> {
    let r = &mut Reader::new(buf, "ipsecrequest");
    r.skip(2)?;
    let proto = r.u16()?;
    let mode = Mode::from(r.u8()?);
    let level = Level::from(r.u8()?);
    r.skip(2)?;
    let reqid = r.u32()?;
    r.skip(4)?;
    let endpoints = if r.rest().is_empty() {
        None
    } else {
        Some(sockaddr::parse_pair(r)?)
    };
    Ok(IpsecRequest {
        proto,
        mode,
        level,
        reqid,
        endpoints,
    })
}

fn emit_policy(p: &PolicyExt, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    put_u16(out, p.policy_type.into());
    out.extend_from_slice(&[p.dir.into(), 0]);
    put_u32(out, p.id);
    put_u32(out, p.priority);
    for rq in &p.requests {
        emit_request(rq, out)?;
    }
    Ok(())
}

fn emit_request(rq: &IpsecRequest, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let addrs = rq
        .endpoints
        .map_or(0, |(s, d)| sockaddr::len(&s) + sockaddr::len(&d));
    // Linux `pfkey_sockaddr_pair_size`: the pair is padded to 8 bytes.
    let len = IPSECREQUEST + super::wire::align8(addrs);
    let len16 = u16::try_from(len).map_err(|_| EncodeError::TooLong("ipsecrequest"))?;
    put_u16(out, len16);
    put_u16(out, rq.proto);
    out.extend_from_slice(&[rq.mode.into(), rq.level.into(), 0, 0]);
    put_u32(out, rq.reqid);
    put_u32(out, 0);
    let start = out.len();
    if let Some((src, dst)) = &rq.endpoints {
        sockaddr::emit(src, out);
        sockaddr::emit(dst, out);
    }
    super::wire::pad8(out, start);
    Ok(())
}
