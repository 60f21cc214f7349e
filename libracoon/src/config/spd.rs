//! The policy side: `selector`, `policy`, `ipsec`, `sa` and `addresspool`.

use std::net::{IpAddr, Ipv6Addr};

use super::addr::{self, Host};
use super::directives::{IPSEC_IGNORED, POLICY_IGNORED, SA_IGNORED, SELECTOR_IGNORED};
use super::lexer::Span;
use super::model::{
    AddressPool, AddressRange, IpPrefix, Ipsec, Lifetime, Policy, Sa, Selector, UNSPECIFIED,
};
use super::names::{
    AuthAlgName, Direction, EncAlgName, IpsecLevel, IpsecMode, PolicyAction, SaProtocol,
};
use super::parser::{Block, Directive};
use super::remote::ignore_or_reject;
use super::value::{self, Cursor, Cx, Ref, Seen};
use super::{ConfigError, ErrorKind};

/// A validated selector and its `policy_index` reference.
pub(crate) fn selector(
    cx: &mut Cx<'_>,
    name: String,
    span: Span,
    block: &Block,
) -> Result<(Selector, Ref), ConfigError> {
    let mut s = SelectorDraft::default();
    let mut seen = Seen::default();
    for d in &block.items {
        match d.name() {
            Some("direction") => {
                s.direction = Some(keyword(
                    cx,
                    d,
                    &mut seen,
                    Direction::from_config_name,
                    "inbound or outbound",
                )?)
            }
            Some("src") => s.src = Some(endpoint(cx, d, &mut seen)?),
            Some("dst") => s.dst = Some(endpoint(cx, d, &mut seen)?),
            Some("upper_layer_protocol") => s.protocol = upper_layer(cx, d, &mut seen)?,
            Some("policy_index") => {
                s.policy_index = Some(
                    once(d, &mut seen).and_then(|()| value::reference(cx, d, "policy_index"))?,
                )
            }
            Some("reqid") => s.reqid = Some(once(d, &mut seen).and_then(|()| value::count(cx, d))?),
            other => ignore_or_reject(
                cx,
                d,
                other,
                SELECTOR_IGNORED,
                "a selector block",
                &mut seen,
            )?,
        }
    }
    s.finish(cx, name, span)
}

#[derive(Default)]
struct SelectorDraft {
    direction: Option<Direction>,
    src: Option<(Endpoint, Option<u16>, Span)>,
    dst: Option<(Endpoint, Option<u16>, Span)>,
    protocol: Option<u8>,
    policy_index: Option<Ref>,
    reqid: Option<u32>,
}

impl SelectorDraft {
    fn finish(
        self,
        cx: &mut Cx<'_>,
        name: String,
        span: Span,
    ) -> Result<(Selector, Ref), ConfigError> {
        let block = format!("selector '{name}'");
        let need = |directive| missing(&span, &block, directive, "");
        let direction = self.direction.ok_or_else(|| need("direction"))?;
        let (src, src_port, _) = self.src.ok_or_else(|| need("src"))?;
        let (dst, dst_port, dst_span) = self.dst.ok_or_else(|| need("dst"))?;
        let policy_index = self.policy_index.ok_or_else(|| need("policy_index"))?;
        let (src, dst) = resolve_endpoints(cx, src, dst, &dst_span);
        if src.addr.is_ipv4() != dst.addr.is_ipv4() {
            return Err(ConfigError::at(
                dst_span,
                ErrorKind::Invalid(format!(
                    "{block}: src {src} and dst {dst} are of different address families"
                )),
            ));
        }
        let selector = Selector {
            name,
            span,
            direction,
            src,
            dst,
            src_port,
            dst_port,
            upper_layer_protocol: self.protocol,
            policy_index: policy_index.name.clone(),
            reqid: self.reqid,
        };
        Ok((selector, policy_index))
    }
}

fn once(d: &Directive, seen: &mut Seen) -> Result<(), ConfigError> {
    seen.once(d)
}

fn keyword<T>(
    cx: &mut Cx<'_>,
    d: &Directive,
    seen: &mut Seen,
    lookup: fn(&str) -> Option<T>,
    what: &str,
) -> Result<T, ConfigError> {
    seen.once(d)?;
    value::single(cx, d, |_, c| value::keyword(c, lookup, what))
}

/// A selector address: a prefix, or racoon2's `IP_ANY` / `IP_RW` (any
/// address of the other side's family).
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Prefix(IpPrefix),
    Any,
}

/// `src ADDR[/LEN]|IP_ANY|IP_RW [port N|any];`
fn endpoint(
    cx: &mut Cx<'_>,
    d: &Directive,
    seen: &mut Seen,
) -> Result<(Endpoint, Option<u16>, Span), ConfigError> {
    seen.once(d)?;
    value::single(cx, d, |cx, c| {
        let (host, span, port) = addr::addr_spec(cx, c)?;
        let endpoint = match host {
            Host::Ip(addr, Some(len)) => IpPrefix::new(addr, len).map(Endpoint::Prefix),
            Host::Ip(addr, None) => Some(Endpoint::Prefix(IpPrefix::host(addr))),
            Host::Any | Host::RoadWarrior => Some(Endpoint::Any),
            _ => None,
        };
        let endpoint = endpoint.ok_or_else(|| {
            c.invalid(&span, "expected an IP address, a prefix, IP_ANY or IP_RW (MY_IP macros are not supported in selectors)".to_owned())
        })?;
        Ok((endpoint, port.number(), span))
    })
}

/// Resolves `IP_ANY` to the zero-length prefix of the other side's family
/// (IPv4 if both are `IP_ANY`, with a warning).
fn resolve_endpoints(
    cx: &mut Cx<'_>,
    src: Endpoint,
    dst: Endpoint,
    span: &Span,
) -> (IpPrefix, IpPrefix) {
    match (src, dst) {
        (Endpoint::Prefix(s), Endpoint::Prefix(d)) => (s, d),
        (Endpoint::Prefix(s), Endpoint::Any) => (s, any_of(s.addr)),
        (Endpoint::Any, Endpoint::Prefix(d)) => (any_of(d.addr), d),
        (Endpoint::Any, Endpoint::Any) => {
            cx.warn(
                span,
                "src and dst are both IP_ANY: the selector matches IPv4 only".to_owned(),
            );
            (any_of(UNSPECIFIED), any_of(UNSPECIFIED))
        }
    }
}

/// `0.0.0.0/0` or `::/0`, as `addr`'s family.
fn any_of(addr: IpAddr) -> IpPrefix {
    let addr = match addr {
        IpAddr::V4(_) => UNSPECIFIED,
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    IpPrefix { addr, len: 0 }
}

/// `upper_layer_protocol PROTO [TYPE [CODE]];` (type/code warned about).
fn upper_layer(cx: &mut Cx<'_>, d: &Directive, seen: &mut Seen) -> Result<Option<u8>, ConfigError> {
    seen.once(d)?;
    value::single(cx, d, |cx, c| {
        let proto = addr::protocol(c)?;
        if !c.is_done() {
            value::number(c, "an ICMP type")?;
            if !c.is_done() {
                value::number(c, "an ICMP code")?;
            }
            cx.warn(
                &d.span,
                "ICMP type/code selectors are not implemented by racoon3; ignored".to_owned(),
            );
        }
        Ok(proto)
    })
}

/// A `policy` body before `default` is merged in.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyDraft {
    action: Option<PolicyAction>,
    remote_index: Option<Ref>,
    ipsec_mode: Option<IpsecMode>,
    ipsec_index: Vec<Ref>,
    ipsec_level: Option<IpsecLevel>,
    peers_sa_ipaddr: Option<IpAddr>,
    my_sa_ipaddr: Option<IpAddr>,
}

/// The body of `policy NAME { ... }` or `default { policy { ... }; }`.
pub(crate) fn policy_body(
    cx: &mut Cx<'_>,
    block: &Block,
    context: &str,
) -> Result<PolicyDraft, ConfigError> {
    let mut p = PolicyDraft::default();
    let mut seen = Seen::default();
    for d in &block.items {
        match d.name() {
            Some("action") => p.action = Some(action(cx, d, &mut seen)?),
            Some("remote_index") => {
                p.remote_index = Some(
                    once(d, &mut seen).and_then(|()| value::reference(cx, d, "remote_index"))?,
                )
            }
            Some("ipsec_index") => {
                p.ipsec_index =
                    once(d, &mut seen).and_then(|()| value::references(cx, d, "ipsec_index"))?
            }
            Some("ipsec_mode") => {
                p.ipsec_mode = Some(keyword(
                    cx,
                    d,
                    &mut seen,
                    IpsecMode::from_config_name,
                    "transport or tunnel",
                )?)
            }
            Some("ipsec_level") => {
                p.ipsec_level = Some(keyword(
                    cx,
                    d,
                    &mut seen,
                    IpsecLevel::from_config_name,
                    "require, use or unique",
                )?)
            }
            Some("peers_sa_ipaddr") => p.peers_sa_ipaddr = Some(sa_addr(cx, d, &mut seen, true)?),
            Some("my_sa_ipaddr") => p.my_sa_ipaddr = Some(sa_addr(cx, d, &mut seen, false)?),
            other => ignore_or_reject(cx, d, other, POLICY_IGNORED, context, &mut seen)?,
        }
    }
    Ok(p)
}

fn action(cx: &mut Cx<'_>, d: &Directive, seen: &mut Seen) -> Result<PolicyAction, ConfigError> {
    let action = keyword(
        cx,
        d,
        seen,
        PolicyAction::from_config_name,
        "auto_ipsec, static_ipsec, discard or none",
    )?;
    if action == PolicyAction::StaticIpsec {
        cx.warn(
            &d.span,
            "'action static_ipsec' is not implemented (nor was it in racoon2)".to_owned(),
        );
    }
    Ok(action)
}

/// `peers_sa_ipaddr ADDR|IP_RW|IP_ANY;` / `my_sa_ipaddr ADDR|MY_IP...;`
fn sa_addr(
    cx: &mut Cx<'_>,
    d: &Directive,
    seen: &mut Seen,
    peer: bool,
) -> Result<IpAddr, ConfigError> {
    seen.once(d)?;
    value::single(cx, d, |cx, c| {
        let (host, span) = addr::ip_addr(cx, c)?;
        match host {
            Host::Ip(addr, _) => Ok(addr),
            Host::RoadWarrior | Host::Any => Ok(UNSPECIFIED),
            Host::Macro(..) if !peer => Ok(UNSPECIFIED),
            _ => Err(c.invalid(&span, "expected an IP address, IP_RW or IP_ANY".to_owned())),
        }
    })
}

impl PolicyDraft {
    /// `default` values fill what the named policy leaves unset.
    pub(crate) fn merge(self, default: Option<&Self>) -> Self {
        let Some(def) = default else {
            return self;
        };
        Self {
            action: self.action.or(def.action),
            remote_index: self.remote_index.or_else(|| def.remote_index.clone()),
            ipsec_mode: self.ipsec_mode.or(def.ipsec_mode),
            ipsec_index: if self.ipsec_index.is_empty() {
                def.ipsec_index.clone()
            } else {
                self.ipsec_index
            },
            ipsec_level: self.ipsec_level.or(def.ipsec_level),
            peers_sa_ipaddr: self.peers_sa_ipaddr.or(def.peers_sa_ipaddr),
            my_sa_ipaddr: self.my_sa_ipaddr.or(def.my_sa_ipaddr),
        }
    }

    /// Validates a merged policy; returns it with its references.
    pub(crate) fn finish(
        self,
        name: String,
        span: Span,
    ) -> Result<(Policy, Vec<Ref>), ConfigError> {
        let block = format!("policy '{name}'");
        let action = self
            .action
            .ok_or_else(|| missing(&span, &block, "action", ""))?;
        if action == PolicyAction::AutoIpsec && self.ipsec_index.is_empty() {
            return Err(missing(
                &span,
                &block,
                "ipsec_index",
                " (action auto_ipsec needs one)",
            ));
        }
        let protects = matches!(action, PolicyAction::AutoIpsec | PolicyAction::StaticIpsec);
        if protects && self.ipsec_mode == Some(IpsecMode::Tunnel) {
            if self.my_sa_ipaddr.is_none() {
                return Err(missing(
                    &span,
                    &block,
                    "my_sa_ipaddr",
                    " (ipsec_mode tunnel needs both SA end points)",
                ));
            }
            if self.peers_sa_ipaddr.is_none() {
                return Err(missing(
                    &span,
                    &block,
                    "peers_sa_ipaddr",
                    " (ipsec_mode tunnel needs both SA end points)",
                ));
            }
        }
        let mut refs = self.ipsec_index.clone();
        refs.extend(self.remote_index.clone());
        let policy = Policy {
            name,
            span,
            action,
            remote_index: self.remote_index.map(|r| r.name),
            ipsec_mode: self.ipsec_mode,
            ipsec_index: self.ipsec_index.into_iter().map(|r| r.name).collect(),
            ipsec_level: self.ipsec_level,
            peers_sa_ipaddr: self.peers_sa_ipaddr,
            my_sa_ipaddr: self.my_sa_ipaddr,
        };
        Ok((policy, refs))
    }
}

/// An `ipsec` body before `default` is merged in.
#[derive(Debug, Clone, Default)]
pub(crate) struct IpsecDraft {
    lifetime: Option<Lifetime>,
    ext_sequence: Option<bool>,
    sa_index: Vec<Ref>,
}

/// The body of `ipsec NAME { ... }` or `default { ipsec { ... }; }`.
pub(crate) fn ipsec_body(
    cx: &mut Cx<'_>,
    block: &Block,
    context: &str,
) -> Result<IpsecDraft, ConfigError> {
    let mut p = IpsecDraft::default();
    let mut seen = Seen::default();
    for d in &block.items {
        match d.name() {
            Some("ipsec_sa_lifetime_time") => {
                p.lifetime = Some(once(d, &mut seen).and_then(|()| value::lifetime(cx, d))?)
            }
            Some("ext_sequence") => {
                p.ext_sequence = Some(once(d, &mut seen).and_then(|()| value::flag(cx, d))?)
            }
            Some("sa_index") => p.sa_index = sa_index(cx, d, &mut seen)?,
            other => ignore_or_reject(cx, d, other, IPSEC_IGNORED, context, &mut seen)?,
        }
    }
    Ok(p)
}

/// `sa_index` lists one to three SAs.
fn sa_index(cx: &mut Cx<'_>, d: &Directive, seen: &mut Seen) -> Result<Vec<Ref>, ConfigError> {
    seen.once(d)?;
    let refs = value::references(cx, d, "sa_index")?;
    if refs.len() > 3 {
        return Err(value::invalid(
            d,
            &d.span,
            "a bundle has at most three SAs (AH, ESP, IPComp)".to_owned(),
        ));
    }
    Ok(refs)
}

impl IpsecDraft {
    /// `default` values fill what the named block leaves unset.
    pub(crate) fn merge(self, default: Option<&Self>) -> Self {
        let Some(def) = default else {
            return self;
        };
        Self {
            lifetime: self.lifetime.or(def.lifetime),
            ext_sequence: self.ext_sequence.or(def.ext_sequence),
            sa_index: if self.sa_index.is_empty() {
                def.sa_index.clone()
            } else {
                self.sa_index
            },
        }
    }

    /// Validates a merged block; returns it with its `sa_index` references.
    pub(crate) fn finish(self, name: String, span: Span) -> Result<(Ipsec, Vec<Ref>), ConfigError> {
        if self.sa_index.is_empty() {
            return Err(missing(&span, &format!("ipsec '{name}'"), "sa_index", ""));
        }
        let ipsec = Ipsec {
            name,
            span,
            ipsec_sa_lifetime_time: self.lifetime,
            ext_sequence: self.ext_sequence,
            sa_index: self.sa_index.iter().map(|r| r.name.clone()).collect(),
        };
        Ok((ipsec, self.sa_index))
    }
}

/// An `sa` body before `default` is merged in.
#[derive(Debug, Clone, Default)]
pub(crate) struct SaDraft {
    protocol: Option<SaProtocol>,
    esp_enc: Vec<EncAlgName>,
    esp_auth: Vec<AuthAlgName>,
    ah_auth: Vec<AuthAlgName>,
}

/// The body of `sa NAME { ... }` or `default { sa { ... }; }`.
pub(crate) fn sa_body(
    cx: &mut Cx<'_>,
    block: &Block,
    context: &str,
) -> Result<SaDraft, ConfigError> {
    let mut p = SaDraft::default();
    let mut seen = Seen::default();
    for d in &block.items {
        match d.name() {
            Some("sa_protocol") => {
                p.protocol = Some(keyword(
                    cx,
                    d,
                    &mut seen,
                    SaProtocol::from_config_name,
                    "esp, ah or ipcomp",
                )?)
            }
            Some("esp_enc_alg") => p.esp_enc = enc_algs(cx, d, &mut seen)?,
            Some("esp_auth_alg") => p.esp_auth = auth_algs(cx, d, &mut seen)?,
            Some("ah_auth_alg") => p.ah_auth = auth_algs(cx, d, &mut seen)?,
            other => ignore_or_reject(cx, d, other, SA_IGNORED, context, &mut seen)?,
        }
    }
    Ok(p)
}

fn enc_algs(
    cx: &mut Cx<'_>,
    d: &Directive,
    seen: &mut Seen,
) -> Result<Vec<EncAlgName>, ConfigError> {
    seen.once(d)?;
    value::algorithms(
        cx,
        d,
        EncAlgName::from_config_name,
        "an encryption algorithm",
    )
}

fn auth_algs(
    cx: &mut Cx<'_>,
    d: &Directive,
    seen: &mut Seen,
) -> Result<Vec<AuthAlgName>, ConfigError> {
    seen.once(d)?;
    value::algorithms(
        cx,
        d,
        AuthAlgName::from_config_name,
        "an authentication algorithm",
    )
}

impl SaDraft {
    /// `default` values fill what the named block leaves unset.
    pub(crate) fn merge(self, default: Option<&Self>) -> Self {
        let Some(def) = default else {
            return self;
        };
        let or = |own: Vec<AuthAlgName>, d: &[AuthAlgName]| {
            if own.is_empty() { d.to_vec() } else { own }
        };
        Self {
            protocol: self.protocol.or(def.protocol),
            esp_enc: if self.esp_enc.is_empty() {
                def.esp_enc.clone()
            } else {
                self.esp_enc
            },
            esp_auth: or(self.esp_auth, &def.esp_auth),
            ah_auth: or(self.ah_auth, &def.ah_auth),
        }
    }

    /// Validates a merged block.
    pub(crate) fn finish(self, name: String, span: Span) -> Result<Sa, ConfigError> {
        let block = format!("sa '{name}'");
        let protocol = self
            .protocol
            .ok_or_else(|| missing(&span, &block, "sa_protocol", ""))?;
        match protocol {
            SaProtocol::Esp if self.esp_enc.is_empty() => {
                return Err(missing(
                    &span,
                    &block,
                    "esp_enc_alg",
                    " (sa_protocol esp needs one)",
                ));
            }
            SaProtocol::Esp
                if self.esp_auth.is_empty() && !self.esp_enc.iter().all(|e| e.is_aead()) =>
            {
                return Err(missing(
                    &span,
                    &block,
                    "esp_auth_alg",
                    " (required unless every esp_enc_alg is an AEAD cipher: aes128_gcm16, aes256_gcm16, chacha20_poly1305)",
                ));
            }
            SaProtocol::Ah if self.ah_auth.is_empty() => {
                return Err(missing(
                    &span,
                    &block,
                    "ah_auth_alg",
                    " (sa_protocol ah needs one)",
                ));
            }
            _ => {}
        }
        Ok(Sa {
            name,
            span,
            sa_protocol: protocol,
            esp_enc_alg: self.esp_enc,
            esp_auth_alg: self.esp_auth,
            ah_auth_alg: self.ah_auth,
        })
    }
}

/// `addresspool NAME { START - END; ... };`
pub(crate) fn addresspool(
    cx: &mut Cx<'_>,
    name: String,
    span: Span,
    block: &Block,
) -> Result<AddressPool, ConfigError> {
    let mut ranges = Vec::with_capacity(block.items.len());
    for item in &block.items {
        if let Some(inner) = &item.block {
            return Err(value::invalid(
                item,
                &inner.span,
                "expected START - END;".to_owned(),
            ));
        }
        let mut c = Cursor::new(cx, "addresspool", &item.args, &item.span)?;
        ranges.push(range(cx, &mut c)?);
        c.finish()?;
    }
    Ok(AddressPool { name, span, ranges })
}

fn range(cx: &mut Cx<'_>, c: &mut Cursor) -> Result<AddressRange, ConfigError> {
    let start = pool_addr(cx, c)?;
    if !c.keyword("-") {
        let v = c.value("'-'")?;
        return Err(c.invalid(
            &v.span,
            format!("expected '-' (with spaces around it), found '{}'", v.text),
        ));
    }
    let end = pool_addr(cx, c)?;
    if start.0.is_ipv4() != end.0.is_ipv4() || start.0 > end.0 {
        return Err(c.invalid(&end.1, format!("{} - {} is not a range", start.0, end.0)));
    }
    Ok(AddressRange {
        start: start.0,
        end: end.0,
    })
}

fn pool_addr(cx: &mut Cx<'_>, c: &mut Cursor) -> Result<(IpAddr, Span), ConfigError> {
    match addr::ip_addr(cx, c)? {
        (Host::Ip(addr, _), span) => Ok((addr, span)),
        (_, span) => Err(c.invalid(&span, "expected an IP address".to_owned())),
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
