//! The KMP side: `interface`, `resolver`, `remote` and its `ikev2`,
//! `ikev1`, `kink` blocks.

use std::net::{IpAddr, Ipv6Addr};

use super::addr::{self, Host, Macro, Port};
use super::directives::{self, INTERFACE_IGNORED, RESOLVER_IGNORED, Scope};
use super::lexer::Span;
use super::model::{
    IdKind, Identity, Ikev2Params, Interface, KinkParams, ListenAddr, PeerAddr, Remote,
    UNSPECIFIED, all_addresses,
};
use super::names::{AuthAlgName, AuthMethod, DhGroupName, EncAlgName, Kmp};
use super::parser::{Block, Directive};
use super::value::{self, Cursor, Cx, Ref, Seen};
use super::{ConfigError, ErrorKind};

/// A `remote` body before `default` is merged in.
#[derive(Debug, Clone, Default)]
pub(crate) struct RemoteDraft {
    pub(crate) acceptable_kmp: Vec<Kmp>,
    pub(crate) ikev2: Ikev2Params,
    pub(crate) kink: KinkParams,
    pub(crate) selector_index: Option<Ref>,
}

/// `interface { ... }`.
pub(crate) fn interface(cx: &mut Cx<'_>, block: &Block) -> Result<Interface, ConfigError> {
    let mut out = Interface::default();
    let mut seen = Seen::default();
    for d in &block.items {
        match d.name() {
            Some("ike") => out.ike.extend(listen_list(cx, d)?),
            Some("kink") => out.kink.extend(listen_list(cx, d)?),
            Some("spmd") => out.spmd.extend(spmd(cx, d)?),
            Some("spmd_password") => {
                seen.once(d)?;
                out.spmd_password = Some(value::path(cx, d)?);
            }
            name => ignore_or_reject(
                cx,
                d,
                name,
                INTERFACE_IGNORED,
                "the interface block",
                &mut seen,
            )?,
        }
    }
    Ok(out)
}

/// `resolver { ... }`: spmd's DNS proxy, not implemented.
pub(crate) fn resolver(cx: &mut Cx<'_>, block: &Block) -> Result<(), ConfigError> {
    let mut seen = Seen::default();
    for d in &block.items {
        ignore_or_reject(
            cx,
            d,
            d.name(),
            RESOLVER_IGNORED,
            "the resolver block",
            &mut seen,
        )?;
    }
    Ok(())
}

/// Checks and warns about a directive from `table`, or rejects it.
pub(crate) fn ignore_or_reject(
    cx: &mut Cx<'_>,
    d: &Directive,
    name: Option<&str>,
    table: &'static [directives::Ignored],
    context: &str,
    seen: &mut Seen,
) -> Result<(), ConfigError> {
    let Some(entry) = name.and_then(|n| directives::find(table, n)) else {
        return Err(directives::unknown(d, context));
    };
    seen.once(d)?;
    directives::ignore(cx, d, entry, true)
}

/// The body of `remote NAME { ... }` or `default { remote { ... }; }`.
pub(crate) fn remote_body(
    cx: &mut Cx<'_>,
    block: &Block,
    context: &str,
) -> Result<RemoteDraft, ConfigError> {
    let mut draft = RemoteDraft::default();
    let mut seen = Seen::default();
    for d in &block.items {
        let Some(name) = d.name() else {
            return Err(directives::unknown(d, context));
        };
        if !matches!(
            name,
            "acceptable_kmp" | "selector_index" | "ikev2" | "ikev1" | "kink"
        ) {
            return Err(directives::unknown(d, context));
        }
        seen.once(d)?;
        match name {
            "acceptable_kmp" => draft.acceptable_kmp = acceptable_kmp(cx, d)?,
            "selector_index" => {
                draft.selector_index = Some(value::reference(cx, d, "selector_index")?)
            }
            "ikev2" => draft.ikev2 = kmp_block(cx, d, Scope::V2, true, context)?.0,
            "kink" => draft.kink = kmp_block(cx, d, Scope::Kink, true, context)?.1,
            _ => unimplemented_kmp(cx, d, name, context)?,
        }
    }
    Ok(draft)
}

/// `default` values fill what the named remote leaves unset.
pub(crate) fn merge(draft: RemoteDraft, default: Option<&RemoteDraft>) -> RemoteDraft {
    let Some(def) = default else {
        return draft;
    };
    RemoteDraft {
        acceptable_kmp: or_list(draft.acceptable_kmp, &def.acceptable_kmp),
        ikev2: merge_params(draft.ikev2, &def.ikev2),
        kink: merge_kink(draft.kink, &def.kink),
        selector_index: draft.selector_index,
    }
}

/// Validates a merged remote. Returns it with its `selector_index`
/// reference.
pub(crate) fn finish(
    name: String,
    span: Span,
    draft: RemoteDraft,
) -> Result<(Remote, Option<Ref>), ConfigError> {
    let block = format!("remote '{name}'");
    if draft.acceptable_kmp.is_empty() {
        return Err(missing(&span, &block, "acceptable_kmp", ""));
    }
    if draft.acceptable_kmp.contains(&Kmp::Ikev2) {
        check_ikev2(&span, &block, &draft.ikev2)?;
    }
    let remote = Remote {
        name,
        span,
        acceptable_kmp: draft.acceptable_kmp,
        ikev2: draft.ikev2,
        kink: draft.kink,
        selector_index: draft.selector_index.as_ref().map(|r| r.name.clone()),
    };
    Ok((remote, draft.selector_index))
}

/// The default remote as written, unvalidated.
pub(crate) fn default_remote(span: Span, draft: RemoteDraft) -> Remote {
    Remote {
        name: "default".to_owned(),
        span,
        acceptable_kmp: draft.acceptable_kmp,
        ikev2: draft.ikev2,
        kink: draft.kink,
        selector_index: draft.selector_index.map(|r| r.name),
    }
}

fn missing(span: &Span, block: &str, directive: &'static str, hint: &'static str) -> ConfigError {
    ConfigError::at(
        span.clone(),
        ErrorKind::Missing {
            block: block.to_owned(),
            directive,
            hint,
        },
    )
}

/// What IKEv2 cannot start without (here or in `default`).
fn check_ikev2(span: &Span, block: &str, p: &Ikev2Params) -> Result<(), ConfigError> {
    const IN: &str = " in its ikev2 block (or default { remote { ikev2 { } } })";
    if p.kmp_enc_alg.is_empty() {
        return Err(missing(span, block, "kmp_enc_alg", IN));
    }
    if p.kmp_hash_alg.is_empty() && !p.kmp_enc_alg.iter().all(|e| e.is_aead()) {
        return Err(missing(
            span,
            block,
            "kmp_hash_alg",
            " (required unless every kmp_enc_alg is an AEAD cipher: aes128_gcm16, aes256_gcm16, chacha20_poly1305)",
        ));
    }
    if p.kmp_prf_alg.is_empty() {
        return Err(missing(span, block, "kmp_prf_alg", IN));
    }
    if p.kmp_dh_group.is_empty() {
        return Err(missing(span, block, "kmp_dh_group", IN));
    }
    if p.kmp_auth_method.is_empty() {
        return Err(missing(span, block, "kmp_auth_method", IN));
    }
    if p.kmp_auth_method.contains(&AuthMethod::Psk) && p.pre_shared_key.is_none() {
        return Err(missing(
            span,
            block,
            "pre_shared_key",
            " (kmp_auth_method psk needs a key file)",
        ));
    }
    Ok(())
}

fn or_list<T: Clone>(own: Vec<T>, default: &[T]) -> Vec<T> {
    if own.is_empty() {
        default.to_vec()
    } else {
        own
    }
}

fn merge_params(p: Ikev2Params, d: &Ikev2Params) -> Ikev2Params {
    Ikev2Params {
        my_id: p.my_id.or_else(|| d.my_id.clone()),
        peers_id: p.peers_id.or_else(|| d.peers_id.clone()),
        peers_ipaddr: p.peers_ipaddr.or(d.peers_ipaddr),
        pre_shared_key: p.pre_shared_key.or_else(|| d.pre_shared_key.clone()),
        kmp_enc_alg: or_list(p.kmp_enc_alg, &d.kmp_enc_alg),
        kmp_hash_alg: or_list(p.kmp_hash_alg, &d.kmp_hash_alg),
        kmp_prf_alg: or_list(p.kmp_prf_alg, &d.kmp_prf_alg),
        kmp_dh_group: or_list(p.kmp_dh_group, &d.kmp_dh_group),
        kmp_auth_method: or_list(p.kmp_auth_method, &d.kmp_auth_method),
        kmp_sa_lifetime_time: p.kmp_sa_lifetime_time.or(d.kmp_sa_lifetime_time),
        ipsec_sa_lifetime_time: p.ipsec_sa_lifetime_time.or(d.ipsec_sa_lifetime_time),
        dpd_delay: p.dpd_delay.or(d.dpd_delay),
        max_retry_to_send: p.max_retry_to_send.or(d.max_retry_to_send),
        interval_to_send: p.interval_to_send.or(d.interval_to_send),
        times_per_send: p.times_per_send.or(d.times_per_send),
        nonce_size: p.nonce_size.or(d.nonce_size),
        nat_traversal: p.nat_traversal.or(d.nat_traversal),
        need_pfs: p.need_pfs.or(d.need_pfs),
        cookie_required: p.cookie_required.or(d.cookie_required),
        force_udp_encap: p.force_udp_encap.or(d.force_udp_encap),
        scripts: p.scripts.merge(&d.scripts),
    }
}

fn merge_kink(p: KinkParams, d: &KinkParams) -> KinkParams {
    KinkParams {
        my_principal: p.my_principal.or_else(|| d.my_principal.clone()),
        peers_principal: p.peers_principal.or_else(|| d.peers_principal.clone()),
        peers_ipaddr: p.peers_ipaddr.or(d.peers_ipaddr),
        max_retry_to_send: p.max_retry_to_send.or(d.max_retry_to_send),
        interval_to_send: p.interval_to_send.or(d.interval_to_send),
        user_to_user: p.user_to_user.or(d.user_to_user),
    }
}

fn acceptable_kmp(cx: &mut Cx<'_>, d: &Directive) -> Result<Vec<Kmp>, ConfigError> {
    let kmps = value::list(cx, d, |_, c| {
        value::keyword(c, Kmp::from_config_name, "ikev2, ikev1 or kink")
    })?;
    if let Some(dup) = kmps
        .iter()
        .enumerate()
        .find(|(i, k)| kmps[..*i].contains(k))
    {
        return Err(value::invalid(
            d,
            &d.span,
            format!("'{}' is listed twice", dup.1),
        ));
    }
    Ok(kmps)
}

/// `ikev1 { }`: checked, then one warning for the block.
fn unimplemented_kmp(
    cx: &mut Cx<'_>,
    d: &Directive,
    name: &str,
    parent: &str,
) -> Result<(), ConfigError> {
    kmp_block(cx, d, Scope::V1, false, parent)?;
    cx.warn(
        &d.span,
        format!("IKEv1 is not implemented by racoon3; the {name} block is checked and ignored"),
    );
    Ok(())
}

/// The common KMP directives kinkd uses; the others are checked and warned
/// about in a `kink` block (KINK negotiates no KMP algorithms, identities
/// or nonce sizes of its own).
const KINK_USES: &[&str] = &["peers_ipaddr", "max_retry_to_send", "interval_to_send"];

/// An `ikev1`/`ikev2`/`kink` block inside `parent`. Ignored directives
/// warn only if `warn` (the ikev1 block warns once, as a whole). The
/// `kink` block's settings come back in the [`KinkParams`].
fn kmp_block(
    cx: &mut Cx<'_>,
    d: &Directive,
    scope: Scope,
    warn: bool,
    parent: &str,
) -> Result<(Ikev2Params, KinkParams), ConfigError> {
    let (Some(block), [_]) = (&d.block, d.args.as_slice()) else {
        let name = value::name_of(d);
        return Err(value::invalid(
            d,
            &d.span,
            format!("expected {name} {{ ... }};"),
        ));
    };
    let context = format!("the {} block of {parent}", value::name_of(d));
    let mut p = Ikev2Params::default();
    let mut kink = KinkParams::default();
    let mut seen = Seen::default();
    for item in &block.items {
        let Some(entry) = item.name().and_then(directives::kmp_directive) else {
            return Err(directives::unknown(item, &context));
        };
        if !entry.scope.allows(scope) {
            return Err(ConfigError::at(
                item.span.clone(),
                ErrorKind::Misplaced {
                    name: entry.name.to_owned(),
                    context,
                    valid_in: entry.scope.describe(),
                },
            ));
        }
        seen.once(item)?;
        match &entry.ignored {
            Some(ignored) => directives::ignore(cx, item, ignored, warn)?,
            None if scope == Scope::Kink => kink_typed(cx, item, entry.name, &mut p, &mut kink)?,
            None => kmp_typed(cx, item, entry.name, &mut p)?,
        }
    }
    Ok((p, kink))
}

/// A `kink` block directive: kinkd's own, the common ones it uses, or a
/// common one checked as in `ikev2` and warned about.
fn kink_typed(
    cx: &mut Cx<'_>,
    d: &Directive,
    name: &str,
    p: &mut Ikev2Params,
    kink: &mut KinkParams,
) -> Result<(), ConfigError> {
    let principal = |cx: &mut Cx<'_>| -> Result<String, ConfigError> {
        let v = value::single(cx, d, |_, c| c.value("a Kerberos principal"))?;
        if v.text.is_empty() {
            return Err(value::invalid(
                d,
                &v.span,
                "the principal is empty".to_owned(),
            ));
        }
        Ok(v.text)
    };
    match name {
        "my_principal" => kink.my_principal = Some(principal(cx)?),
        "peers_principal" => kink.peers_principal = Some(principal(cx)?),
        "user_to_user" => kink.user_to_user = Some(value::flag(cx, d)?),
        "peers_ipaddr" => kink.peers_ipaddr = Some(peer_addr(cx, d)?),
        "max_retry_to_send" => kink.max_retry_to_send = Some(value::count(cx, d)?),
        "interval_to_send" => kink.interval_to_send = Some(value::duration(cx, d, false)?),
        _ => {
            debug_assert!(!KINK_USES.contains(&name));
            kmp_typed(cx, d, name, p)?;
            cx.warn(
                &d.span,
                format!("'{name}' has no meaning for KINK; kinkd ignores it"),
            );
        }
    }
    Ok(())
}

/// The KMP directives racoon3 implements.
fn kmp_typed(
    cx: &mut Cx<'_>,
    d: &Directive,
    name: &str,
    p: &mut Ikev2Params,
) -> Result<(), ConfigError> {
    match name {
        "my_id" => p.my_id = Some(identity(cx, d)?),
        "peers_id" => p.peers_id = Some(identity(cx, d)?),
        "peers_ipaddr" => p.peers_ipaddr = Some(peer_addr(cx, d)?),
        "pre_shared_key" => p.pre_shared_key = Some(value::path(cx, d)?),
        "kmp_enc_alg" => {
            p.kmp_enc_alg = value::algorithms(
                cx,
                d,
                EncAlgName::from_config_name,
                "an encryption algorithm",
            )?
        }
        "kmp_hash_alg" => {
            p.kmp_hash_alg = value::algorithms(
                cx,
                d,
                AuthAlgName::from_config_name,
                "an integrity algorithm",
            )?
        }
        "kmp_prf_alg" => {
            p.kmp_prf_alg =
                value::algorithms(cx, d, AuthAlgName::from_config_name, "a PRF algorithm")?
        }
        "kmp_dh_group" => p.kmp_dh_group = dh_groups(cx, d)?,
        "kmp_auth_method" => {
            p.kmp_auth_method = value::algorithms(
                cx,
                d,
                AuthMethod::from_config_name,
                "an authentication method",
            )?
        }
        "kmp_sa_lifetime_time" => p.kmp_sa_lifetime_time = Some(value::lifetime(cx, d)?),
        "ipsec_sa_lifetime_time" => p.ipsec_sa_lifetime_time = Some(value::lifetime(cx, d)?),
        "dpd_delay" => p.dpd_delay = Some(value::duration(cx, d, true)?),
        "max_retry_to_send" => p.max_retry_to_send = Some(value::count(cx, d)?),
        "interval_to_send" => p.interval_to_send = Some(value::duration(cx, d, false)?),
        "times_per_send" => p.times_per_send = Some(value::count(cx, d)?),
        "nonce_size" => p.nonce_size = Some(nonce_size(cx, d)?),
        "nat_traversal" => p.nat_traversal = Some(value::flag(cx, d)?),
        "need_pfs" => p.need_pfs = Some(value::flag(cx, d)?),
        "cookie_required" => p.cookie_required = Some(value::flag(cx, d)?),
        "force_udp_encap" => p.force_udp_encap = Some(value::flag(cx, d)?),
        "script" => p.scripts = super::scripts::script(cx, d)?,
        _ => return Err(directives::unknown(d, "a KMP block")),
    }
    Ok(())
}

/// `nonce_size N [B];`: RFC 7296 §2.10 wants 16 to 256 octets.
fn nonce_size(cx: &mut Cx<'_>, d: &Directive) -> Result<u32, ConfigError> {
    let n = value::single(cx, d, |_, c| value::bytes(c))?;
    match n {
        Some(n @ 16..=256) => Ok(u32::try_from(n).unwrap_or(256)),
        _ => Err(value::invalid(
            d,
            &d.span,
            "must be between 16 and 256 bytes".to_owned(),
        )),
    }
}

fn dh_groups(cx: &mut Cx<'_>, d: &Directive) -> Result<Vec<DhGroupName>, ConfigError> {
    value::list(cx, d, |_, c| {
        let v = c.value("a DH group")?;
        let group = match v.text.parse::<u16>() {
            Ok(n) => DhGroupName::from_number(n),
            Err(_) => DhGroupName::from_config_name(&v.text),
        };
        group.ok_or_else(|| c.invalid(&v.span, format!("unknown DH group '{}'", v.text)))
    })
}

/// `my_id` / `peers_id`: the first of a list (others warned about).
fn identity(cx: &mut Cx<'_>, d: &Directive) -> Result<Identity, ConfigError> {
    let mut ids = value::list(cx, d, |_, c| identity_item(c))?;
    if ids.len() > 1 {
        cx.warn(
            &d.span,
            format!(
                "racoon3 uses only the first of the {} identities",
                ids.len()
            ),
        );
    }
    Ok(ids.swap_remove(0))
}

/// `TYPE [file|tag] VALUE`
fn identity_item(c: &mut Cursor) -> Result<Identity, ConfigError> {
    let kind_val = c.value("an identity type")?;
    let mut kind = match kind_val.text.as_str() {
        "ipaddr" => IdKind::Ipaddr,
        "fqdn" => IdKind::Fqdn,
        "email" | "rfc822" => IdKind::Email,
        "keyid" => IdKind::Keyid,
        "x509_subject" => IdKind::X509Subject,
        other => {
            return Err(c.invalid(
                &kind_val.span,
                format!(
                    "unknown identity type '{other}' (ipaddr, fqdn, email, keyid, x509_subject)"
                ),
            ));
        }
    };
    let qualifier = if c.remaining() >= 2 {
        c.one_of(&["file", "tag"])
    } else {
        None
    };
    if let Some(q) = qualifier.filter(|q| q.text == "tag") {
        if kind != IdKind::Keyid {
            return Err(c.invalid(&q.span, "'tag' applies only to keyid".to_owned()));
        }
        kind = IdKind::KeyidTag;
    }
    let v = c.value("an identity value")?;
    if kind == IdKind::Ipaddr && v.text.parse::<IpAddr>().is_err() {
        return Err(c.invalid(&v.span, format!("'{}' is not an IP address", v.text)));
    }
    Ok(Identity {
        kind,
        value: v.text,
    })
}

/// `peers_ipaddr ADDR [port N];` / `IP_RW`; the first of a list.
fn peer_addr(cx: &mut Cx<'_>, d: &Directive) -> Result<PeerAddr, ConfigError> {
    let mut addrs = value::list(cx, d, |cx, c| {
        let (host, span, port) = addr::addr_spec(cx, c)?;
        match host {
            Host::Ip(addr, None) => Ok(PeerAddr::Addr {
                addr,
                port: port.number(),
            }),
            Host::RoadWarrior | Host::Any => Ok(PeerAddr::RoadWarrior),
            _ => Err(c.invalid(&span, "expected the peer's IP address or IP_RW".to_owned())),
        }
    })?;
    if addrs.len() > 1 {
        cx.warn(
            &d.span,
            format!(
                "racoon3 uses only the first of the {} addresses",
                addrs.len()
            ),
        );
    }
    Ok(addrs.swap_remove(0))
}

/// `ike ...;` / `kink ...;` in `interface`.
fn listen_list(cx: &mut Cx<'_>, d: &Directive) -> Result<Vec<ListenAddr>, ConfigError> {
    let lists = value::list(cx, d, listen_item)?;
    Ok(lists.into_iter().flatten().collect())
}

fn listen_item(cx: &mut Cx<'_>, c: &mut Cursor) -> Result<Vec<ListenAddr>, ConfigError> {
    let (host, span, port) = addr::addr_spec(cx, c)?;
    let port = match port {
        Port::Any => return Err(c.invalid(&span, "'port any' cannot be listened on".to_owned())),
        p => p.number(),
    };
    let v6 = ListenAddr {
        addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        port,
    };
    match host {
        Host::Ip(addr, None) => Ok(vec![ListenAddr { addr, port }]),
        Host::Any => Ok(all_addresses(port).to_vec()),
        Host::Macro(m, ifname) => {
            if let Some(ifname) = ifname {
                cx.warn(
                    &span,
                    format!("'%{ifname}' is ignored: racoon3 listens on every interface"),
                );
            }
            Ok(match m {
                Macro::MyIp => all_addresses(port).to_vec(),
                Macro::MyIpv4 => vec![ListenAddr {
                    addr: UNSPECIFIED,
                    port,
                }],
                Macro::MyIpv6 => vec![v6],
                Macro::MyIpv6Global | Macro::MyIpv6LinkLocal => {
                    cx.warn(&span, "treated as MY_IPV6 (every IPv6 address)".to_owned());
                    vec![v6]
                }
            })
        }
        _ => Err(c.invalid(
            &span,
            "expected an IP address or MY_IP, MY_IPV4, MY_IPV6".to_owned(),
        )),
    }
}

/// `spmd unix "PATH";` (or the debug-only TCP form, warned about).
fn spmd(cx: &mut Cx<'_>, d: &Directive) -> Result<Vec<String>, ConfigError> {
    let paths = value::list(cx, d, |cx, c| {
        let (host, span, _) = addr::addr_spec(cx, c)?;
        match host {
            Host::Unix(path) => Ok(Some(path)),
            Host::Ip(..) | Host::Macro(..) | Host::Any => {
                cx.warn(
                    &span,
                    "spmd over TCP (a racoon2 debug feature) is not implemented; ignored"
                        .to_owned(),
                );
                Ok(None)
            }
            Host::RoadWarrior => Err(c.invalid(&span, "expected unix \"PATH\"".to_owned())),
        }
    })?;
    Ok(paths.into_iter().flatten().collect())
}
