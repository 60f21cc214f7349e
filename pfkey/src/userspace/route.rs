//! Routes that steer protected traffic into the TUN device.
//!
//! As strongSwan's kernel-libipsec does (table 220), the routes live in a
//! table of their own, [`TABLE`], consulted by the rule `not fwmark
//! BYPASS_MARK lookup TABLE` at preference [`PREF`] before `main`; the main
//! table is never modified. Packets from sockets marked with
//! [`BYPASS_MARK`] (the datapath's raw ESP sockets, the NAT-T sockets, the
//! daemons' IKE sockets) skip the table, so routing a peer's own address
//! into the TUN device (transport mode, host-to-host tunnels) does not
//! capture IKE and ESP.
//!
//! **Reverse-path filtering.** Once a peer's address is routed into the
//! TUN device, the peer's IKE and ESP packets arrive on another interface
//! than the route back to it (unmarked lookups find the TUN device), so
//! strict `rp_filter` (1) drops them; loose mode (2) or none (0) is needed
//! on the outer interface. [`install_rules`] warns when `all` is strict. Each outbound SA's
//! destination selectors become prefixes routed `dev TUN`, with `src` set
//! to a local address inside the SA's source selector when the host has
//! one, so locally originated traffic picks the protected address.
//!
//! **Fail closed.** Every prefix routed into the TUN device also gets a
//! `blackhole` route in [`TABLE`] with the worst metric, added and removed
//! with it. If the device goes away while the rule is still in place (the
//! datapath task ended, or the process was killed), the kernel deletes the
//! device routes and the blackhole answers instead: protected traffic is
//! dropped rather than falling through to `main` in cleartext. The next
//! start flushes [`TABLE`] ([`install_rules`]); a clean shutdown removes
//! the rule and flushes it.
//!
//! **First version:** this runs iproute2's `ip` (`ip rule`, `ip route
//! replace/del`) through `tokio::process` instead of speaking rtnetlink;
//! moving to the rtnetlink crate changes only this file.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Stdio;

use crate::Selector;
use crate::userspace::socket::BYPASS_MARK;
use crate::userspace::spd::in_range;

/// The routing table holding the datapath's routes.
pub(crate) const TABLE: u32 = 3948;
/// The preference of the rule `not fwmark BYPASS_MARK lookup TABLE`.
pub(crate) const PREF: u32 = 3948;
/// The metric of the `blackhole` fallback behind every device route: the
/// worst there is, so the device route always wins while it exists.
pub(crate) const FALLBACK_METRIC: u32 = u32::MAX;

/// One prefix routed into the TUN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Prefix {
    pub(crate) addr: IpAddr,
    pub(crate) len: u8,
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Routes shared by SAs (a rekey installs a second SA with the same
/// selectors): a prefix is added with its first user and removed with its
/// last.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    users: HashMap<Prefix, usize>,
}

impl RouteTable {
    /// Counts a user of each of `prefixes`; returns those that are new.
    pub(crate) fn acquire(
        &mut self,
        prefixes: &[(Prefix, Option<IpAddr>)],
    ) -> Vec<(Prefix, Option<IpAddr>)> {
        let mut new = Vec::new();
        for &(p, src) in prefixes {
            let n = self.users.entry(p).or_insert(0);
            *n += 1;
            if *n == 1 {
                new.push((p, src));
            }
        }
        new
    }

    /// Drops a user of each of `prefixes`; returns those now unused.
    pub(crate) fn release(&mut self, prefixes: &[(Prefix, Option<IpAddr>)]) -> Vec<Prefix> {
        let mut gone = Vec::new();
        for (p, _) in prefixes {
            if let Some(n) = self.users.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.users.remove(p);
                    gone.push(*p);
                }
            }
        }
        gone
    }
}

/// The prefixes (and preferred source) to route for an outbound SA's
/// selectors.
pub(crate) fn plan(selectors: &[Selector]) -> Vec<(Prefix, Option<IpAddr>)> {
    let mut out: Vec<(Prefix, Option<IpAddr>)> = Vec::new();
    for sel in selectors {
        let src = local_address_in(sel.src);
        for p in prefixes(sel.dst.0, sel.dst.1) {
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, src));
            }
        }
    }
    out
}

/// The smallest set of prefixes covering the inclusive range `lo..=hi`
/// (empty if the families differ or `lo > hi`).
pub(crate) fn prefixes(lo: IpAddr, hi: IpAddr) -> Vec<Prefix> {
    match (lo, hi) {
        (IpAddr::V4(l), IpAddr::V4(h)) => split(u32::from(l).into(), u32::from(h).into(), 32)
            .map(|(a, len)| Prefix {
                addr: IpAddr::from(std::net::Ipv4Addr::from(a as u32)),
                len,
            })
            .collect(),
        (IpAddr::V6(l), IpAddr::V6(h)) => split(l.into(), h.into(), 128)
            .map(|(a, len)| Prefix {
                addr: IpAddr::from(std::net::Ipv6Addr::from(a)),
                len,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Aligned blocks covering `lo..=hi` in a `bits`-bit space.
fn split(lo: u128, hi: u128, bits: u32) -> impl Iterator<Item = (u128, u8)> {
    let mut next = (lo <= hi).then_some(lo);
    std::iter::from_fn(move || {
        let cur = next?;
        let mut size = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while size > 0 && span(size) > hi - cur {
            size -= 1;
        }
        let last = cur + span(size);
        next = if last >= hi { None } else { Some(last + 1) };
        Some((cur, (bits - size) as u8))
    })
}

/// `2^size - 1`, for `size` up to 128.
fn span(size: u32) -> u128 {
    if size >= 128 {
        u128::MAX
    } else {
        (1u128 << size) - 1
    }
}

/// A local address (any interface) inside `range`, if the host has one.
fn local_address_in(range: (IpAddr, IpAddr)) -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter_map(|ifa| {
            let a = ifa.address?;
            a.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        })
        .find(|&a| in_range(a, range))
}

/// Installs the rule sending every unmarked lookup through [`TABLE`]
/// first, after removing a stale one (a crashed earlier run leaves it
/// behind).
pub(crate) async fn install_rules() -> Result<(), String> {
    remove_rules().await;
    ip(&rule_args("-4")).await?;
    // IPv6 may be disabled on the host; IPv4 alone still works then.
    let _ = ip(&rule_args("-6")).await;
    if std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter")
        .is_ok_and(|v| v.trim() == "1")
    {
        tracing::warn!(
            "net.ipv4.conf.all.rp_filter = 1 (strict): IKE and ESP from peers whose address is \
             routed into the userspace datapath (transport mode, host-to-host) will be dropped; \
             use 2 (loose)"
        );
    }
    Ok(())
}

/// `ip FAMILY rule add pref PREF not fwmark BYPASS_MARK lookup TABLE`.
fn rule_args(family: &str) -> Vec<String> {
    let (pref, mark, table) = (
        PREF.to_string(),
        format!("{BYPASS_MARK:#x}"),
        TABLE.to_string(),
    );
    [
        family, "rule", "add", "pref", &pref, "not", "fwmark", &mark, "lookup", &table,
    ]
    .map(String::from)
    .to_vec()
}

/// Removes the rules and flushes the table (best effort).
pub(crate) async fn remove_rules() {
    for family in ["-4", "-6"] {
        while ip(&[family, "rule", "del", "pref", &PREF.to_string()])
            .await
            .is_ok()
        {}
        let _ = ip(&[family, "route", "flush", "table", &TABLE.to_string()]).await;
    }
}

/// The blocking twin of [`remove_rules`], for `Drop`.
pub(crate) fn remove_rules_blocking() {
    for family in ["-4", "-6"] {
        let pref = PREF.to_string();
        for _ in 0..8 {
            if !ip_blocking(&[family, "rule", "del", "pref", &pref]) {
                break;
            }
        }
        ip_blocking(&[family, "route", "flush", "table", &TABLE.to_string()]);
    }
}

/// Routes `p` into the TUN device `dev`, behind its fail-closed fallback
/// (see [`add_commands`]).
pub(crate) async fn add(dev: &str, p: Prefix, src: Option<IpAddr>) -> Result<(), String> {
    for args in add_commands(dev, p, src) {
        ip(&args).await?;
    }
    Ok(())
}

/// Removes both routes of `p` (best effort: the kernel has already
/// deleted the device route if the TUN device is gone).
pub(crate) async fn del(dev: &str, p: Prefix) {
    for args in del_commands(dev, p) {
        let _ = ip(&args).await;
    }
}

/// The `ip` commands that route `p` into `dev`: first a device-independent
/// `blackhole` route with the worst metric, then `p dev DEV [src SRC]`
/// (default metric, so it wins while the device exists).
///
/// The fallback is what keeps protected traffic from leaking: when the TUN
/// device disappears (the datapath task ended, the process was killed) the
/// kernel deletes the device routes, but the rule sending lookups to
/// [`TABLE`] stays, and without the blackhole the lookup would fall through
/// to `main` and the packets leave in cleartext. The blackhole is added
/// first so that no moment has the device route without it.
pub(crate) fn add_commands(dev: &str, p: Prefix, src: Option<IpAddr>) -> [Vec<String>; 2] {
    let mut route = route_args("replace", p);
    route.splice(3..3, ["dev".to_owned(), dev.to_owned()]);
    if let Some(s) = src {
        route.extend(["src".to_owned(), s.to_string()]);
    }
    [fallback_args("replace", p), route]
}

/// The `ip` commands that remove what [`add_commands`] added, the device
/// route first.
pub(crate) fn del_commands(dev: &str, p: Prefix) -> [Vec<String>; 2] {
    let mut route = route_args("del", p);
    route.splice(3..3, ["dev".to_owned(), dev.to_owned()]);
    [route, fallback_args("del", p)]
}

/// `ip route VERB PREFIX table TABLE`.
fn route_args(verb: &str, p: Prefix) -> Vec<String> {
    ["route", verb, &p.to_string(), "table", &TABLE.to_string()]
        .map(String::from)
        .to_vec()
}

/// `ip route VERB blackhole PREFIX table TABLE metric FALLBACK_METRIC`.
fn fallback_args(verb: &str, p: Prefix) -> Vec<String> {
    let mut args = route_args(verb, p);
    args.insert(2, "blackhole".to_owned());
    args.extend(["metric".to_owned(), FALLBACK_METRIC.to_string()]);
    args
}

async fn ip<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<(), String> {
    let text = || {
        args.iter()
            .map(|a| a.as_ref().to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let out = tokio::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("ip {}: {e}", text()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            text(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_blocking(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        let (lo, hi) = s.split_once('-').expect("range");
        prefixes(lo.parse().expect("lo"), hi.parse().expect("hi"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn ranges_become_the_fewest_prefixes() {
        assert_eq!(p("203.0.113.0-203.0.113.255"), ["203.0.113.0/24"]);
        assert_eq!(p("203.0.113.1-203.0.113.1"), ["203.0.113.1/32"]);
        assert_eq!(p("0.0.0.0-255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            p("198.51.100.1-198.51.100.6"),
            [
                "198.51.100.1/32",
                "198.51.100.2/31",
                "198.51.100.4/31",
                "198.51.100.6/32"
            ]
        );
        assert_eq!(p("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"]);
        assert_eq!(
            p("2001:db8:b::-2001:db8:b:ffff:ffff:ffff:ffff:ffff"),
            ["2001:db8:b::/48"]
        );
        assert!(p("203.0.113.9-203.0.113.1").is_empty());
        assert!(p("203.0.113.1-2001:db8::1").is_empty());
    }

    #[test]
    fn prefixes_cover_exactly_the_range() {
        // Exhaustive over a small corner of the IPv4 space.
        for lo in 0u32..40 {
            for hi in lo..40 {
                let got = prefixes(
                    std::net::Ipv4Addr::from(lo).into(),
                    std::net::Ipv4Addr::from(hi).into(),
                );
                let mut covered = Vec::new();
                for pre in got {
                    let IpAddr::V4(a) = pre.addr else {
                        panic!("v4")
                    };
                    let a = u32::from(a);
                    let size = 1u32 << (32 - u32::from(pre.len));
                    assert_eq!(a % size, 0, "aligned");
                    covered.extend(a..a + size);
                }
                assert_eq!(covered, (lo..=hi).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn shared_prefixes_are_added_once_and_removed_with_the_last_user() {
        let mut t = RouteTable::default();
        let a = prefixes(
            "203.0.113.0".parse().expect("v4"),
            "203.0.113.255".parse().expect("v4"),
        );
        let plan: Vec<_> = a.iter().map(|&p| (p, None)).collect();
        assert_eq!(t.acquire(&plan).len(), 1);
        assert!(t.acquire(&plan).is_empty());
        assert!(t.release(&plan).is_empty());
        assert_eq!(t.release(&plan), a);
    }

    #[test]
    fn every_device_route_comes_with_a_blackhole_fallback() {
        let lines = |cmds: [Vec<String>; 2]| cmds.map(|c| c.join(" "));
        let net = prefixes(
            "203.0.113.0".parse().expect("v4"),
            "203.0.113.255".parse().expect("v4"),
        )[0];
        let src = Some("198.51.100.1".parse().expect("v4"));
        assert_eq!(
            lines(add_commands("r3esp0", net, src)),
            [
                "route replace blackhole 203.0.113.0/24 table 3948 metric 4294967295",
                "route replace 203.0.113.0/24 dev r3esp0 table 3948 src 198.51.100.1",
            ]
        );
        assert_eq!(
            lines(del_commands("r3esp0", net)),
            [
                "route del 203.0.113.0/24 dev r3esp0 table 3948",
                "route del blackhole 203.0.113.0/24 table 3948 metric 4294967295",
            ]
        );
        let host6 = Prefix {
            addr: "2001:db8::2".parse().expect("v6"),
            len: 128,
        };
        assert_eq!(
            lines(add_commands("r3esp0", host6, None)),
            [
                "route replace blackhole 2001:db8::2/128 table 3948 metric 4294967295",
                "route replace 2001:db8::2/128 dev r3esp0 table 3948",
            ]
        );
    }

    #[test]
    fn the_rule_skips_marked_packets() {
        assert_eq!(
            rule_args("-6").join(" "),
            "-6 rule add pref 3948 not fwmark 0x3948 lookup 3948"
        );
    }

    #[test]
    fn loopback_is_found_as_a_local_source() {
        let lo = "127.0.0.1".parse().expect("v4");
        assert_eq!(local_address_in((lo, lo)), Some(lo));
        let doc = "203.0.113.77".parse().expect("v4");
        assert_eq!(local_address_in((doc, doc)), None);
    }
}
