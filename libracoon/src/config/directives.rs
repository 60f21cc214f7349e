//! Directive tables: where each racoon2 directive is valid, and which ones
//! racoon3 understands but does not implement.
//!
//! An understood-but-unimplemented directive is still checked (its value
//! must be well formed, its variables defined) and then produces a
//! [`Warning`](super::Warning) naming `file:line`, unless its value is one
//! that matches what racoon3 does anyway (the `quiet` column: e.g.
//! `kmp_sa_lifetime_byte infinite;`). The unimplemented directives are:
//!
//! | block | directives |
//! | --- | --- |
//! | `interface` | `application_bypass` (quiet: on), `spmd ADDR port N` (TCP) |
//! | `resolver` | the whole block: `resolver` (quiet: off), `nameserver`, `dns_query` |
//! | `remote` | the whole `ikev1 { }` block (one warning) |
//! | `ikev1`/`ikev2`/`kink` | `logmode` (quiet: normal), `logfile`, `passive` (quiet: off), `use_coa` (quiet: off), `peers_kmp_port`, `verify_id`, `verify_pubkey`, `send_cert`, `send_cert_req`, `initial_contact`, `support_proxy` (quiet: off), `selector_check` (quiet: obey), `proposal_check` (quiet: obey), `random_pad_content`, `random_padlen`, `max_padlen`, `kmp_sa_lifetime_byte` (quiet: infinite), `kmp_sa_nego_time_limit`, `kmp_sa_grace_period`, `ipsec_sa_nego_time_limit`, `mobility_role` |
//! | `ikev2` | `send_peers_id` (quiet: off), `my_public_key`, `peers_public_key`, `provide`, `request` |
//! | `ikev1` | `exchange_mode`, `my_gssapi_id`, `dpd`, `dpd_retry`, `dpd_maxfail` (with the block) |
//! | `kink` | every common KMP directive but `peers_ipaddr`, `max_retry_to_send`, `interval_to_send` (KINK negotiates no KMP algorithms, identities or nonce sizes; kinkd ignores them with a warning each) |
//! | `selector` | `order`, `next_header_including`, `tagged`, ICMP type/code after `upper_layer_protocol` |
//! | `policy` | `install` (quiet: on), `action static_ipsec` |
//! | `ipsec` | `ipsec_sa_lifetime_byte` (quiet: infinite) |
//! | `sa` | `ipcomp_alg`, `spi` |
//!
//! Also noted with a warning: algorithm key lengths and keys
//! (`aes_ctr,256`), an IPv6 zone (`fe80::1%eth0`), `MY_IPV6_GLOBAL` /
//! `MY_IPV6_LINKLOCAL` / `%ifname` on listening addresses (treated as all
//! IPv6 / all addresses), lists where racoon3 uses only the first value
//! (`my_id`, `peers_id`, `peers_ipaddr`).
//!
//! The `kink` block's own directives are implemented by kinkd:
//! `my_principal`, `peers_principal`, and the racoon3 extension
//! `user_to_user on|off;` (get user-to-user tickets through KINK GETTGT,
//! for a peer whose principal has no keytab entry at the KDC; default off).
//!
//! racoon3 extensions in the `ikev2` block (not in racoon2):
//!
//! | directive | values | meaning |
//! | --- | --- | --- |
//! | `force_udp_encap` | `on` / `off` (default) | announce a NAT in IKE_SA_INIT that is not there (a NAT_DETECTION_SOURCE_IP that cannot match, as strongSwan's `encap = yes`): both peers float to port 4500 and ESP rides UDP (RFC 3948), which the userspace datapath sends with UDP GSO and receives with UDP GRO |
//!
//! `script { ... }` is implemented in `ikev2` blocks (parsed by
//! `scripts.rs`, run by iked; see `docs/hook-scripts.md`); inside the
//! `ikev1` and `kink` blocks it is checked along with the rest of the block.

use super::addr;
use super::parser::Directive;
use super::value::{self, Cursor, Cx};
use super::{ConfigError, ErrorKind};

/// How an ignored directive's value is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    Bool,
    Time,
    Bytes,
    Number,
    /// Exactly one value.
    Str,
    /// `NAME V;` or `NAME { V; V; };`.
    Strings,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A list of these words.
    EnumList(&'static [&'static str]),
    /// A list of address specifications.
    AddrList,
    /// `x509pem|pkcs12|ascii FILE [FILE]`.
    PubKey,
    /// `NAME { KEYWORD VALUES...; ... };` (or `NAME KEYWORD VALUES...;`).
    Keyed(&'static [&'static str]),
}

/// An understood-but-unimplemented directive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ignored {
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
    /// Values that match racoon3's behaviour: no warning for them.
    pub(crate) quiet: &'static [&'static str],
}

const ON: &[&str] = &["on", "enable", "yes"];
const OFF: &[&str] = &["off", "disable", "no"];
const NONE: &[&str] = &[];
const UNLIMITED: &[&str] = &["infinite", "0"];

const fn ignored(name: &'static str, shape: Shape, quiet: &'static [&'static str]) -> Ignored {
    Ignored { name, shape, quiet }
}

pub(crate) const INTERFACE_IGNORED: &[Ignored] = &[ignored("application_bypass", Shape::Bool, ON)];

pub(crate) const RESOLVER_IGNORED: &[Ignored] = &[
    ignored("resolver", Shape::Bool, OFF),
    ignored("nameserver", Shape::AddrList, NONE),
    ignored("dns_query", Shape::AddrList, NONE),
];

pub(crate) const SELECTOR_IGNORED: &[Ignored] = &[
    ignored("order", Shape::Number, NONE),
    ignored("next_header_including", Shape::Strings, NONE),
    ignored("tagged", Shape::Str, NONE),
];

pub(crate) const POLICY_IGNORED: &[Ignored] = &[ignored("install", Shape::Bool, ON)];

pub(crate) const IPSEC_IGNORED: &[Ignored] =
    &[ignored("ipsec_sa_lifetime_byte", Shape::Bytes, UNLIMITED)];

pub(crate) const SA_IGNORED: &[Ignored] = &[
    ignored(
        "ipcomp_alg",
        Shape::EnumList(&["oui", "deflate", "lzs"]),
        NONE,
    ),
    ignored("spi", Shape::Number, NONE),
];

/// Which KMP blocks a directive may appear in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    All,
    V1,
    V2,
    V1V2,
    Kink,
}

impl Scope {
    pub(crate) fn allows(self, block: Self) -> bool {
        self == Self::All
            || self == block
            || (self == Self::V1V2 && matches!(block, Self::V1 | Self::V2))
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::All => "ikev1, ikev2 or kink blocks",
            Self::V1 => "an ikev1 block",
            Self::V2 => "an ikev2 block",
            Self::V1V2 => "ikev1 or ikev2 blocks",
            Self::Kink => "a kink block",
        }
    }
}

/// A directive of the `ikev1` / `ikev2` / `kink` blocks; `ignored: None`
/// means racoon3 implements it (see `remote.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KmpDirective {
    pub(crate) name: &'static str,
    pub(crate) scope: Scope,
    pub(crate) ignored: Option<Ignored>,
}

const fn kmp(name: &'static str, scope: Scope) -> KmpDirective {
    KmpDirective {
        name,
        scope,
        ignored: None,
    }
}

const fn kmp_ignored(
    name: &'static str,
    scope: Scope,
    shape: Shape,
    quiet: &'static [&'static str],
) -> KmpDirective {
    KmpDirective {
        name,
        scope,
        ignored: Some(Ignored { name, shape, quiet }),
    }
}

const PROVIDE: &[&str] = &[
    "addresspool",
    "dns",
    "dhcp",
    "application_version",
    "mip6_home_prefix",
];

const REQUEST: &[&str] = &[
    "ip4",
    "ip6",
    "ip",
    "ip4_dns",
    "ip6_dns",
    "dns",
    "ip4_dhcp",
    "ip6_dhcp",
    "dhcp",
    "application_version",
    "mip6_home_prefix",
];

/// Every directive of the KMP blocks (racoon2's `kmp_common_spec`,
/// `ikev1_spec`, `ikev2_spec`, `kink_spec`).
pub(crate) const KMP_DIRECTIVES: &[KmpDirective] = &[
    kmp("my_id", Scope::All),
    kmp("peers_id", Scope::All),
    kmp("peers_ipaddr", Scope::All),
    kmp("pre_shared_key", Scope::V1V2),
    kmp("kmp_enc_alg", Scope::All),
    kmp("kmp_hash_alg", Scope::All),
    kmp("kmp_prf_alg", Scope::All),
    kmp("kmp_dh_group", Scope::All),
    kmp("kmp_auth_method", Scope::All),
    kmp("kmp_sa_lifetime_time", Scope::All),
    kmp("ipsec_sa_lifetime_time", Scope::V2),
    kmp("dpd_delay", Scope::V1V2),
    kmp("max_retry_to_send", Scope::All),
    kmp("interval_to_send", Scope::All),
    kmp("times_per_send", Scope::All),
    kmp("nonce_size", Scope::All),
    kmp("nat_traversal", Scope::All),
    kmp("need_pfs", Scope::V1V2),
    kmp("cookie_required", Scope::V2),
    kmp("force_udp_encap", Scope::V2),
    kmp("script", Scope::All),
    kmp_ignored(
        "logmode",
        Scope::All,
        Shape::Enum(&["normal", "debug"]),
        &["normal"],
    ),
    kmp_ignored("logfile", Scope::All, Shape::Str, NONE),
    kmp_ignored("passive", Scope::All, Shape::Bool, OFF),
    kmp_ignored("use_coa", Scope::All, Shape::Bool, OFF),
    kmp_ignored("peers_kmp_port", Scope::All, Shape::Str, NONE),
    kmp_ignored("verify_id", Scope::All, Shape::Bool, NONE),
    kmp_ignored("verify_pubkey", Scope::All, Shape::Bool, NONE),
    kmp_ignored("send_cert", Scope::All, Shape::Bool, NONE),
    kmp_ignored("send_cert_req", Scope::All, Shape::Bool, NONE),
    kmp_ignored("initial_contact", Scope::All, Shape::Bool, NONE),
    kmp_ignored("support_proxy", Scope::All, Shape::Bool, OFF),
    kmp_ignored(
        "selector_check",
        Scope::All,
        Shape::Enum(&["obey", "exact"]),
        &["obey"],
    ),
    kmp_ignored(
        "proposal_check",
        Scope::All,
        Shape::Enum(&["obey", "strict", "claim", "exact"]),
        &["obey"],
    ),
    kmp_ignored("random_pad_content", Scope::All, Shape::Bool, NONE),
    kmp_ignored("random_padlen", Scope::All, Shape::Bool, NONE),
    kmp_ignored("max_padlen", Scope::All, Shape::Bytes, NONE),
    kmp_ignored("kmp_sa_lifetime_byte", Scope::All, Shape::Bytes, UNLIMITED),
    kmp_ignored("kmp_sa_nego_time_limit", Scope::All, Shape::Time, NONE),
    kmp_ignored("kmp_sa_grace_period", Scope::All, Shape::Time, NONE),
    kmp_ignored("ipsec_sa_nego_time_limit", Scope::All, Shape::Time, NONE),
    kmp_ignored(
        "mobility_role",
        Scope::All,
        Shape::Enum(&["agent", "mobile", "correspondent"]),
        NONE,
    ),
    kmp_ignored(
        "exchange_mode",
        Scope::V1,
        Shape::Enum(&["main", "aggressive", "base"]),
        NONE,
    ),
    kmp_ignored("my_gssapi_id", Scope::V1, Shape::Str, NONE),
    kmp_ignored("dpd", Scope::V1, Shape::Bool, NONE),
    kmp_ignored("dpd_retry", Scope::V1, Shape::Time, NONE),
    kmp_ignored("dpd_maxfail", Scope::V1, Shape::Number, NONE),
    kmp_ignored("send_peers_id", Scope::V2, Shape::Bool, OFF),
    kmp_ignored("my_public_key", Scope::V1V2, Shape::PubKey, NONE),
    kmp_ignored("peers_public_key", Scope::V1V2, Shape::PubKey, NONE),
    kmp_ignored("provide", Scope::V2, Shape::Keyed(PROVIDE), NONE),
    kmp_ignored("request", Scope::V2, Shape::Keyed(REQUEST), NONE),
    kmp("my_principal", Scope::Kink),
    kmp("peers_principal", Scope::Kink),
    kmp("user_to_user", Scope::Kink),
];

pub(crate) fn kmp_directive(name: &str) -> Option<&'static KmpDirective> {
    KMP_DIRECTIVES.iter().find(|k| k.name == name)
}

pub(crate) fn find(table: &'static [Ignored], name: &str) -> Option<&'static Ignored> {
    table.iter().find(|i| i.name == name)
}

/// Checks an ignored directive and, if `warn` and its value is not quiet,
/// records the warning.
pub(crate) fn ignore(
    cx: &mut Cx<'_>,
    d: &Directive,
    entry: &Ignored,
    warn: bool,
) -> Result<(), ConfigError> {
    check(cx, d, entry.shape)?;
    let quiet = sole_value(cx, d).is_some_and(|v| entry.quiet.contains(&v.as_str()));
    if warn && !quiet {
        cx.warn(
            &d.span,
            format!(
                "'{}' is understood but not implemented by racoon3; ignored",
                entry.name
            ),
        );
    }
    Ok(())
}

fn sole_value(cx: &Cx<'_>, d: &Directive) -> Option<String> {
    match (d.args.as_slice(), &d.block) {
        ([_, v], None) => cx.expand(&v.text, &v.span).ok(),
        _ => None,
    }
}

fn check(cx: &mut Cx<'_>, d: &Directive, shape: Shape) -> Result<(), ConfigError> {
    match shape {
        Shape::Bool => value::single(cx, d, |_, c| value::boolean(c).map(drop)),
        Shape::Time => value::single(cx, d, |_, c| value::time(c).map(drop)),
        Shape::Bytes => value::single(cx, d, |_, c| value::bytes(c).map(drop)),
        Shape::Number => value::single(cx, d, |_, c| value::number(c, "a number").map(drop)),
        Shape::Str => value::single(cx, d, |_, c| c.value("a value").map(drop)),
        Shape::Strings => value::list(cx, d, |_, c| c.value("a value").map(drop)).map(drop),
        Shape::Enum(words) => value::single(cx, d, |_, c| one_of(c, words)),
        Shape::EnumList(words) => value::list(cx, d, |_, c| one_of(c, words)).map(drop),
        Shape::AddrList => value::list(cx, d, |cx, c| addr::addr_spec(cx, c).map(drop)).map(drop),
        Shape::PubKey => value::single(cx, d, |_, c| pubkey(c)),
        Shape::Keyed(words) => keyed(cx, d, words),
    }
}

fn one_of(c: &mut Cursor, words: &[&str]) -> Result<(), ConfigError> {
    let v = c.value("a value")?;
    if words.contains(&v.text.as_str()) {
        return Ok(());
    }
    Err(c.invalid(
        &v.span,
        format!("expected one of {}, found '{}'", words.join(", "), v.text),
    ))
}

fn pubkey(c: &mut Cursor) -> Result<(), ConfigError> {
    one_of(c, &["x509pem", "pkcs12", "ascii"])?;
    c.value("a file name")?;
    if !c.is_done() {
        c.value("a file name")?;
    }
    Ok(())
}

/// `NAME KEY VALUES;` or `NAME { KEY VALUES; KEY { VALUE; ... }; ... };`
fn keyed(cx: &mut Cx<'_>, d: &Directive, words: &[&str]) -> Result<(), ConfigError> {
    let Some(block) = &d.block else {
        return value::single(cx, d, |_, c| {
            one_of(c, words)?;
            drain(c)
        });
    };
    for item in &block.items {
        if !item.name().is_some_and(|n| words.contains(&n)) {
            let found = item.args.first().map_or("{", |a| a.text.as_str());
            let reason = format!("expected one of {}, found '{found}'", words.join(", "));
            return Err(value::invalid(d, &item.span, reason));
        }
        if item.block.is_some() {
            value::list(cx, item, |_, c| drain(c))?;
        } else {
            value::single(cx, item, |_, c| drain(c))?;
        }
    }
    Ok(())
}

/// Accepts whatever values are left (they have been expanded already).
fn drain(c: &mut Cursor) -> Result<(), ConfigError> {
    while !c.is_done() {
        if !c.comma() {
            c.value("a value")?;
        }
    }
    Ok(())
}

/// Where a directive that is misplaced in `context` belongs, if it is a
/// racoon2 directive at all.
pub(crate) fn valid_in(name: &str) -> Option<&'static str> {
    const PLACES: &[(&str, &[&str])] = &[
        (
            "the top level",
            &[
                "include",
                "setval",
                "default",
                "interface",
                "resolver",
                "remote",
                "selector",
                "policy",
                "ipsec",
                "sa",
                "addresspool",
            ],
        ),
        (
            "an interface block",
            &["ike", "kink", "spmd", "spmd_password", "application_bypass"],
        ),
        ("a resolver block", &["nameserver", "dns_query"]),
        (
            "a remote block",
            &["acceptable_kmp", "selector_index", "ikev1", "ikev2"],
        ),
        (
            "a selector block",
            &[
                "direction",
                "src",
                "dst",
                "upper_layer_protocol",
                "policy_index",
                "reqid",
                "order",
                "next_header_including",
                "tagged",
            ],
        ),
        (
            "a policy block",
            &[
                "action",
                "install",
                "remote_index",
                "ipsec_index",
                "ipsec_mode",
                "my_sa_ipaddr",
                "peers_sa_ipaddr",
                "ipsec_level",
            ],
        ),
        (
            "an ipsec block",
            &[
                "ipsec_sa_lifetime_time",
                "ipsec_sa_lifetime_byte",
                "ext_sequence",
                "sa_index",
            ],
        ),
        (
            "an sa block",
            &[
                "sa_protocol",
                "esp_enc_alg",
                "esp_auth_alg",
                "ah_auth_alg",
                "ipcomp_alg",
                "spi",
            ],
        ),
    ];
    if let Some(k) = kmp_directive(name) {
        return Some(k.scope.describe());
    }
    PLACES
        .iter()
        .find(|(_, names)| names.contains(&name))
        .map(|(place, _)| *place)
}

/// The error for a directive `context` does not know: misplaced if racoon2
/// has it elsewhere, unknown otherwise.
pub(crate) fn unknown(d: &Directive, context: &str) -> ConfigError {
    let Some(name) = d.name() else {
        let found = d
            .args
            .first()
            .map_or_else(|| "'{'".to_owned(), |a| format!("\"{}\"", a.text));
        return ConfigError::at(
            d.span.clone(),
            ErrorKind::Syntax {
                expected: "a directive name",
                found,
            },
        );
    };
    let kind = match valid_in(name) {
        Some(valid_in) => ErrorKind::Misplaced {
            name: name.to_owned(),
            context: context.to_owned(),
            valid_in,
        },
        None => ErrorKind::UnknownDirective {
            name: name.to_owned(),
            context: context.to_owned(),
        },
    };
    ConfigError::at(d.span.clone(), kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kmp_directive_has_one_entry() {
        for (i, k) in KMP_DIRECTIVES.iter().enumerate() {
            assert!(
                KMP_DIRECTIVES[i + 1..].iter().all(|o| o.name != k.name),
                "{} twice",
                k.name
            );
        }
    }

    #[test]
    fn scopes() {
        assert!(Scope::All.allows(Scope::Kink));
        assert!(Scope::V1V2.allows(Scope::V2));
        assert!(!Scope::V1V2.allows(Scope::Kink));
        assert!(!Scope::V1.allows(Scope::V2));
        assert_eq!(valid_in("exchange_mode"), Some("an ikev1 block"));
        assert_eq!(valid_in("sa_index"), Some("an ipsec block"));
        assert_eq!(valid_in("frobnicate"), None);
    }
}
