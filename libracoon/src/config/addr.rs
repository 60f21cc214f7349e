//! Addresses, ports and protocols as racoon2 writes them: `ADDR[/LEN]
//! [port PORT]`, `unix "PATH"`, the `MY_IP*` / `IP_ANY` / `IP_RW` macros,
//! service and protocol names.

use std::net::IpAddr;

use super::ConfigError;
use super::lexer::Span;
use super::value::{Cursor, Cx, Val, parse_number};

/// racoon2's address macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    MyIp,
    MyIpv4,
    MyIpv6,
    MyIpv6Global,
    MyIpv6LinkLocal,
}

/// The host part of an address specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A literal, with `/len` if written.
    Ip(IpAddr, Option<u8>),
    /// `MY_IP...`, with `%ifname` if written.
    Macro(Macro, Option<String>),
    /// `IP_RW`.
    RoadWarrior,
    /// `IP_ANY`.
    Any,
    /// `unix "PATH"`.
    Unix(String),
}

/// The port part of an address specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    /// No `port` given.
    Unset,
    /// `port any`.
    Any,
    /// `port N`.
    Num(u16),
}

impl Port {
    pub(crate) fn number(self) -> Option<u16> {
        match self {
            Self::Num(n) => Some(n),
            Self::Unset | Self::Any => None,
        }
    }
}

/// `ADDR [port PORT] | unix PATH`: returns the host, its span and the port.
pub(crate) fn addr_spec(
    cx: &mut Cx<'_>,
    c: &mut Cursor,
) -> Result<(Host, Span, Port), ConfigError> {
    if c.keyword("unix") {
        let v = c.value("a socket path")?;
        return Ok((Host::Unix(v.text), v.span, Port::Unset));
    }
    let v = c.value("an address")?;
    let host = host(cx, c, &v)?;
    let port = if c.keyword("port") {
        port(c)?
    } else {
        Port::Unset
    };
    Ok((host, v.span, port))
}

fn host(cx: &mut Cx<'_>, c: &Cursor, v: &Val) -> Result<Host, ConfigError> {
    let (base, ifname) = match v.text.split_once('%') {
        Some((b, i)) => (b, Some(i.to_owned())),
        None => (v.text.as_str(), None),
    };
    let mac = match base {
        "IP_RW" => return Ok(Host::RoadWarrior),
        "IP_ANY" => return Ok(Host::Any),
        "MY_IP" => Some(Macro::MyIp),
        "MY_IPV4" => Some(Macro::MyIpv4),
        "MY_IPV6" => Some(Macro::MyIpv6),
        "MY_IPV6_GLOBAL" => Some(Macro::MyIpv6Global),
        "MY_IPV6_LINKLOCAL" => Some(Macro::MyIpv6LinkLocal),
        _ => None,
    };
    if let Some(m) = mac {
        return Ok(Host::Macro(m, ifname));
    }
    let (addr, len) = ip_prefix(c, v)?;
    if let Some(zone) = ifname.filter(|_| addr.is_ipv6()) {
        cx.warn(
            &v.span,
            format!("zone '%{zone}' in '{}' is ignored", v.text),
        );
    }
    Ok(Host::Ip(addr, len))
}

/// `ADDR[%zone][/LEN]` as a literal address and optional prefix length.
fn ip_prefix(c: &Cursor, v: &Val) -> Result<(IpAddr, Option<u8>), ConfigError> {
    let (addr_text, len_text) = match v.text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v.text.as_str(), None),
    };
    let addr_text = match addr_text.split_once('%') {
        Some((a, _)) if a.contains(':') => a,
        _ => addr_text,
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| {
        c.invalid(
            &v.span,
            format!(
                "'{}' is not an IP address (racoon3 does not resolve host or interface names)",
                v.text
            ),
        )
    })?;
    let len = match len_text {
        None => None,
        Some(l) => Some(prefix_len(c, v, addr, l)?),
    };
    Ok((addr, len))
}

fn prefix_len(c: &Cursor, v: &Val, addr: IpAddr, text: &str) -> Result<u8, ConfigError> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match text.parse::<u8>() {
        Ok(n) if n <= max && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(c.invalid(
            &v.span,
            format!("bad prefix length '/{text}' (at most {max})"),
        )),
    }
}

/// A few service names from `/etc/services` that IPsec configurations use.
/// racoon2 consulted the system database; racoon3 does not read it.
const SERVICES: &[(&str, u16)] = &[
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("http", 80),
    ("ntp", 123),
    ("https", 443),
    ("isakmp", 500),
    ("kink", 910),
    ("l2tp", 1701),
    ("ipsec-nat-t", 4500),
];

/// `N | any | SERVICE`.
pub(crate) fn port(c: &mut Cursor) -> Result<Port, ConfigError> {
    let v = c.value("a port")?;
    if v.text == "any" {
        return Ok(Port::Any);
    }
    if let Some(n) = parse_number(&v.text) {
        return u16::try_from(n)
            .map(Port::Num)
            .map_err(|_| c.invalid(&v.span, format!("port {n} is out of range")));
    }
    SERVICES
        .iter()
        .find(|(name, _)| *name == v.text)
        .map(|(_, n)| Port::Num(*n))
        .ok_or_else(|| {
            c.invalid(
                &v.span,
                format!("unknown service '{}'; write the port number", v.text),
            )
        })
}

/// Protocol names from `/etc/protocols` that selectors use.
const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("ipip", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmp6", 58),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("pim", 103),
    ("ipcomp", 108),
    ("l2tp", 115),
    ("sctp", 132),
    ("mh", 135),
    ("ipv6-mh", 135),
    ("udplite", 136),
];

/// `any | N | NAME`; `None` = any.
pub(crate) fn protocol(c: &mut Cursor) -> Result<Option<u8>, ConfigError> {
    let v = c.value("a protocol")?;
    if v.text == "any" {
        return Ok(None);
    }
    if let Some(n) = parse_number(&v.text) {
        return u8::try_from(n)
            .map(Some)
            .map_err(|_| c.invalid(&v.span, format!("protocol {n} is out of range")));
    }
    PROTOCOLS
        .iter()
        .find(|(name, _)| *name == v.text)
        .map(|(_, n)| Some(*n))
        .ok_or_else(|| {
            c.invalid(
                &v.span,
                format!("unknown protocol '{}'; write its number", v.text),
            )
        })
}

/// A bare IP address (no prefix, no port) for places that take one value.
pub(crate) fn ip_addr(cx: &mut Cx<'_>, c: &mut Cursor) -> Result<(Host, Span), ConfigError> {
    let v = c.value("an address")?;
    let h = host(cx, c, &v)?;
    if let Host::Ip(_, Some(_)) = h {
        return Err(c.invalid(&v.span, "a prefix length is not allowed here".to_owned()));
    }
    Ok((h, v.span))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::lexer::lex;
    use crate::config::parser::parse;
    use crate::config::value::tests::{env, with_first};

    #[test]
    fn address_specs() {
        let (h, _, p) = with_first("d 2001:db8::1 port 500;", addr_spec).unwrap();
        assert_eq!(h, Host::Ip("2001:db8::1".parse().unwrap(), None));
        assert_eq!(p, Port::Num(500));
        let (h, _, p) = with_first("d MY_IP%eth0 port any;", addr_spec).unwrap();
        assert_eq!(h, Host::Macro(Macro::MyIp, Some("eth0".to_owned())));
        assert_eq!(p, Port::Any);
        let (h, _, _) = with_first("d unix \"/run/spmif\";", addr_spec).unwrap();
        assert_eq!(h, Host::Unix("/run/spmif".to_owned()));
        let (h, _, p) = with_first("d 10.1.0.0/16 port isakmp;", addr_spec).unwrap();
        assert_eq!(h, Host::Ip("10.1.0.0".parse().unwrap(), Some(16)));
        assert_eq!(p, Port::Num(500));
        assert_eq!(
            with_first("d IP_RW;", addr_spec).unwrap().0,
            Host::RoadWarrior
        );
        let e = with_first("d gw.example.com;", addr_spec).unwrap_err();
        assert!(e.to_string().contains("does not resolve host"), "{e}");
        let e = with_first("d 10.0.0.0/33;", addr_spec).unwrap_err();
        assert!(e.to_string().contains("bad prefix length '/33'"), "{e}");
        let e = with_first("d ::1 port 70000;", addr_spec).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = with_first("d ::1 port echo;", addr_spec).unwrap_err();
        assert!(e.to_string().contains("unknown service"), "{e}");
    }

    #[test]
    fn ipv6_zone_is_dropped_with_a_warning() {
        let file: Arc<str> = Arc::from("v.conf");
        let ds = parse(&lex("d fe80::1%eth0;", &file).unwrap()).unwrap();
        let mut cx = Cx::new(&env);
        let d = &ds[0];
        let mut c = Cursor::new(&cx, "d", &d.args[1..], &d.span).unwrap();
        let (h, _, _) = addr_spec(&mut cx, &mut c).unwrap();
        assert_eq!(h, Host::Ip("fe80::1".parse().unwrap(), None));
        assert_eq!(cx.warnings.len(), 1);
        assert_eq!(
            cx.warnings[0].to_string(),
            "v.conf:1: zone '%eth0' in 'fe80::1%eth0' is ignored"
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(with_first("d any;", |_, c| protocol(c)).unwrap(), None);
        assert_eq!(with_first("d tcp;", |_, c| protocol(c)).unwrap(), Some(6));
        assert_eq!(
            with_first("d \"ipv6-icmp\";", |_, c| protocol(c)).unwrap(),
            Some(58)
        );
        assert_eq!(with_first("d 132;", |_, c| protocol(c)).unwrap(), Some(132));
        assert!(with_first("d 256;", |_, c| protocol(c)).is_err());
        assert!(with_first("d bogus;", |_, c| protocol(c)).is_err());
    }
}
