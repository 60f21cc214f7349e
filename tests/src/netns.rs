//! Test hosts as network namespaces, veth links between them, and the two-host lab.
//!
//! The standard topology (strongswan-in-netns notes), addresses existing only inside the
//! namespaces:
//!
//! ```text
//! netns A                                      netns B
//! lo  198.51.100.1/32, 2001:db8:a::1/128       lo  203.0.113.1/32, 2001:db8:b::1/128  ("LANs")
//! veth-a 192.0.2.1/24, 2001:db8::1/64  <---->  veth-b 192.0.2.2/24, 2001:db8::2/64
//! ```
//!
//! IPv6 addresses are added with `nodad` and `accept_dad=0`, so they are usable at once
//! (gotcha 5: otherwise they stay tentative for 1-2 s).

use std::ffi::OsStr;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::lab::{Entry, LabDir, ledger_add, ledger_remove, unique_name};
use crate::process::{find_in_path, run_checked, wait_for};
use crate::strongswan::{CHARON, PLUGIN_DIR};
use crate::{Error, Result};

/// A network namespace, deleted (`ip netns del`) when the last clone drops.
///
/// Clones share the namespace: guards of processes running inside hold one, so the namespace
/// is deleted only after they have stopped.
#[derive(Clone, Debug)]
pub struct Netns(Arc<NetnsInner>);

#[derive(Debug)]
struct NetnsInner {
    name: String,
}

impl Netns {
    /// Creates a namespace named `{prefix}{pid}-{n}` with `lo` up and IPv6 DAD off.
    ///
    /// A stale namespace with the same name (a crashed earlier process with the same PID) is
    /// deleted first.
    ///
    /// # Errors
    /// `ip netns add` or the set-up commands fail (not root?).
    pub fn create(prefix: &str) -> Result<Self> {
        let name = unique_name(prefix);
        if Self::exists(&name) {
            let _ = run_checked(Command::new("ip").args(["netns", "del", &name]));
        }
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        ledger_add(&Entry::Netns(name.clone()));
        let ns = Self(Arc::new(NetnsInner { name }));
        ns.ip(&["link", "set", "lo", "up"])?;
        for conf in ["all", "default"] {
            ns.set_sysctl(&format!("net/ipv6/conf/{conf}/accept_dad"), "0")?;
        }
        Ok(ns)
    }

    /// Whether a namespace called `name` exists.
    pub fn exists(name: &str) -> bool {
        Path::new("/run/netns").join(name).exists()
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name()]).arg(program);
        cmd
    }

    /// Runs `program args..` inside the namespace; returns its stdout.
    ///
    /// # Errors
    /// The command fails; the error carries its stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        run_checked(self.command(program).args(args))
    }

    /// Runs `ip -n NAME args..`; returns its stdout.
    ///
    /// # Errors
    /// The command fails; the error carries its stderr.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run_checked(Command::new("ip").args(["-n", self.name()]).args(args))
    }

    /// Writes `value` to `/proc/sys/{key}` inside the namespace (`key` uses slashes).
    ///
    /// # Errors
    /// The write fails.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{key}");
        self.run(
            "sh",
            &["-c", r#"printf '%s\n' "$1" > "$2""#, "sh", value, &path],
        )
        .map(drop)
    }

    /// Adds `addr` to `lo` (the host's "LAN" address; IPv6 without DAD).
    ///
    /// # Errors
    /// `ip addr add` fails.
    pub fn add_loopback_addr(&self, addr: IfAddr) -> Result<()> {
        self.add_addr("lo", addr)
    }

    /// Adds `addr` to interface `ifname` (IPv6 with `nodad`).
    ///
    /// # Errors
    /// `ip addr add` fails.
    pub fn add_addr(&self, ifname: &str, addr: IfAddr) -> Result<()> {
        let text = addr.to_string();
        let mut args = vec!["addr", "add", text.as_str(), "dev", ifname];
        if addr.addr.is_ipv6() {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Removes leftover `ip rule` entries with preference `pref` (IPv4 and IPv6).
    ///
    /// charon's libipsec adds `220: from all lookup 220`; after a SIGKILL the rule survives
    /// (gotcha 13).
    pub fn flush_rule_pref(&self, pref: u32) {
        let pref = pref.to_string();
        for family in ["-4", "-6"] {
            // Bounded: each success removes one rule.
            for _ in 0..16 {
                if self.ip(&[family, "rule", "del", "pref", &pref]).is_err() {
                    break;
                }
            }
        }
    }
}

impl Drop for NetnsInner {
    fn drop(&mut self) {
        match run_checked(Command::new("ip").args(["netns", "del", &self.name])) {
            Ok(_) => ledger_remove(&Entry::Netns(self.name.clone())),
            Err(e) => eprintln!("warning: cannot delete netns {}: {e}", self.name),
        }
    }
}

/// An interface address with prefix length, displayed as `addr/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl IfAddr {
    /// `addr/prefix_len`.
    pub fn new(addr: impl Into<IpAddr>, prefix_len: u8) -> Self {
        Self {
            addr: addr.into(),
            prefix_len,
        }
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// One end of a [`VethPair`].
#[derive(Clone, Copy, Debug)]
pub struct VethEnd<'a> {
    /// The namespace the interface lives in.
    pub netns: &'a Netns,
    /// The interface name (at most 15 bytes; unique only within its namespace).
    pub ifname: &'a str,
    /// Addresses to add.
    pub addrs: &'a [IfAddr],
}

/// A veth link between two namespaces.
///
/// Both ends are created directly inside their namespaces (nothing appears in the root
/// namespace, so names cannot collide with other tests). The link disappears with either
/// namespace, so this type needs no `Drop`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethPair {
    /// Interface name in the first namespace.
    pub a: String,
    /// Interface name in the second namespace.
    pub b: String,
}

impl VethPair {
    /// Creates the link, adds the addresses (IPv6 with `nodad`) and sets both ends up.
    ///
    /// # Errors
    /// An `ip` command fails.
    pub fn connect(a: VethEnd<'_>, b: VethEnd<'_>) -> Result<Self> {
        let (a_if, b_if, b_ns) = (a.ifname, b.ifname, b.netns.name());
        let add = format!("link add {a_if} type veth peer name {b_if} netns {b_ns}");
        a.netns.ip(&add.split(' ').collect::<Vec<_>>())?;
        for end in [a, b] {
            end.netns
                .set_sysctl(&format!("net/ipv6/conf/{}/accept_dad", end.ifname), "0")?;
            for addr in end.addrs {
                end.netns.add_addr(end.ifname, *addr)?;
            }
            end.netns.ip(&["link", "set", end.ifname, "up"])?;
        }
        for end in [a, b] {
            end.wait_oper_up()?;
        }
        Ok(Self {
            a: a.ifname.to_owned(),
            b: b.ifname.to_owned(),
        })
    }
}

impl VethEnd<'_> {
    /// Waits until the kernel reports the link operationally up.
    ///
    /// The carrier change reaches the device through the kernel's linkwatch, which runs at
    /// most once a second (globally); until then the device keeps its `noop` qdisc and drops
    /// every packet. Measured here: without this wait the first IKE packet over a fresh veth
    /// arrived 1.0 s late (neighbour discovery retried after its 1 s timer).
    fn wait_oper_up(&self) -> Result<()> {
        let timeout = Duration::from_secs(5);
        let is_up = || {
            self.netns
                .ip(&["-o", "link", "show", "dev", self.ifname])
                .is_ok_and(|out| out.contains(" state UP "))
        };
        if wait_for(is_up, timeout) {
            return Ok(());
        }
        let (ifname, ns) = (self.ifname, self.netns.name());
        Err(Error::Timeout {
            what: format!("{ifname} in netns {ns} to be operationally UP"),
            timeout,
        })
    }
}

/// One host of a [`Lab`]: its namespace and addresses.
#[derive(Clone, Debug)]
pub struct Host {
    /// Short label, `"a"` or `"b"`; also used in IKE identities (`a.lab.example`).
    pub label: &'static str,
    /// The host's namespace.
    pub netns: Netns,
    /// The veth interface facing the other host.
    pub ifname: &'static str,
    /// Outer (IKE/ESP) IPv4 address on the veth, /24.
    pub outer_v4: Ipv4Addr,
    /// Outer IPv6 address on the veth, /64.
    pub outer_v6: Ipv6Addr,
    /// "LAN" IPv4 address on `lo`, /32: tunnel traffic source/destination.
    pub lan_v4: Ipv4Addr,
    /// "LAN" IPv6 address on `lo`, /128.
    pub lan_v6: Ipv6Addr,
    /// The IPv4 LAN as a traffic selector (`198.51.100.0/24`).
    pub lan_net_v4: &'static str,
    /// The IPv6 LAN as a traffic selector (`2001:db8:a::/48`).
    pub lan_net_v6: &'static str,
}

impl Host {
    /// The host's IKE identity, `{label}.lab.example`.
    pub fn ike_id(&self) -> String {
        format!("{}.lab.example", self.label)
    }
}

/// The two-host topology of the module docs, with a lab directory for configs and logs.
///
/// Field order is drop order: hosts (namespaces) first, then the directory. Daemon guards
/// built on a lab hold clones of what they need, so they may outlive it.
#[derive(Debug)]
pub struct Lab {
    /// Host A (192.0.2.1, LAN 198.51.100.1).
    pub a: Host,
    /// Host B (192.0.2.2, LAN 203.0.113.1).
    pub b: Host,
    /// The veth link between them.
    pub link: VethPair,
    /// Scratch directory for configs and logs.
    pub dir: LabDir,
}

impl Lab {
    /// Builds the two namespaces, the veth link and all addresses.
    ///
    /// Checks for root and the tools first ([`require_root_and_tools`]).
    ///
    /// # Errors
    /// An `ip` command fails.
    pub fn two_hosts() -> Result<Self> {
        require_root_and_tools();
        let dir = LabDir::new("lab")?;
        let a = Host {
            label: "a",
            netns: Netns::create("r3a-")?,
            ifname: "veth-a",
            outer_v4: Ipv4Addr::new(192, 0, 2, 1),
            outer_v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            lan_v4: Ipv4Addr::new(198, 51, 100, 1),
            lan_v6: Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1),
            lan_net_v4: "198.51.100.0/24",
            lan_net_v6: "2001:db8:a::/48",
        };
        let b = Host {
            label: "b",
            netns: Netns::create("r3b-")?,
            ifname: "veth-b",
            outer_v4: Ipv4Addr::new(192, 0, 2, 2),
            outer_v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            lan_v4: Ipv4Addr::new(203, 0, 113, 1),
            lan_v6: Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1),
            lan_net_v4: "203.0.113.0/24",
            lan_net_v6: "2001:db8:b::/48",
        };
        let outer = |h: &Host| [IfAddr::new(h.outer_v4, 24), IfAddr::new(h.outer_v6, 64)];
        let (outer_a, outer_b) = (outer(&a), outer(&b));
        let link = VethPair::connect(
            VethEnd {
                netns: &a.netns,
                ifname: a.ifname,
                addrs: &outer_a,
            },
            VethEnd {
                netns: &b.netns,
                ifname: b.ifname,
                addrs: &outer_b,
            },
        )?;
        for h in [&a, &b] {
            h.netns.add_loopback_addr(IfAddr::new(h.lan_v4, 32))?;
            h.netns.add_loopback_addr(IfAddr::new(h.lan_v6, 128))?;
        }
        Ok(Self { a, b, link, dir })
    }
}

/// Panics (fails the test, never skips it) unless we are root and every tool is installed.
///
/// The message names each missing piece and the command that installs it all.
pub fn require_root_and_tools() {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("root (interop tests create namespaces; run them as root)".to_owned());
    }
    for tool in ["ip", "unshare", "mount", "ping", "swanctl"] {
        if find_in_path(OsStr::new(tool)).is_none() {
            missing.push(format!("`{tool}` in PATH"));
        }
    }
    if !Path::new(CHARON).is_file() {
        missing.push(format!("{CHARON} (strongswan-charon)"));
    }
    for (plugin, package) in [
        ("kernel-libipsec", "libcharon-extra-plugins"),
        ("openssl", "libstrongswan-standard-plugins"),
        ("vici", "strongswan-swanctl"),
        ("kdf", "libstrongswan"),
    ] {
        let file = format!("{PLUGIN_DIR}/libstrongswan-{plugin}.so");
        if !Path::new(&file).is_file() {
            missing.push(format!("{file} ({package})"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun (charon's kernel-libipsec needs TUN)".to_owned());
    }
    assert!(
        missing.is_empty(),
        "interop tests need: {}.\nInstall with `bash scripts/test.sh` (as root), or: apt-get install -y \
         strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins \
         tshark iputils-ping iproute2",
        missing.join(", ")
    );
}
