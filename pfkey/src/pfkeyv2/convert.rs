//! Between racoon3's IPsec vocabulary ([`SaSpec`], [`PolicySpec`],
//! [`KernelEvent`]) and PF_KEY messages, as Linux's `af_key` reads and
//! writes them. Pure functions: the backend adds sequence numbers and I/O.
//!
//! What Linux PF_KEY cannot say is refused here with
//! [`KernelError::Unsupported`] and a sentence naming the limit, rather
//! than installed as something else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use zeroize::Zeroizing;

use super::ext::{
    AddressExt, AddressKind, Extension, IpsecRequest, KeyExt, KeyKind, Level, LifetimeExt,
    LifetimeKind, Mode, PolicyDir, PolicyExt, PolicyType, Sa2Ext, SaExt, SaState, SpiRange,
};
use super::msg::{Message, MsgType, SaType};
use crate::{
    Counters, EspAuth, EspEncr, IpsecMode, KernelError, KernelEvent, Lifetime, PolicyAction,
    PolicySpec, SaDirection, SaId, SaInfo, SaSpec, Selector, UdpEncap,
};

/// The backend's name in errors and logs.
pub(crate) const BACKEND: &str = "pfkey";

/// `SADB_X_EALG_AESCBC`.
pub const SADB_X_EALG_AESCBC: u8 = 12;
/// `SADB_X_EALG_AES_GCM_ICV16`.
pub const SADB_X_EALG_AES_GCM_ICV16: u8 = 20;
/// `SADB_AALG_SHA1HMAC`.
pub const SADB_AALG_SHA1HMAC: u8 = 3;
/// `SADB_X_AALG_SHA2_256HMAC`.
pub const SADB_X_AALG_SHA2_256HMAC: u8 = 5;
/// `SADB_X_AALG_SHA2_384HMAC`.
pub const SADB_X_AALG_SHA2_384HMAC: u8 = 6;
/// `SADB_X_AALG_SHA2_512HMAC`.
pub const SADB_X_AALG_SHA2_512HMAC: u8 = 7;

/// IP protocol number of ESP, as ipsecrequests carry it.
const IPPROTO_ESP: u16 = 50;
/// `IPSEC_ULPROTO_ANY`: "any upper-layer protocol" in address extensions.
const IPSEC_ULPROTO_ANY: u8 = 255;
/// `UDP_ENCAP_ESPINUDP` (RFC 3948, no non-IKE marker).
const UDP_ENCAP_ESPINUDP: u8 = 2;
/// `IPSEC_MANUAL_REQID_MAX`: Linux replaces larger policy reqids with its own.
const IPSEC_MANUAL_REQID_MAX: u32 = 0x3fff;
/// `IPSEC_REPLAYWSIZE`, also the most Linux keeps (its bitmap is 32 bits).
pub(crate) const DEFAULT_REPLAY: u8 = 32;
/// ipsec-tools' `PRIORITY_DEFAULT`; more specific selectors go below it.
const PRIORITY_DEFAULT: u32 = 0x8000_0000;
/// Where GETSPI may pick from: all SPIs but the IANA-reserved 0..=255.
const SPI_MIN: u32 = 0x100;

fn unsupported(what: impl Into<String>) -> KernelError {
    KernelError::Unsupported {
        backend: BACKEND,
        what: what.into(),
    }
}

/// The PF_KEY encryption algorithm for an IKEv2 ENCR transform.
///
/// # Errors
/// Unsupported for ChaCha20-Poly1305 (Linux has no PF_KEY number for it)
/// and for any transform racoon3 does not negotiate.
pub fn encr_alg(encr: EspEncr) -> Result<u8, KernelError> {
    match encr.id {
        12 => Ok(SADB_X_EALG_AESCBC),
        20 => Ok(SADB_X_EALG_AES_GCM_ICV16),
        28 => Err(unsupported(
            "Linux PF_KEY has no ChaCha20-Poly1305 (RFC 7634): pfkeyv2.h defines no \
             SADB_X_EALG number for it; use --kernel xfrm",
        )),
        id => Err(unsupported(format!(
            "no PF_KEY number for ENCR transform {id}"
        ))),
    }
}

/// The PF_KEY authentication algorithm for an IKEv2 INTEG transform (0 for
/// none, as with AEAD ciphers).
///
/// # Errors
/// Unsupported for a transform with no PF_KEY number.
pub fn auth_alg(auth: Option<EspAuth>) -> Result<u8, KernelError> {
    match auth.map(|a| a.id) {
        None => Ok(0),
        Some(2) => Ok(SADB_AALG_SHA1HMAC),
        Some(12) => Ok(SADB_X_AALG_SHA2_256HMAC),
        Some(13) => Ok(SADB_X_AALG_SHA2_384HMAC),
        Some(14) => Ok(SADB_X_AALG_SHA2_512HMAC),
        Some(id) => Err(unsupported(format!(
            "no PF_KEY number for INTEG transform {id}"
        ))),
    }
}

/// An SADB_ADD or SADB_UPDATE for `sa`, extensions in the order KAME's
/// `pfkey_send_x1` writes them (SA, SA2, addresses, keys, lifetimes,
/// NAT-T).
///
/// The SA's traffic selectors are not sent: PF_KEY has no field for them
/// (racoon did the same; the policies carry the selectors).
///
/// # Errors
/// Unsupported for ESN (`sadb_sa` has no ESN flag on Linux), algorithms
/// without PF_KEY numbers, mixed address families or oversized keys.
pub fn sa_message(msg_type: MsgType, sa: &SaSpec) -> Result<Message, KernelError> {
    if sa.esn {
        return Err(unsupported(
            "Linux PF_KEY cannot install extended sequence numbers (RFC 4303 ESN): sadb_sa \
             has no ESN flag; negotiate without ESN or use --kernel xfrm",
        ));
    }
    let encrypt = encr_alg(sa.encr)?;
    let auth = auth_alg(sa.auth)?;
    let (src, dst) = host_pair(sa.src, sa.id.dst)?;
    let mut msg = Message::new(msg_type, SaType::Esp, 0, 0)
        .with(Extension::Sa(SaExt {
            spi: sa.id.spi,
            replay: replay(sa.replay_window),
            state: SaState::Mature.into(),
            auth,
            encrypt,
            flags: 0,
        }))
        .with(Extension::Sa2(Sa2Ext {
            mode: mode(sa.mode),
            sequence: 0,
            reqid: sa.reqid,
        }))
        .with(Extension::Address(AddressKind::Src, src))
        .with(Extension::Address(AddressKind::Dst, dst))
        .with(Extension::Key(KeyKind::Encrypt, key(&sa.encr_key)?));
    if auth != 0 {
        msg = msg.with(Extension::Key(KeyKind::Auth, key(&sa.auth_key)?));
    }
    msg = msg
        .with(Extension::Lifetime(LifetimeKind::Hard, hard(&sa.lifetime)))
        .with(Extension::Lifetime(LifetimeKind::Soft, soft(&sa.lifetime)));
    if let Some(encap) = sa.encap {
        msg = msg
            .with(Extension::NatTType(UDP_ENCAP_ESPINUDP))
            .with(Extension::NatTPort {
                dst: false,
                port: encap.sport,
            })
            .with(Extension::NatTPort {
                dst: true,
                port: encap.dport,
            });
    }
    Ok(msg)
}

/// An SADB_GETSPI reserving an SPI for an SA from `src` to `dst`.
///
/// # Errors
/// Unsupported when the two addresses are of different families.
pub fn getspi_message(src: IpAddr, dst: IpAddr, reqid: u32) -> Result<Message, KernelError> {
    let (src, dst) = host_pair(src, dst)?;
    Ok(Message::new(MsgType::GetSpi, SaType::Esp, 0, 0)
        .with(Extension::Sa2(Sa2Ext {
            mode: Mode::Any,
            sequence: 0,
            reqid,
        }))
        .with(Extension::Address(AddressKind::Src, src))
        .with(Extension::Address(AddressKind::Dst, dst))
        .with(Extension::SpiRange(SpiRange {
            min: SPI_MIN,
            max: u32::MAX,
        })))
}

/// An SADB_DELETE or SADB_GET naming one SA. Linux finds SAs by
/// (destination, SPI) but wants a source of the same family, so the
/// unspecified address stands in for it.
pub fn sa_ref_message(msg_type: MsgType, id: SaId) -> Message {
    let any = match id.dst {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    Message::new(msg_type, SaType::Esp, 0, 0)
        .with(Extension::Sa(SaExt {
            spi: id.spi,
            ..SaExt::default()
        }))
        .with(Extension::Address(AddressKind::Src, host(any)))
        .with(Extension::Address(AddressKind::Dst, host(id.dst)))
}

/// The SA a GET reply or DUMP entry describes; `None` if a part the
/// kernel always sends is missing. PF_KEY does not know directions: the
/// caller supplies it.
pub fn sa_info(msg: &Message, direction: SaDirection) -> Option<SaInfo> {
    let id = sa_id(msg)?;
    let src = msg.address(AddressKind::Src)?.addr.ip();
    let sa2 = msg.sa2()?;
    let encap = match msg.nat_t_type() {
        Some(_) => Some(UdpEncap {
            sport: msg.nat_t_port(false)?,
            dport: msg.nat_t_port(true)?,
        }),
        None => None,
    };
    let current = msg.lifetime(LifetimeKind::Current).copied();
    Some(SaInfo {
        id,
        src,
        direction,
        mode: if sa2.mode == Mode::Tunnel {
            IpsecMode::Tunnel
        } else {
            IpsecMode::Transport
        },
        reqid: sa2.reqid,
        encap,
        counters: current.map_or_else(Counters::default, |c| Counters {
            bytes: c.bytes,
            packets: c.allocations.into(),
        }),
    })
}

/// The (destination, SPI) of an SA message.
pub fn sa_id(msg: &Message) -> Option<SaId> {
    Some(SaId {
        dst: msg.address(AddressKind::Dst)?.addr.ip(),
        spi: msg.sa()?.spi,
    })
}

/// Whether a DUMP entry or EXPIRE is a real SA rather than a larval one
/// (reserved by GETSPI or created for an ACQUIRE): those have no
/// algorithms, and ACQUIRE's have no SPI either.
pub fn is_installed_sa(msg: &Message) -> bool {
    msg.sa().is_some_and(|sa| {
        sa.spi != 0
            && (sa.encrypt != 0 || sa.auth != 0)
            && SaState::from(sa.state) != SaState::Larval
    })
}

/// The kernel policies one [`PolicySpec`] becomes, each with whether its
/// failure matters: outbound is one OUT policy; inbound is an IN policy
/// plus a FWD policy (Linux checks forwarded traffic that arrived through
/// a tunnel SA against FWD, so a gateway needs it), except for transport
/// mode, which protects only this host's traffic.
///
/// # Errors
/// Unsupported for selectors that are not prefixes, request IDs above
/// 16383, or a tunnel-mode policy without endpoints.
pub fn policy_messages(
    msg_type: MsgType,
    spec: &PolicySpec,
) -> Result<Vec<(Message, PolicyDir)>, KernelError> {
    dirs(spec.direction, &spec.action)
        .into_iter()
        .map(|dir| Ok((policy_message(msg_type, spec, dir)?, dir)))
        .collect()
}

/// The kernel directions a policy of `direction` and `action` occupies.
pub fn dirs(direction: SaDirection, action: &PolicyAction) -> Vec<PolicyDir> {
    let transport = matches!(
        action,
        PolicyAction::Protect {
            mode: IpsecMode::Transport,
            ..
        }
    );
    match direction {
        SaDirection::Outbound => vec![PolicyDir::Outbound],
        SaDirection::Inbound if transport => vec![PolicyDir::Inbound],
        SaDirection::Inbound => vec![PolicyDir::Inbound, PolicyDir::Fwd],
    }
}

fn policy_message(
    msg_type: MsgType,
    spec: &PolicySpec,
    dir: PolicyDir,
) -> Result<Message, KernelError> {
    let (src, dst) = selector_addresses(&spec.selector)?;
    let (policy_type, requests) = match spec.action {
        PolicyAction::Discard => (PolicyType::Discard, Vec::new()),
        PolicyAction::Bypass => (PolicyType::None, Vec::new()),
        PolicyAction::Protect { reqid, mode } => (
            PolicyType::Ipsec,
            vec![request(reqid, mode, spec.tunnel, dir)?],
        ),
    };
    let policy = PolicyExt {
        policy_type,
        dir,
        id: 0,
        priority: priority(&src, &dst),
        requests,
    };
    Ok(Message::new(msg_type, SaType::Unspec, 0, 0)
        .with(Extension::Address(AddressKind::Src, src))
        .with(Extension::Address(AddressKind::Dst, dst))
        .with(Extension::Policy(policy)))
}

/// An SADB_X_SPDDELETE for the policy with this selector in `dir`.
///
/// # Errors
/// Unsupported for selectors that are not prefixes.
pub fn policy_delete_message(sel: &Selector, dir: PolicyDir) -> Result<Message, KernelError> {
    let (src, dst) = selector_addresses(sel)?;
    Ok(Message::new(MsgType::XSpdDelete, SaType::Unspec, 0, 0)
        .with(Extension::Address(AddressKind::Src, src))
        .with(Extension::Address(AddressKind::Dst, dst))
        .with(Extension::Policy(PolicyExt {
            policy_type: PolicyType::Ipsec,
            dir,
            id: 0,
            priority: 0,
            requests: Vec::new(),
        })))
}

/// An SADB_X_SPDGET for the policy with kernel index `id` (an ACQUIRE
/// names its policy this way).
pub fn policy_get_message(id: u32) -> Message {
    Message::new(MsgType::XSpdGet, SaType::Unspec, 0, 0).with(Extension::Policy(PolicyExt {
        policy_type: PolicyType::Ipsec,
        dir: PolicyDir::Any,
        id,
        priority: 0,
        requests: Vec::new(),
    }))
}

/// The policy an SPDDUMP entry or SPDGET reply describes, with its kernel
/// direction; `None` for what racoon3 cannot represent (ENTRUST, unknown
/// types, an IPsec policy with no ESP request).
pub fn policy_spec(msg: &Message) -> Option<(PolicySpec, PolicyDir)> {
    let src = msg.address(AddressKind::Src)?;
    let dst = msg.address(AddressKind::Dst)?;
    let pol = msg.policy()?;
    let direction = match pol.dir {
        PolicyDir::Outbound => SaDirection::Outbound,
        PolicyDir::Inbound | PolicyDir::Fwd => SaDirection::Inbound,
        _ => return None,
    };
    let (action, tunnel) = match pol.policy_type {
        PolicyType::Discard => (PolicyAction::Discard, None),
        PolicyType::None | PolicyType::Bypass => (PolicyAction::Bypass, None),
        PolicyType::Ipsec => protect_action(pol, direction)?,
        _ => return None,
    };
    let spec = PolicySpec {
        selector: selector(src, dst),
        direction,
        action,
        tunnel,
    };
    Some((spec, pol.dir))
}

/// The policy index an ACQUIRE names, and its addresses (the SA's
/// endpoints: Linux does not say which packet triggered it).
pub fn acquire_parts(msg: &Message) -> Option<(u32, IpAddr, IpAddr)> {
    let src = msg.address(AddressKind::Src)?.addr.ip();
    let dst = msg.address(AddressKind::Dst)?.addr.ip();
    Some((msg.policy()?.id, src, dst))
}

/// The [`KernelEvent::Acquire`] for an ACQUIRE from `src` to `dst` whose
/// policy (fetched with SPDGET) is `policy`.
pub fn acquire_event(src: IpAddr, dst: IpAddr, policy: &Message) -> Option<KernelEvent> {
    let (spec, _) = policy_spec(policy)?;
    let PolicyAction::Protect { reqid, .. } = spec.action else {
        return None;
    };
    Some(KernelEvent::Acquire {
        reqid,
        src,
        dst,
        proto: spec.selector.proto,
    })
}

/// The [`KernelEvent::Expire`] an SADB_EXPIRE means: hard when it carries
/// the hard lifetime (Linux sends exactly one of hard and soft). `None`
/// for larval SAs, which no daemon installed.
pub fn expire_event(msg: &Message) -> Option<KernelEvent> {
    if msg.header.satype != SaType::Esp || !is_installed_sa(msg) {
        return None;
    }
    Some(KernelEvent::Expire {
        id: sa_id(msg)?,
        hard: msg.lifetime(LifetimeKind::Hard).is_some(),
    })
}

/// The [`KernelEvent::Migrate`] an SADB_X_MIGRATE means, from its first
/// (old, new) pair of ipsecrequests. FWD policies are skipped: their IN
/// twin moves with them and raises the event.
pub fn migrate_event(msg: &Message) -> Option<KernelEvent> {
    let src = msg.address(AddressKind::Src)?;
    let dst = msg.address(AddressKind::Dst)?;
    let pol = msg.policy()?;
    let direction = match pol.dir {
        PolicyDir::Outbound => SaDirection::Outbound,
        PolicyDir::Inbound => SaDirection::Inbound,
        _ => return None,
    };
    let old = pol.requests.first()?.endpoints?;
    let new = pol.requests.get(1)?.endpoints?;
    Some(KernelEvent::Migrate {
        selector: selector(src, dst),
        direction,
        old: local_remote(old, direction),
        new: local_remote(new, direction),
    })
}

/// A range as a prefix, if it is one (same family, aligned, power-of-two
/// size).
pub fn range_to_prefix(start: IpAddr, end: IpAddr) -> Option<(IpAddr, u8)> {
    let (s, width) = bits(start);
    let (e, width_e) = bits(end);
    let host = s ^ e;
    if width != width_e || host & host.wrapping_add(1) != 0 || s & host != 0 || s > e {
        return None;
    }
    let host_bits = 128 - host.leading_zeros();
    let plen = u8::try_from(u32::from(width) - host_bits).ok()?;
    Some((start, plen))
}

/// A prefix as an inclusive range.
pub fn prefix_to_range(addr: IpAddr, prefixlen: u8) -> (IpAddr, IpAddr) {
    let (a, width) = bits(addr);
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    let host = all.checked_shr(prefixlen.into()).unwrap_or(0);
    let start = a & !host & all;
    (from_bits(start, width), from_bits(start | host, width))
}

fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u32::from(a).into(), 32),
        IpAddr::V6(a) => (a.into(), 128),
    }
}

fn from_bits(v: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn protect_action(
    pol: &PolicyExt,
    direction: SaDirection,
) -> Option<(PolicyAction, Option<(IpAddr, IpAddr)>)> {
    let rq = pol.requests.iter().find(|r| r.proto == IPPROTO_ESP)?;
    let mode = if rq.mode == Mode::Tunnel {
        IpsecMode::Tunnel
    } else {
        IpsecMode::Transport
    };
    let tunnel = rq.endpoints.map(|pair| local_remote(pair, direction));
    let reqid = rq.reqid;
    Some((PolicyAction::Protect { reqid, mode }, tunnel))
}

/// (source, destination) of an outbound SA or template is (local,
/// remote); of an inbound one, (remote, local).
fn local_remote((src, dst): (SocketAddr, SocketAddr), dir: SaDirection) -> (IpAddr, IpAddr) {
    match dir {
        SaDirection::Outbound => (src.ip(), dst.ip()),
        SaDirection::Inbound => (dst.ip(), src.ip()),
    }
}

fn request(
    reqid: u32,
    mode: IpsecMode,
    tunnel: Option<(IpAddr, IpAddr)>,
    dir: PolicyDir,
) -> Result<IpsecRequest, KernelError> {
    if reqid > IPSEC_MANUAL_REQID_MAX {
        return Err(unsupported(format!(
            "Linux PF_KEY keeps policy request IDs only up to {IPSEC_MANUAL_REQID_MAX} \
             (IPSEC_MANUAL_REQID_MAX) and replaces reqid {reqid} with one of its own"
        )));
    }
    let endpoints = match mode {
        IpsecMode::Transport => None,
        IpsecMode::Tunnel => {
            let (local, remote) =
                tunnel.ok_or_else(|| unsupported("a tunnel-mode policy needs tunnel endpoints"))?;
            let (src, dst) = match dir {
                PolicyDir::Outbound => (local, remote),
                _ => (remote, local),
            };
            let (s, d) = host_pair(src, dst)?;
            Some((s.addr, d.addr))
        }
    };
    Ok(IpsecRequest {
        proto: IPPROTO_ESP,
        mode: self::mode(mode),
        level: if reqid == 0 {
            Level::Require
        } else {
            Level::Unique
        },
        reqid,
        endpoints,
    })
}

fn selector_addresses(sel: &Selector) -> Result<(AddressExt, AddressExt), KernelError> {
    let proto = if sel.proto == 0 {
        IPSEC_ULPROTO_ANY
    } else {
        sel.proto
    };
    let prefix = |(start, end): (IpAddr, IpAddr)| {
        range_to_prefix(start, end).ok_or_else(|| {
            unsupported(format!(
                "PF_KEY selectors are prefixes; {start}-{end} is not one"
            ))
        })
    };
    let (s, splen) = prefix(sel.src)?;
    let (d, dplen) = prefix(sel.dst)?;
    if s.is_ipv4() != d.is_ipv4() {
        return Err(unsupported("a selector mixing IPv4 and IPv6"));
    }
    let addr = |ip, port, prefixlen| AddressExt {
        proto,
        prefixlen,
        addr: SocketAddr::new(ip, port),
    };
    Ok((addr(s, sel.src_port, splen), addr(d, sel.dst_port, dplen)))
}

fn selector(src: &AddressExt, dst: &AddressExt) -> Selector {
    let proto = if src.proto == IPSEC_ULPROTO_ANY {
        0
    } else {
        src.proto
    };
    Selector {
        src: prefix_to_range(src.addr.ip(), src.prefixlen),
        dst: prefix_to_range(dst.addr.ip(), dst.prefixlen),
        proto,
        src_port: src.addr.port(),
        dst_port: dst.addr.port(),
    }
}

/// More specific selectors get lower (preferred) priorities, as Linux
/// otherwise picks among overlapping policies by insertion order.
fn priority(src: &AddressExt, dst: &AddressExt) -> u32 {
    let prefixes = u32::from(src.prefixlen) + u32::from(dst.prefixlen);
    let proto = u32::from(src.proto != IPSEC_ULPROTO_ANY);
    let ports = u32::from(src.addr.port() != 0) + u32::from(dst.addr.port() != 0);
    PRIORITY_DEFAULT - prefixes * 8 - proto * 4 - ports
}

fn host(ip: IpAddr) -> AddressExt {
    AddressExt {
        proto: IPSEC_ULPROTO_ANY,
        prefixlen: if ip.is_ipv4() { 32 } else { 128 },
        addr: SocketAddr::new(ip, 0),
    }
}

fn host_pair(src: IpAddr, dst: IpAddr) -> Result<(AddressExt, AddressExt), KernelError> {
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(unsupported(format!(
            "SA endpoints {src} and {dst} are of different families"
        )));
    }
    Ok((host(src), host(dst)))
}

fn mode(mode: IpsecMode) -> Mode {
    match mode {
        IpsecMode::Transport => Mode::Transport,
        IpsecMode::Tunnel => Mode::Tunnel,
    }
}

/// `sadb_sa_replay` is 8 bits and Linux keeps at most 32 (its bitmap);
/// 0 asks for the default.
fn replay(window: u32) -> u8 {
    if window == 0 {
        DEFAULT_REPLAY
    } else {
        u8::try_from(window).unwrap_or(u8::MAX)
    }
}

fn key(bytes: &Zeroizing<Vec<u8>>) -> Result<KeyExt, KernelError> {
    let bits = bytes
        .len()
        .checked_mul(8)
        .and_then(|b| u16::try_from(b).ok())
        .ok_or_else(|| unsupported("a key longer than PF_KEY's 16-bit bit count"))?;
    Ok(KeyExt {
        bits,
        key: bytes.clone(),
    })
}

/// PF_KEY reads 0 as "no limit": a limit of zero becomes the smallest
/// real one instead.
fn limit(v: Option<u64>) -> u64 {
    v.map_or(0, |n| n.max(1))
}

fn secs(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    })
}

fn hard(lt: &Lifetime) -> LifetimeExt {
    LifetimeExt {
        // Clamping lowers the limit, so the SA expires early, never late.
        allocations: u32::try_from(limit(lt.hard_packets)).unwrap_or(u32::MAX),
        bytes: limit(lt.hard_bytes),
        addtime: secs(lt.hard_time),
        usetime: 0,
    }
}

fn soft(lt: &Lifetime) -> LifetimeExt {
    LifetimeExt {
        allocations: u32::try_from(limit(lt.soft_packets)).unwrap_or(u32::MAX),
        bytes: limit(lt.soft_bytes),
        addtime: secs(lt.soft_time),
        usetime: 0,
    }
}

#[cfg(test)]
mod tests;
