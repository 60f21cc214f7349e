//! From racoon2.conf's `selector`/`policy` blocks to the policies spmd
//! installs: one [`PolicySpec`] per selector, in file order, with the
//! remote whose key exchange serves it.
//!
//! racoon2's semantics are kept: each selector is one policy in its own
//! direction (a tunnel needs an `outbound` and an `inbound` selector), the
//! policy's `action` says protect (`auto_ipsec`), bypass (`none`) or drop
//! (`discard`), and its `my_sa_ipaddr`/`peers_sa_ipaddr` are the tunnel's
//! endpoints. A `peers_sa_ipaddr IP_RW` (road warrior) policy has no
//! endpoint until a peer connects: iked asks for its policies, built from
//! the negotiated CHILD SA, when it installs the SAs (a dynamic policy,
//! racoon2's POLICY ADD), and the plan only notes it.

use std::net::IpAddr;

use libracoon::config::{self, Config, Direction, IpPrefix, Kmp, PeerAddr};
use pfkey::{IpsecMode, PolicyAction, PolicySpec, SaDirection, Selector};

/// One policy spmd installs, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The `selector` block.
    pub source: String,
    /// The `remote` block that negotiates its SAs (`protect` only).
    pub remote: Option<String>,
    /// The policy itself.
    pub spec: PolicySpec,
}

/// The plan, with what the operator should know.
#[derive(Debug, Default)]
pub struct Plan {
    /// Policies to install, in file order.
    pub policies: Vec<Planned>,
    /// Non-fatal notes for the log.
    pub notes: Vec<String>,
}

impl Plan {
    /// The planned `protect` policy with this request ID, if any.
    pub fn by_reqid(&self, reqid: u32) -> Option<&Planned> {
        self.policies
            .iter()
            .find(|p| matches!(p.spec.action, PolicyAction::Protect { reqid: r, .. } if r == reqid))
    }
}

/// Builds the plan.
///
/// # Errors
/// A message naming the selector or policy block and what to fix.
pub fn plan(config: &Config) -> Result<Plan, String> {
    let mut out = Plan::default();
    for s in &config.selectors {
        let Some(policy) = config.policy(&s.policy_index) else {
            return Err(format!(
                "selector {}: policy_index {} names no policy block",
                s.name, s.policy_index
            ));
        };
        let direction = match s.direction {
            Direction::Outbound => SaDirection::Outbound,
            Direction::Inbound => SaDirection::Inbound,
        };
        let selector = Selector {
            src: range(s.src),
            dst: range(s.dst),
            proto: s.upper_layer_protocol.unwrap_or(0),
            src_port: s.src_port.unwrap_or(0),
            dst_port: s.dst_port.unwrap_or(0),
        };
        let mode = match policy.ipsec_mode {
            Some(config::IpsecMode::Transport) => IpsecMode::Transport,
            _ => IpsecMode::Tunnel,
        };
        let (action, remote, tunnel) = match policy.action {
            config::PolicyAction::None => (PolicyAction::Bypass, None, None),
            config::PolicyAction::Discard => (PolicyAction::Discard, None, None),
            config::PolicyAction::AutoIpsec | config::PolicyAction::StaticIpsec => {
                let Some(remote_name) = policy.remote_index.as_deref() else {
                    return Err(format!(
                        "policy {}: action auto_ipsec needs a remote_index (selector {})",
                        policy.name, s.name
                    ));
                };
                let Some(remote) = config.remote(remote_name) else {
                    return Err(format!(
                        "policy {}: remote_index {remote_name} names no remote block",
                        policy.name
                    ));
                };
                let reqid = match s.reqid {
                    Some(r) => r,
                    None => config
                        .default_reqid(remote_name)
                        .ok_or_else(|| format!("remote {remote_name}: too many remotes"))?,
                };
                let tunnel = match mode {
                    IpsecMode::Transport => None,
                    IpsecMode::Tunnel => match endpoints(config, policy, remote) {
                        // (local, remote) in both directions: the backends
                        // orient the template themselves.
                        Some(ends) => Some(ends),
                        None => {
                            out.notes.push(format!(
                                    "selector {}: policy {} has no fixed peer address (IP_RW): its policies \
                                     are added when a peer's CHILD SA is installed, and removed with it",
                                    s.name, policy.name
                                ));
                            continue;
                        }
                    },
                };
                (
                    PolicyAction::Protect { reqid, mode },
                    Some(remote_name.to_owned()),
                    tunnel,
                )
            }
        };
        let nd = neighbour_discovery_bypass(&selector, direction, action);
        out.policies.push(Planned {
            source: s.name.clone(),
            remote,
            spec: PolicySpec {
                selector,
                direction,
                action,
                tunnel,
            },
        });
        out.policies.extend(nd.into_iter().map(|spec| Planned {
            source: format!("{} (ND)", s.name),
            remote: None,
            spec,
        }));
    }
    Ok(out)
}

/// ICMPv6 types of Neighbor Discovery (RFC 4861): router solicitation and
/// advertisement, neighbour solicitation and advertisement, redirect.
const ND_TYPES: [u16; 5] = [133, 134, 135, 136, 137];

/// An IPv6 `protect` policy for every protocol also catches the Neighbor
/// Discovery between the two hosts (a transport-mode pair's unicast NS/NA),
/// and ND cannot wait for an SA that needs ND to be negotiated. So each gets
/// bypass policies for the ND message types (ICMPv6 type in the source-port
/// field, as XFRM and PF_KEY match it), which rank as more specific. The
/// userspace datapath does not match ICMP types; there ND rides in its SA.
fn neighbour_discovery_bypass(
    selector: &Selector,
    direction: SaDirection,
    action: PolicyAction,
) -> Vec<PolicySpec> {
    let protects_all_of_v6 = selector.src.0.is_ipv6()
        && selector.proto == 0
        && matches!(action, PolicyAction::Protect { .. });
    if !protects_all_of_v6 {
        return Vec::new();
    }
    ND_TYPES
        .iter()
        .map(|&t| PolicySpec {
            selector: Selector {
                proto: 58,
                src_port: t,
                ..selector.clone()
            },
            direction,
            action: PolicyAction::Bypass,
            tunnel: None,
        })
        .collect()
}

/// The daemon that negotiates for `remote`: the first of its
/// `acceptable_kmp` (racoon2's default is IKEv2).
pub fn kmp_daemon(config: &Config, remote: &str) -> &'static str {
    let first = config
        .remote(remote)
        .and_then(|r| r.acceptable_kmp.first().copied());
    match first {
        Some(Kmp::Kink) => "kinkd",
        Some(Kmp::Ikev1 | Kmp::Ikev2) | None => "iked",
    }
}

/// Tunnel endpoints (local, peer): the policy's `my_sa_ipaddr` and
/// `peers_sa_ipaddr`, else the interface address of the family and the
/// remote's `peers_ipaddr`. `None` when the peer is not fixed.
fn endpoints(
    config: &Config,
    policy: &config::Policy,
    remote: &config::Remote,
) -> Option<(IpAddr, IpAddr)> {
    // IP_RW (the unspecified address) means "learned at negotiation".
    let peer = match policy.peers_sa_ipaddr {
        Some(a) if a.is_unspecified() => return None,
        Some(a) => a,
        None => match remote.ikev2.peers_ipaddr {
            Some(PeerAddr::Addr { addr, .. }) => addr,
            _ => return None,
        },
    };
    let local = policy
        .my_sa_ipaddr
        .filter(|a| !a.is_unspecified())
        .or_else(|| {
            config
                .interface
                .ike
                .iter()
                .map(|l| l.addr)
                .find(|a| a.is_ipv4() == peer.is_ipv4() && !a.is_unspecified())
        })?;
    Some((local, peer))
}

/// A prefix as the inclusive range the kernel types use.
fn range(p: IpPrefix) -> (IpAddr, IpAddr) {
    match p.addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX.checked_shl(32 - u32::from(p.len)).unwrap_or(0);
            (
                IpAddr::from((bits & mask).to_be_bytes()),
                IpAddr::from((bits | !mask).to_be_bytes()),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX.checked_shl(128 - u32::from(p.len)).unwrap_or(0);
            (
                IpAddr::from((bits & mask).to_be_bytes()),
                IpAddr::from((bits | !mask).to_be_bytes()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
interface { ike { 192.0.2.1; }; };
remote other { acceptable_kmp { kink; }; kink { my_principal "a"; peers_principal "b"; }; };
remote peer {
  acceptable_kmp { ikev2; };
  ikev2 {
    peers_ipaddr 192.0.2.2 port 500; pre_shared_key "/dev/null";
    kmp_enc_alg { aes128_gcm16; }; kmp_prf_alg { hmac_sha2_256; }; kmp_dh_group { curve25519; };
    kmp_auth_method { psk; };
  };
};
selector out { direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24; upper_layer_protocol "any"; policy_index pol; };
selector in { direction inbound; src 203.0.113.0/24; dst 198.51.100.0/24; upper_layer_protocol "any"; policy_index pol; };
selector web { direction outbound; src 198.51.100.0/24; dst 203.0.113.80 port 443; upper_layer_protocol "tcp"; policy_index skip; reqid 9; };
selector rw { direction outbound; src 198.51.100.0/24; dst 0.0.0.0/0; upper_layer_protocol "any"; policy_index roam; };
policy pol { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { ipsec_esp; }; ipsec_level require; my_sa_ipaddr 192.0.2.1; peers_sa_ipaddr 192.0.2.2; };
policy roam { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { ipsec_esp; }; ipsec_level require; my_sa_ipaddr 192.0.2.1; peers_sa_ipaddr IP_RW; };
policy skip { action none; };
ipsec ipsec_esp { sa_index esp_01; };
sa esp_01 { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };
"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn the_plan() -> Plan {
        let loaded = config::parse_str(CONF, "t.conf", &|_| None).unwrap();
        plan(&loaded.config).unwrap()
    }

    #[test]
    fn each_selector_becomes_one_policy_in_its_direction() {
        let p = the_plan();
        let names: Vec<&str> = p.policies.iter().map(|x| x.source.as_str()).collect();
        assert_eq!(names, ["out", "in", "web"]);
        let out = &p.policies[0].spec;
        assert_eq!(out.direction, SaDirection::Outbound);
        assert_eq!(out.selector.src, (ip("198.51.100.0"), ip("198.51.100.255")));
        assert_eq!(out.tunnel, Some((ip("192.0.2.1"), ip("192.0.2.2"))));
        // reqid 2: `peer` is the second remote in the file, as iked counts.
        assert_eq!(
            out.action,
            PolicyAction::Protect {
                reqid: 2,
                mode: IpsecMode::Tunnel
            }
        );
        let inb = &p.policies[1].spec;
        assert_eq!(inb.direction, SaDirection::Inbound);
        assert_eq!(
            inb.tunnel,
            Some((ip("192.0.2.1"), ip("192.0.2.2"))),
            "(local, remote)"
        );
        assert_eq!(p.by_reqid(2).map(|x| x.source.as_str()), Some("out"));
    }

    #[test]
    fn bypass_keeps_ports_and_protocol() {
        let p = the_plan();
        let web = &p.policies[2].spec;
        assert_eq!(web.action, PolicyAction::Bypass);
        assert_eq!((web.selector.proto, web.selector.dst_port), (6, 443));
        assert_eq!(web.selector.dst, (ip("203.0.113.80"), ip("203.0.113.80")));
    }

    #[test]
    fn road_warrior_policies_are_noted_not_installed() {
        let p = the_plan();
        assert!(
            p.notes.iter().any(|n| n.contains("selector rw")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn ipv6_protect_policies_let_neighbour_discovery_pass() {
        let sel = Selector::ranges(
            (ip("2001:db8::1"), ip("2001:db8::1")),
            (ip("2001:db8::2"), ip("2001:db8::2")),
        );
        let protect = PolicyAction::Protect {
            reqid: 1,
            mode: IpsecMode::Transport,
        };
        let nd = neighbour_discovery_bypass(&sel, SaDirection::Outbound, protect);
        let types: Vec<u16> = nd.iter().map(|p| p.selector.src_port).collect();
        assert_eq!(types, [133, 134, 135, 136, 137]);
        assert!(
            nd.iter()
                .all(|p| p.action == PolicyAction::Bypass && p.selector.proto == 58)
        );
        let v4 = Selector::ranges(
            (ip("192.0.2.1"), ip("192.0.2.1")),
            (ip("192.0.2.2"), ip("192.0.2.2")),
        );
        assert!(neighbour_discovery_bypass(&v4, SaDirection::Outbound, protect).is_empty());
        let tcp = Selector { proto: 6, ..sel };
        assert!(neighbour_discovery_bypass(&tcp, SaDirection::Outbound, protect).is_empty());
    }

    #[test]
    fn acquire_goes_to_the_first_acceptable_kmp() {
        let loaded = config::parse_str(CONF, "t.conf", &|_| None).unwrap();
        assert_eq!(kmp_daemon(&loaded.config, "peer"), "iked");
        assert_eq!(kmp_daemon(&loaded.config, "other"), "kinkd");
    }

    #[test]
    fn a_selector_without_its_policy_is_an_error_naming_it() {
        let conf =
            "selector s { direction outbound; src 192.0.2.1; dst 192.0.2.2; policy_index nope; };";
        let loaded = config::parse_str(conf, "t.conf", &|_| None);
        if let Ok(loaded) = loaded {
            let err = plan(&loaded.config).unwrap_err();
            assert!(err.contains("selector s") && err.contains("nope"), "{err}");
        }
    }
}
