//! racoon3's `kinkd` (KINK, RFC 4430) in the lab: [`KinkLab`] is the two-host
//! lab with a throwaway MIT KDC and a principal and keytab per host, and
//! [`Kinkd`] runs spmd + kinkd in one host's namespace, both stopped on drop.
//!
//! ```text
//! netns A                                       netns B
//! veth-a 192.0.2.1/24, 2001:db8::1/64  <---->  veth-b 192.0.2.2/24, 2001:db8::2/64
//! lo 198.51.100.1/32                           lo 203.0.113.1/32
//!                                              krb5kdc on 192.0.2.53:88 (veth-b)
//! principals kink/a.kink.test@KINK.TEST, kink/b.kink.test@KINK.TEST
//! ```
//!
//! The KDC lives in B's namespace on an address of its own (`192.0.2.53`), so
//! no test selector (the hosts' own addresses, or the LANs) covers Kerberos
//! traffic: a policy for 192.0.2.1 <-> 192.0.2.2 must not swallow the TGS
//! exchange that keys it. spmd's userspace datapath routes by destination
//! only (`to 192.0.2.1 dev r3esp0` in table 3948), so B also gets
//! `ip rule pref 100 from 192.0.2.53 lookup main`: the KDC's replies leave
//! B as they would leave a KDC host of its own (checked by
//! `tests/harness_kink.rs`).
//!
//! **The daemon contract** this module codes against (adjust here, in one
//! place, when kinkd changes):
//! - `kinkd -F -f CONF -D 2 -l LOG --run-dir DIR` (racoon2's flags, as iked),
//!   after `spmd` with the same config and run directory; PID file
//!   `DIR/kinkd.pid`, control socket `DIR/kinkd.sock` ([`SOCKET_NAME`]).
//! - Environment: `KRB5_CONFIG` (the host's krb5.conf naming the test KDC),
//!   `KRB5_KTNAME` (`FILE:` keytab of its own principal), `KRB5CCNAME`
//!   (optional).
//! - racoonctl command lines: [`ctl_args`]; their JSON: [`sa_pairs`] and
//!   [`counter`].
//!
//! Submodules: `lab` (namespaces, KDC, principals, configurations),
//! `daemon` (the spmd + kinkd guard), `traffic` (pings and hand-made
//! datagrams).

use std::ffi::OsString;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::iked::{DEBUG_FLAGS, workspace_root};
use crate::kdc::{self, Kdc, REALM};
use crate::lab::LabDir;
use crate::netns::{Host, IfAddr, Lab, Netns};
use crate::process::{ChildGuard, Launch, log_tail, wait_for};
use crate::racoon2conf::{KinkConf, KinkEsp, KinkMode};
use crate::{Error, Result, io_context};

mod daemon;
mod lab;
mod traffic;

pub use daemon::{Kinkd, KinkdPaths};
pub use lab::{KinkHost, KinkLab, KinkOptions, KinkdSpec, faketime_env};
pub use traffic::{
    BackgroundPing, PingStats, flip_cksum, kink_datagram, ping, ping_until_passes, truncate,
};

/// The KDC's address, on B's veth: reachable from A over the link, outside
/// every selector the tests configure.
pub const KDC_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// Preference of B's rule `from KDC_ADDR lookup main`, ahead of the
/// userspace datapath's rule (3948).
const KDC_RULE_PREF: &str = "100";

/// KINK's UDP port (RFC 4430).
pub const KINK_PORT: u16 = 910;

/// kinkd's control socket in its run directory.
pub const SOCKET_NAME: &str = "kinkd.sock";

/// kinkd's PID file in its run directory.
pub const PID_FILE: &str = "kinkd.pid";

/// Where Debian's `faketime` package puts the preload library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// KINK message types (RFC 4430 §4, IANA "KINK Message Types"): the first
/// octet of every KINK message.
pub mod msg_type {
    /// CREATE.
    pub const CREATE: u8 = 1;
    /// DELETE.
    pub const DELETE: u8 = 2;
    /// REPLY.
    pub const REPLY: u8 = 3;
    /// GETTGT.
    pub const GETTGT: u8 = 4;
    /// ACK.
    pub const ACK: u8 = 5;
    /// STATUS.
    pub const STATUS: u8 = 6;
}

/// racoonctl's command lines for kinkd (after `--run-dir DIR`): the one place
/// to change when the CLI settles differently.
pub mod ctl_args {
    /// `show sa kinkd --json`.
    pub fn show_sa() -> Vec<String> {
        ["show", "sa", "kinkd", "--json"].map(String::from).to_vec()
    }
    /// `show status kinkd --json`.
    pub fn status() -> Vec<String> {
        ["show", "status", "kinkd", "--json"]
            .map(String::from)
            .to_vec()
    }
    /// `initiate --daemon kinkd REMOTE`.
    pub fn initiate(remote: &str) -> Vec<String> {
        ["initiate", "--daemon", "kinkd", remote]
            .map(String::from)
            .to_vec()
    }
    /// `terminate --daemon kinkd REMOTE|all`.
    pub fn terminate(target: &str) -> Vec<String> {
        ["terminate", "--daemon", "kinkd", target]
            .map(String::from)
            .to_vec()
    }
}

/// One SA pair as `racoonctl show sa kinkd --json` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaPair {
    /// The remote block (`peer-b`); empty if not shown.
    pub peer: String,
    /// `established`, `negotiating`, ...; empty if not shown.
    pub state: String,
    /// Our inbound SPI.
    pub spi_in: u32,
    /// Our outbound SPI.
    pub spi_out: u32,
}

impl SaPair {
    /// Whether the pair carries traffic (state `established`, or no state shown).
    pub fn is_established(&self) -> bool {
        self.state.is_empty() || self.state == "established"
    }
}

/// The SA pairs in an answer of `show sa kinkd --json`: every object, at any
/// depth, with an `spi_in` and an `spi_out` (numbers, or hex strings with or
/// without `0x`). **The one place that knows the JSON shape of SAs.**
pub fn sa_pairs(json: &Value) -> Vec<SaPair> {
    fn spi(v: &Value) -> Option<u32> {
        match v {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => {
                let hex = s.trim_start_matches("0x");
                u32::from_str_radix(hex, 16).ok()
            }
            _ => None,
        }
    }
    fn text(v: Option<&Value>) -> String {
        v.and_then(Value::as_str).unwrap_or_default().to_owned()
    }
    fn walk(v: &Value, out: &mut Vec<SaPair>) {
        match v {
            Value::Object(o) => {
                if let (Some(i), Some(o_)) = (
                    o.get("spi_in").and_then(spi),
                    o.get("spi_out").and_then(spi),
                ) {
                    out.push(SaPair {
                        peer: text(o.get("peer").or_else(|| o.get("remote"))),
                        state: text(o.get("state")),
                        spi_in: i,
                        spi_out: o_,
                    });
                    return;
                }
                o.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(json, &mut out);
    out
}

/// The counter `name` (`creates`, `bad_checksum`, ...) in an answer of
/// `show status kinkd --json`: the first number under that key at any depth.
/// **The one place that knows the JSON shape of the counters.**
pub fn counter(json: &Value, name: &str) -> Option<u64> {
    match json {
        Value::Object(o) => o
            .get(name)
            .and_then(Value::as_u64)
            .or_else(|| o.values().find_map(|v| counter(v, name))),
        Value::Array(a) => a.iter().find_map(|v| counter(v, name)),
        _ => None,
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(io_context(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sa_pairs_read_numbers_and_hex_strings_at_any_depth() {
        let v = json!({"sas": [
            {"peer": "peer-b", "state": "established", "spi_in": 3_735_928_559_u32, "spi_out": 16},
            {"remote": "peer-c", "state": "negotiating", "spi_in": "0x0000beef", "spi_out": "c0ffee00"},
            {"peer": "broken", "spi_in": "zz", "spi_out": 1}
        ]});
        let pairs = sa_pairs(&v);
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert_eq!(pairs[0].spi_in, 0xdead_beef);
        assert_eq!(pairs[0].spi_out, 16);
        assert!(pairs[0].is_established());
        assert_eq!(pairs[1].peer, "peer-c");
        assert_eq!(pairs[1].spi_in, 0xbeef);
        assert_eq!(pairs[1].spi_out, 0xc0ff_ee00);
        assert!(!pairs[1].is_established());
        assert!(sa_pairs(&json!({"sas": []})).is_empty());
    }

    #[test]
    fn counters_are_found_wherever_the_status_nests_them() {
        let v =
            json!({"status": {"daemon": "kinkd", "counters": {"creates": 3, "bad_checksum": 0}}});
        assert_eq!(counter(&v, "creates"), Some(3));
        assert_eq!(counter(&v, "bad_checksum"), Some(0));
        assert_eq!(counter(&v, "replayed"), None);
        assert_eq!(counter(&json!({"creates": 1}), "creates"), Some(1));
    }

    #[test]
    fn ping_summary_is_parsed() {
        let out = "PING 192.0.2.2 ...\n--- 192.0.2.2 ping statistics ---\n\
                   125 packets transmitted, 123 received, 1.6% packet loss, time 24803ms\n";
        let s = PingStats::parse(out);
        assert_eq!((s.sent, s.received), (125, 123));
        let s = PingStats::parse("3 packets transmitted, 0 received, +3 errors, 100% packet loss");
        assert_eq!((s.sent, s.received), (3, 0));
        assert_eq!(PingStats::parse("").sent, 0);
    }

    #[test]
    fn tampering_helpers_change_what_they_say() {
        let msg = [1u8, 0x10, 0, 8, 0, 0, 0, 1];
        let t = flip_cksum(&msg);
        assert_eq!(t[..7], msg[..7]);
        assert_ne!(t[7], msg[7]);
        assert_eq!(truncate(&msg, 4), [1, 0x10, 0, 8]);
        assert_eq!(truncate(&msg, 99), msg);
        assert!(flip_cksum(&[]).is_empty());
    }

    #[test]
    fn ctl_args_name_kinkd() {
        assert_eq!(ctl_args::show_sa(), ["show", "sa", "kinkd", "--json"]);
        assert_eq!(
            ctl_args::terminate("peer-b"),
            ["terminate", "--daemon", "kinkd", "peer-b"]
        );
    }
}
