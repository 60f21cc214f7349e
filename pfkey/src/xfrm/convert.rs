//! Between racoon3's IPsec vocabulary ([`SaSpec`], [`PolicySpec`],
//! [`KernelEvent`]) and XFRM messages. Pure functions, no I/O.
//!
//! Choices made here, in one place:
//! - **Algorithms** by IKEv2 transform ID: ENCR 12 `cbc(aes)`, 18/19/20
//!   `rfc4106(gcm(aes))` with a 64/96/128-bit ICV, 28
//!   `rfc7539esp(chacha20,poly1305)`; INTEG 2 `hmac(sha1)` truncated to
//!   96 bits, 12/13/14 `hmac(sha256/384/512)` truncated to half the hash.
//!   AEAD key lengths include the 4-byte salt, as the kernel expects.
//! - **Selectors** are prefixes in XFRM; a range that is not exactly one
//!   prefix is refused as unsupported rather than widened.
//! - **SA selectors**: tunnel SAs carry none (any) and
//!   `XFRM_STATE_AF_UNSPEC`, like strongSwan's; a transport SA with one
//!   selector pair (expressible as prefixes) carries it, so the kernel's
//!   inbound check (`__xfrm_policy_check`) sees the same traffic the
//!   policy does; with several pairs it carries none.
//! - **Replay**: one `XFRMA_REPLAY_ESN_VAL` for ESN or windows beyond 32
//!   (the default window here is [`DEFAULT_REPLAY_WINDOW`]).
//! - **Policies**: an inbound tunnel-mode `Protect` policy is installed
//!   twice, as `in` and `fwd` (a gateway forwards what it decapsulates);
//!   dumps report only `in` and `out`. Priority comes from the selector's
//!   specificity ([`priority`]), so narrower policies win.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::attr::{Algo, Attr, ReplayEsn};
use super::msg::{Body, PolicyMsg, SaMsg};
use super::structs::{
    AF_INET, AF_INET6, EncapTmpl, IPPROTO_ESP, LifetimeCfg, MODE_TRANSPORT, MODE_TUNNEL,
    POLICY_ALLOW, POLICY_BLOCK, UDP_ENCAP_ESPINUDP, UserTmpl, UserpolicyId, UserpolicyInfo,
    UsersaId, UsersaInfo, XFRM_INF, XfrmAddr, XfrmId, XfrmSelector, dir, state_flags,
};
use crate::{
    Counters, IpsecMode, KernelError, KernelEvent, Lifetime, PolicyAction, PolicySpec, SaDirection,
    SaId, SaInfo, SaSpec, Selector, UdpEncap,
};

/// The backend name in errors and logs.
pub(crate) const BACKEND: &str = "xfrm";

/// Replay window of SAs whose spec leaves it at 0, in packets.
pub const DEFAULT_REPLAY_WINDOW: u32 = 128;

/// Policy priority of a selector matching everything; more specific
/// selectors get lower (preferred) numbers.
const PRIORITY_BASE: u32 = 100_000;

/// The NEWSA/UPDSA body for `spec`.
///
/// # Errors
/// [`KernelError::Unsupported`] for an algorithm without an XFRM name, a
/// key of the wrong length, or addresses of mixed families.
pub fn sa_message(spec: &SaSpec) -> Result<SaMsg, KernelError> {
    let (daddr, family) = XfrmAddr::from_ip(spec.id.dst);
    let (saddr, src_family) = XfrmAddr::from_ip(spec.src);
    if family != src_family {
        return Err(unsupported("an SA between an IPv4 and an IPv6 address"));
    }
    let mut info = UsersaInfo {
        id: XfrmId {
            daddr,
            spi: spec.id.spi,
            proto: IPPROTO_ESP,
        },
        saddr,
        lft: lifetime_cfg(&spec.lifetime),
        reqid: spec.reqid,
        family,
        ..UsersaInfo::default()
    };
    match spec.mode {
        IpsecMode::Tunnel => {
            info.mode = MODE_TUNNEL;
            info.flags |= state_flags::AF_UNSPEC;
        }
        IpsecMode::Transport => {
            info.mode = MODE_TRANSPORT;
            // One pair that is a pair of prefixes narrows the SA; anything
            // else leaves it open and the policies do the checking.
            if let [only] = spec.selectors.as_slice()
                && let Ok(sel) = selector(only)
            {
                info.sel = sel;
            }
        }
    }
    let mut attrs = algorithms(spec)?;
    if let Some(encap) = spec.encap {
        attrs.push(Attr::Encap(EncapTmpl {
            encap_type: UDP_ENCAP_ESPINUDP,
            sport: encap.sport,
            dport: encap.dport,
            oa: XfrmAddr::default(),
        }));
    }
    let window = match spec.replay_window {
        0 => DEFAULT_REPLAY_WINDOW,
        w => w,
    };
    if spec.esn || window > 32 {
        if spec.esn {
            info.flags |= state_flags::ESN;
        }
        attrs.push(Attr::ReplayEsn(ReplayEsn::new(window.min(4096))));
    } else {
        info.replay_window = window as u8;
    }
    Ok(SaMsg { info, attrs })
}

/// The DELSA/GETSA body naming the ESP SA `id`.
pub fn sa_id(id: SaId) -> UsersaId {
    let (daddr, family) = XfrmAddr::from_ip(id.dst);
    UsersaId {
        daddr,
        spi: id.spi,
        family,
        proto: IPPROTO_ESP,
    }
}

/// What the kernel reports about an ESP SA; `None` for other protocols
/// and for larval SAs (reserved by ALLOCSPI or an ACQUIRE, no algorithm
/// yet). `known` is the direction the backend installed it with; without
/// it the kernel's `XFRMA_SA_DIR` decides, else inbound is assumed.
pub fn sa_info(m: &SaMsg, known: Option<SaDirection>) -> Option<SaInfo> {
    let info = &m.info;
    if info.id.proto != IPPROTO_ESP || !has_cipher(&m.attrs) {
        return None;
    }
    let dir = m.attrs.iter().find_map(|a| match a {
        Attr::SaDir(2) => Some(SaDirection::Outbound),
        Attr::SaDir(1) => Some(SaDirection::Inbound),
        _ => None,
    });
    Some(SaInfo {
        id: SaId {
            dst: info.id.daddr.to_ip(info.family)?,
            spi: info.id.spi,
        },
        src: info.saddr.to_ip(info.family)?,
        direction: known.or(dir).unwrap_or(SaDirection::Inbound),
        mode: if info.mode == MODE_TUNNEL {
            IpsecMode::Tunnel
        } else {
            IpsecMode::Transport
        },
        reqid: info.reqid,
        encap: m.attrs.iter().find_map(|a| match a {
            Attr::Encap(e) => Some(UdpEncap {
                sport: e.sport,
                dport: e.dport,
            }),
            _ => None,
        }),
        counters: Counters {
            bytes: info.curlft.bytes,
            packets: info.curlft.packets,
        },
    })
}

fn has_cipher(attrs: &[Attr]) -> bool {
    attrs
        .iter()
        .any(|a| matches!(a, Attr::AlgAead(_) | Attr::AlgCrypt(_)))
}

/// The policies `p` becomes: one, or for an inbound tunnel-mode `Protect`
/// policy, `in` and `fwd`.
///
/// # Errors
/// [`KernelError::Unsupported`] for a selector that is not a pair of
/// prefixes, or a tunnel-mode policy without endpoints.
pub fn policy_messages(p: &PolicySpec) -> Result<Vec<PolicyMsg>, KernelError> {
    let sel = selector(&p.selector)?;
    let (action, tmpl) = match p.action {
        PolicyAction::Discard => (POLICY_BLOCK, None),
        PolicyAction::Bypass => (POLICY_ALLOW, None),
        PolicyAction::Protect { reqid, mode } => {
            (POLICY_ALLOW, Some(template(p, sel.family, reqid, mode)?))
        }
    };
    let dirs: &[u8] = match (p.direction, p.action) {
        (SaDirection::Outbound, _) => &[dir::OUT],
        (
            SaDirection::Inbound,
            PolicyAction::Protect {
                mode: IpsecMode::Tunnel,
                ..
            },
        ) => &[dir::IN, dir::FWD],
        (SaDirection::Inbound, _) => &[dir::IN],
    };
    Ok(dirs
        .iter()
        .map(|&d| PolicyMsg {
            info: UserpolicyInfo {
                sel,
                lft: LifetimeCfg::default(),
                priority: priority(&sel),
                dir: d,
                action,
                ..UserpolicyInfo::default()
            },
            attrs: tmpl.iter().map(|t| Attr::Tmpl(vec![*t])).collect(),
        })
        .collect())
}

/// The DELPOLICY bodies removing what [`policy_messages`] installed for
/// this selector and direction (`in` and `fwd` for inbound: the `fwd` one
/// may be absent).
///
/// # Errors
/// As [`policy_messages`].
pub fn policy_ids(
    spec: &Selector,
    direction: SaDirection,
) -> Result<Vec<UserpolicyId>, KernelError> {
    let sel = selector(spec)?;
    let dirs: &[u8] = match direction {
        SaDirection::Outbound => &[dir::OUT],
        SaDirection::Inbound => &[dir::IN, dir::FWD],
    };
    Ok(dirs
        .iter()
        .map(|&d| UserpolicyId {
            sel,
            index: 0,
            dir: d,
        })
        .collect())
}

/// A dumped policy in racoon3's terms; `None` for `fwd` policies (the
/// shadows of inbound ones), per-socket policies and selectors of other
/// families.
pub fn policy_spec(m: &PolicyMsg) -> Option<PolicySpec> {
    let direction = match m.info.dir {
        dir::IN => SaDirection::Inbound,
        dir::OUT => SaDirection::Outbound,
        _ => return None,
    };
    let selector = selector_from(&m.info.sel)?;
    let tmpl = m.attrs.iter().find_map(|a| match a {
        Attr::Tmpl(ts) => ts.iter().find(|t| t.id.proto == IPPROTO_ESP).copied(),
        _ => None,
    });
    let (action, tunnel) = match (m.info.action, tmpl) {
        (POLICY_BLOCK, _) => (PolicyAction::Discard, None),
        (_, None) => (PolicyAction::Bypass, None),
        (_, Some(t)) => protect_from(&t, direction),
    };
    Some(PolicySpec {
        selector,
        direction,
        action,
        tunnel,
    })
}

type Protect = (PolicyAction, Option<(IpAddr, IpAddr)>);

fn protect_from(t: &UserTmpl, direction: SaDirection) -> Protect {
    let mode = if t.mode == MODE_TUNNEL {
        IpsecMode::Tunnel
    } else {
        IpsecMode::Transport
    };
    let action = PolicyAction::Protect {
        reqid: t.reqid,
        mode,
    };
    if mode == IpsecMode::Transport {
        return (action, None);
    }
    let ends = t.saddr.to_ip(t.family).zip(t.id.daddr.to_ip(t.family));
    let tunnel = ends.map(|(src, dst)| match direction {
        SaDirection::Outbound => (src, dst),
        SaDirection::Inbound => (dst, src),
    });
    (action, tunnel)
}

fn template(
    p: &PolicySpec,
    sel_family: u16,
    reqid: u32,
    mode: IpsecMode,
) -> Result<UserTmpl, KernelError> {
    let mut t = UserTmpl {
        id: XfrmId {
            proto: IPPROTO_ESP,
            ..XfrmId::default()
        },
        family: sel_family,
        reqid,
        mode: MODE_TRANSPORT,
        aalgos: u32::MAX,
        ealgos: u32::MAX,
        calgos: u32::MAX,
        ..UserTmpl::default()
    };
    if mode == IpsecMode::Tunnel {
        let (local, remote) = p
            .tunnel
            .ok_or_else(|| unsupported("a tunnel-mode policy without tunnel endpoints"))?;
        let (src, dst) = match p.direction {
            SaDirection::Outbound => (local, remote),
            SaDirection::Inbound => (remote, local),
        };
        let (saddr, family) = XfrmAddr::from_ip(src);
        let (daddr, dst_family) = XfrmAddr::from_ip(dst);
        if family != dst_family {
            return Err(unsupported("tunnel endpoints of mixed families"));
        }
        t.mode = MODE_TUNNEL;
        t.family = family;
        t.saddr = saddr;
        t.id.daddr = daddr;
    }
    Ok(t)
}

/// A policy's priority: 100000 less 64 per prefix bit, 32 for
/// a protocol, 8 per port, so that the most specific match wins (Linux
/// picks the lowest number).
pub fn priority(sel: &XfrmSelector) -> u32 {
    let bits = u32::from(sel.prefixlen_s) + u32::from(sel.prefixlen_d);
    let proto = if sel.proto != 0 { 32 } else { 0 };
    let ports = 8 * (u32::from(sel.sport_mask != 0) + u32::from(sel.dport_mask != 0));
    PRIORITY_BASE - 64 * bits - proto - ports
}

/// The XFRM selector of `s`.
///
/// # Errors
/// [`KernelError::Unsupported`] when a range is not exactly one prefix or
/// the families differ.
pub fn selector(s: &Selector) -> Result<XfrmSelector, KernelError> {
    let (saddr, plen_s) = prefix(s.src)?;
    let (daddr, plen_d) = prefix(s.dst)?;
    let (saddr, family) = XfrmAddr::from_ip(saddr);
    let (daddr, dst_family) = XfrmAddr::from_ip(daddr);
    if family != dst_family {
        return Err(unsupported("a selector mixing IPv4 and IPv6"));
    }
    let mask = |port: u16| if port == 0 { 0 } else { 0xffff };
    Ok(XfrmSelector {
        daddr,
        saddr,
        dport: s.dst_port,
        dport_mask: mask(s.dst_port),
        sport: s.src_port,
        sport_mask: mask(s.src_port),
        family,
        prefixlen_d: plen_d,
        prefixlen_s: plen_s,
        proto: s.proto,
        ..XfrmSelector::default()
    })
}

/// The range selector of an XFRM selector; `None` for families other than
/// IPv4 and IPv6 or impossible prefix lengths.
pub fn selector_from(sel: &XfrmSelector) -> Option<Selector> {
    let src = range(sel.saddr.to_ip(sel.family)?, sel.prefixlen_s)?;
    let dst = range(sel.daddr.to_ip(sel.family)?, sel.prefixlen_d)?;
    let port = |port: u16, mask: u16| if mask == 0 { 0 } else { port };
    Some(Selector {
        src,
        dst,
        proto: sel.proto,
        src_port: port(sel.sport, sel.sport_mask),
        dst_port: port(sel.dport, sel.dport_mask),
    })
}

/// The prefix equal to an inclusive address range.
fn prefix((start, end): (IpAddr, IpAddr)) -> Result<(IpAddr, u8), KernelError> {
    let (s, e, width) = match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => (u128::from(s.to_bits()), u128::from(e.to_bits()), 32),
        (IpAddr::V6(s), IpAddr::V6(e)) => (s.to_bits(), e.to_bits(), 128),
        _ => return Err(unsupported("an address range mixing IPv4 and IPv6")),
    };
    let host_bits = (s ^ e).checked_ilog2().map_or(0, |b| b + 1);
    let host_mask = if host_bits == 0 {
        0
    } else {
        u128::MAX >> (128 - host_bits)
    };
    if s & host_mask != 0 || e & host_mask != host_mask {
        return Err(unsupported(&format!(
            "the address range {start}-{end}, which is not one prefix"
        )));
    }
    Ok((start, (width - host_bits) as u8))
}

/// The inclusive range of a prefix; `None` for a length beyond the
/// family's width.
fn range(addr: IpAddr, len: u8) -> Option<(IpAddr, IpAddr)> {
    match addr {
        IpAddr::V4(a) if len <= 32 => {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let bits = a.to_bits();
            Some((
                Ipv4Addr::from_bits(bits & !host).into(),
                Ipv4Addr::from_bits(bits | host).into(),
            ))
        }
        IpAddr::V6(a) if len <= 128 => {
            let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let bits = a.to_bits();
            Some((
                Ipv6Addr::from_bits(bits & !host).into(),
                Ipv6Addr::from_bits(bits | host).into(),
            ))
        }
        _ => None,
    }
}

/// The events a kernel multicast carries (none for messages racoon3 does
/// not act on).
pub fn events(body: &Body) -> Vec<KernelEvent> {
    match body {
        Body::Acquire(m) => acquire(m).into_iter().collect(),
        Body::Expire(m) => {
            let state = &m.fixed.state;
            if state.id.proto != IPPROTO_ESP {
                return Vec::new();
            }
            state
                .id
                .daddr
                .to_ip(state.family)
                .map(|dst| KernelEvent::Expire {
                    id: SaId {
                        dst,
                        spi: state.id.spi,
                    },
                    hard: m.fixed.hard != 0,
                })
                .into_iter()
                .collect()
        }
        Body::Migrate(m) => migrate(m),
        _ => Vec::new(),
    }
}

fn acquire(m: &super::msg::WithAttrs<super::structs::UserAcquire>) -> Option<KernelEvent> {
    let a = &m.fixed;
    let reqid = m
        .attrs
        .iter()
        .find_map(|attr| match attr {
            Attr::Tmpl(ts) => ts.iter().find(|t| t.id.proto == IPPROTO_ESP),
            _ => None,
        })
        .map_or(0, |t| t.reqid);
    Some(KernelEvent::Acquire {
        reqid,
        src: a.sel.saddr.to_ip(a.sel.family)?,
        dst: a.sel.daddr.to_ip(a.sel.family)?,
        proto: a.sel.proto,
    })
}

fn migrate(m: &super::msg::WithAttrs<UserpolicyId>) -> Vec<KernelEvent> {
    let direction = match m.fixed.dir {
        dir::IN => SaDirection::Inbound,
        dir::OUT => SaDirection::Outbound,
        _ => return Vec::new(),
    };
    let Some(selector) = selector_from(&m.fixed.sel) else {
        return Vec::new();
    };
    let ends = |s: XfrmAddr, d: XfrmAddr, family: u16| {
        let (s, d) = (s.to_ip(family)?, d.to_ip(family)?);
        Some(match direction {
            SaDirection::Outbound => (s, d),
            SaDirection::Inbound => (d, s),
        })
    };
    let migrations = m.attrs.iter().filter_map(|a| match a {
        Attr::Migrate(ms) => Some(ms),
        _ => None,
    });
    migrations
        .flatten()
        .filter(|um| um.proto == IPPROTO_ESP)
        .filter_map(|um| {
            Some(KernelEvent::Migrate {
                selector: selector.clone(),
                direction,
                old: ends(um.old_saddr, um.old_daddr, um.old_family)?,
                new: ends(um.new_saddr, um.new_daddr, um.new_family)?,
            })
        })
        .collect()
}

fn lifetime_cfg(l: &Lifetime) -> LifetimeCfg {
    let secs = |d: Option<Duration>| d.map_or(0, |d| d.as_secs().max(1));
    LifetimeCfg {
        soft_byte_limit: l.soft_bytes.unwrap_or(XFRM_INF),
        hard_byte_limit: l.hard_bytes.unwrap_or(XFRM_INF),
        soft_packet_limit: l.soft_packets.unwrap_or(XFRM_INF),
        hard_packet_limit: l.hard_packets.unwrap_or(XFRM_INF),
        soft_add_expires_seconds: secs(l.soft_time),
        hard_add_expires_seconds: secs(l.hard_time),
        ..LifetimeCfg::default()
    }
}

/// The algorithm attributes of `spec`, AEAD or cipher + integrity.
fn algorithms(spec: &SaSpec) -> Result<Vec<Attr>, KernelError> {
    let key_bytes = usize::from(spec.encr.key_bits) / 8;
    let aead = |name: &str, icv: u32| -> Result<Vec<Attr>, KernelError> {
        if spec.auth.is_some() {
            return Err(unsupported("an integrity algorithm next to an AEAD cipher"));
        }
        check_len(name, &spec.encr_key, key_bytes + 4)?;
        Ok(vec![Attr::AlgAead(Algo::new(
            name,
            Some(icv),
            &spec.encr_key,
        ))])
    };
    let mut attrs = match (spec.encr.id, spec.encr.key_bits) {
        (12, 128 | 192 | 256) => {
            check_len("cbc(aes)", &spec.encr_key, key_bytes)?;
            vec![Attr::AlgCrypt(Algo::new("cbc(aes)", None, &spec.encr_key))]
        }
        (18, 128 | 192 | 256) => aead("rfc4106(gcm(aes))", 64)?,
        (19, 128 | 192 | 256) => aead("rfc4106(gcm(aes))", 96)?,
        (20, 128 | 192 | 256) => aead("rfc4106(gcm(aes))", 128)?,
        (28, 256) => aead("rfc7539esp(chacha20,poly1305)", 128)?,
        (id, bits) => {
            return Err(unsupported(&format!(
                "ESP encryption transform {id} with {bits}-bit keys"
            )));
        }
    };
    if let Some(auth) = spec.auth {
        let (name, trunc) = match auth.id {
            2 => ("hmac(sha1)", 96),
            12 => ("hmac(sha256)", 128),
            13 => ("hmac(sha384)", 192),
            14 => ("hmac(sha512)", 256),
            id => return Err(unsupported(&format!("ESP integrity transform {id}"))),
        };
        attrs.push(Attr::AlgAuthTrunc(Algo::new(
            name,
            Some(trunc),
            &spec.auth_key,
        )));
    }
    Ok(attrs)
}

fn check_len(name: &str, key: &[u8], want: usize) -> Result<(), KernelError> {
    if key.len() == want {
        Ok(())
    } else {
        Err(unsupported(&format!(
            "a {}-byte key for {name}, which takes {want}",
            key.len()
        )))
    }
}

fn unsupported(what: &str) -> KernelError {
    KernelError::Unsupported {
        backend: BACKEND,
        what: what.to_owned(),
    }
}

/// Family of an address, as XFRM numbers it.
pub fn family(ip: IpAddr) -> u16 {
    if ip.is_ipv4() { AF_INET } else { AF_INET6 }
}

#[cfg(test)]
mod tests;
