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
//! **The daemon contract** this module codes against (the daemon is written
//! in parallel; adjust here, in one place, if it differs):
//! - `kinkd -F -f CONF -D 2 -l LOG --run-dir DIR` (racoon2's flags, as iked),
//!   after `spmd` with the same config and run directory; PID file
//!   `DIR/kinkd.pid`, control socket `DIR/kinkd.sock` ([`SOCKET_NAME`]).
//! - Environment: `KRB5_CONFIG` (the host's krb5.conf naming the test KDC),
//!   `KRB5_KTNAME` (`FILE:` keytab of its own principal), `KRB5CCNAME`
//!   (optional).
//! - racoonctl command lines: [`ctl_args`]; their JSON: [`sa_pairs`] and
//!   [`counter`].

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

/// One host of a [`KinkLab`]: its namespace and addresses, its principal,
/// keytab and krb5.conf.
#[derive(Clone, Debug)]
pub struct KinkHost {
    /// The lab host (namespace, addresses, label `a`/`b`).
    pub host: Host,
    /// `a.kink.test`.
    pub hostname: String,
    /// `kink/a.kink.test@KINK.TEST`.
    pub principal: String,
    /// The keytab exported for it (in the KDC's directory).
    pub keytab: PathBuf,
    /// Its own krb5.conf (naming the KDC): `lab/krb5-a.conf`.
    pub krb5_conf: PathBuf,
}

impl KinkHost {
    /// The namespace.
    pub fn netns(&self) -> &Netns {
        &self.host.netns
    }

    /// The outer address of `family`.
    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 {
            self.host.outer_v6.into()
        } else {
            self.host.outer_v4.into()
        }
    }
}

/// The two-host lab with a KDC (see the module docs).
///
/// Field order is drop order: the KDC stops before the namespaces go.
#[derive(Debug)]
pub struct KinkLab {
    /// Host A (192.0.2.1): the initiator in most tests.
    pub a: KinkHost,
    /// Host B (192.0.2.2): the responder; the KDC runs in its namespace.
    pub b: KinkHost,
    /// The KDC, realm [`REALM`].
    pub kdc: Kdc,
    /// Namespaces, link and scratch directory.
    pub lab: Lab,
}

impl KinkLab {
    /// Builds the lab: namespaces and link, the KDC on [`KDC_ADDR`] in B,
    /// `kink/a.kink.test` and `kink/b.kink.test` with keytabs, one krb5.conf
    /// per host.
    ///
    /// # Errors
    /// A tool is missing or fails.
    pub fn new() -> Result<Self> {
        kdc::require_kdc_tools();
        let lab = Lab::two_hosts()?;
        lab.b
            .netns
            .add_addr(lab.b.ifname, IfAddr::new(KDC_ADDR, 24))?;
        // B's datapath routes A's address into its TUN device (table 3948,
        // by destination only), which would swallow the KDC's replies to A:
        // the KDC's own traffic uses the main table, as a separate host's would.
        let kdc_src = format!("{KDC_ADDR}/32");
        lab.b.netns.ip(&[
            "rule",
            "add",
            "pref",
            KDC_RULE_PREF,
            "from",
            &kdc_src,
            "lookup",
            "main",
        ])?;
        let kdc = Kdc::start_in(&lab.dir, &lab.b.netns, KDC_ADDR)?;
        let host = |h: &Host| -> Result<KinkHost> {
            let hostname = format!("{}.kink.test", h.label);
            let (principal, keytab) = kdc.add_host(&hostname)?;
            let krb5_conf = lab.dir.path().join(format!("krb5-{}.conf", h.label));
            write(&krb5_conf, &kdc::render_krb5_conf(REALM, kdc.addr()))?;
            Ok(KinkHost {
                host: h.clone(),
                hostname,
                principal,
                keytab,
                krb5_conf,
            })
        };
        let (a, b) = (host(&lab.a)?, host(&lab.b)?);
        Ok(Self { a, b, kdc, lab })
    }

    /// The lab's scratch directory.
    pub fn dir(&self) -> &LabDir {
        &self.lab.dir
    }

    /// Runs `kinit` with `h`'s keytab inside `h`'s namespace against the KDC:
    /// proves the KDC, the keytab and the krb5.conf work from there.
    ///
    /// # Errors
    /// `kinit` fails.
    pub fn kinit(&self, h: &KinkHost) -> Result<()> {
        self.kinit_into(
            h,
            &h.keytab,
            &self.dir().path().join(format!("kinit-{}.cc", h.host.label)),
        )
    }

    /// `kinit -k -t KEYTAB PRINCIPAL -c FILE:CCACHE` in `h`'s namespace with
    /// `h`'s krb5.conf: a TGT in a file cache (for a kinkd that should
    /// have its TGT but no usable keytab).
    ///
    /// # Errors
    /// `kinit` fails.
    pub fn kinit_into(&self, h: &KinkHost, keytab: &Path, ccache: &Path) -> Result<()> {
        let kt = keytab.display().to_string();
        let cc = format!("FILE:{}", ccache.display());
        crate::process::run_checked(
            h.netns()
                .command("kinit")
                .args(["-k", "-t", &kt, "-c", &cc, &h.principal])
                .env("KRB5_CONFIG", &h.krb5_conf),
        )
        .map(drop)
    }

    /// The racoon2.conf settings for `local` talking KINK to `remote`.
    pub fn conf(&self, local: &KinkHost, remote: &KinkHost, opts: &KinkOptions) -> KinkConf {
        let mode = if opts.tunnel {
            let (my_net, peer_net) = if opts.v6 {
                (local.host.lan_net_v6, remote.host.lan_net_v6)
            } else {
                (local.host.lan_net_v4, remote.host.lan_net_v4)
            };
            KinkMode::Tunnel {
                my_net: my_net.to_owned(),
                peer_net: peer_net.to_owned(),
            }
        } else {
            KinkMode::Transport
        };
        KinkConf {
            label: local.host.label.to_owned(),
            peer_label: remote.host.label.to_owned(),
            my_addr: local.addr(opts.v6),
            peer_addr: remote.addr(opts.v6),
            my_principal: local.principal.clone(),
            peers_principal: remote.principal.clone(),
            mode,
            esp: opts.esp,
            lifetime_secs: opts.lifetime_secs,
            user_to_user: opts.user_to_user && local.host.label == "a",
            spmd_socket: KinkdPaths::for_label(self.dir(), local.host.label)
                .run_dir
                .join("spmd.sock"),
        }
    }

    /// What to start for `local` (peer `remote`): its config, krb5.conf and
    /// keytab; adjust the result for special cases (no keytab, faketime).
    pub fn spec(&self, local: &KinkHost, remote: &KinkHost, opts: &KinkOptions) -> KinkdSpec {
        KinkdSpec {
            label: local.host.label.to_owned(),
            conf: crate::racoon2conf::kink(&self.conf(local, remote, opts)),
            krb5_conf: local.krb5_conf.clone(),
            keytab: Some(local.keytab.clone()),
            ccache: None,
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// The knobs the tests turn; the default is IPv4 transport mode,
/// AES-GCM-16-128, 600 s lifetime, service tickets.
#[derive(Clone, Copy, Debug)]
pub struct KinkOptions {
    /// IPv6 outer addresses (and LANs in tunnel mode).
    pub v6: bool,
    /// Tunnel mode between the LANs instead of transport mode between the hosts.
    pub tunnel: bool,
    /// ESP algorithms.
    pub esp: KinkEsp,
    /// `ipsec_sa_lifetime_time`, seconds.
    pub lifetime_secs: u32,
    /// `user_to_user on;` in A's kink block (the initiator's side).
    pub user_to_user: bool,
}

impl Default for KinkOptions {
    fn default() -> Self {
        Self {
            v6: false,
            tunnel: false,
            esp: KinkEsp::AES128_GCM16,
            lifetime_secs: 600,
            user_to_user: false,
        }
    }
}

/// Everything needed to start one kinkd.
#[derive(Clone, Debug)]
pub struct KinkdSpec {
    /// `a` or `b`: the instance directory is `lab/kinkd-{label}`.
    pub label: String,
    /// racoon2.conf text (for spmd and kinkd).
    pub conf: String,
    /// `KRB5_CONFIG`.
    pub krb5_conf: PathBuf,
    /// `KRB5_KTNAME=FILE:{keytab}`; `None` leaves it unset.
    pub keytab: Option<PathBuf>,
    /// `KRB5CCNAME`; `None` leaves it unset.
    pub ccache: Option<String>,
    /// More environment (e.g. [`faketime_env`]).
    pub env: Vec<(OsString, OsString)>,
    /// More command-line arguments.
    pub args: Vec<OsString>,
}

/// The environment that runs a program under libfaketime with its wall
/// clock offset read from `file` (re-read at every clock call, so a change
/// applies at once even under load; write e.g. `+0` or `+1h` into it), the
/// monotonic clock left alone.
///
/// # Errors
/// libfaketime is not installed (Debian package `faketime`).
pub fn faketime_env(file: &Path) -> Result<Vec<(OsString, OsString)>> {
    if !Path::new(LIBFAKETIME).is_file() {
        return Err(Error::Daemon(format!(
            "{LIBFAKETIME} missing: apt-get install -y faketime (scripts/test.sh installs it)"
        )));
    }
    Ok([
        ("LD_PRELOAD", OsString::from(LIBFAKETIME)),
        ("FAKETIME_TIMESTAMP_FILE", file.as_os_str().to_owned()),
        ("FAKETIME_NO_CACHE", "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (OsString::from(k), v))
    .collect())
}

/// Where a [`Kinkd`] keeps its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinkdPaths {
    /// The instance directory.
    pub dir: PathBuf,
    /// racoon2.conf (`-f`, for spmd and kinkd).
    pub conf: PathBuf,
    /// kinkd's log (`-l`).
    pub log: PathBuf,
    /// kinkd's stdout and stderr.
    pub out: PathBuf,
    /// spmd's log.
    pub spmd_log: PathBuf,
    /// spmd's stdout and stderr.
    pub spmd_out: PathBuf,
    /// `--run-dir` of both: PID files and control sockets.
    pub run_dir: PathBuf,
}

impl KinkdPaths {
    /// The layout for instance `label` in `lab` (`lab/kinkd-{label}`).
    pub fn for_label(lab: &LabDir, label: &str) -> Self {
        let dir = lab.path().join(format!("kinkd-{label}"));
        Self {
            conf: dir.join("racoon2.conf"),
            log: dir.join("kinkd.log"),
            out: dir.join("kinkd.out"),
            spmd_log: dir.join("spmd.log"),
            spmd_out: dir.join("spmd.out"),
            run_dir: dir.join("run"),
            dir,
        }
    }

    /// kinkd's control socket.
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join(SOCKET_NAME)
    }
}

/// How long a daemon may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running kinkd with its spmd, in one namespace; both stopped on drop
/// (kinkd first), only by the PIDs this guard started.
#[derive(Debug)]
pub struct Kinkd {
    spec: KinkdSpec,
    paths: KinkdPaths,
    netns: Netns,
    child: Option<ChildGuard>,
    spmd: ChildGuard,
    lab: LabDir,
}

impl Kinkd {
    /// The kinkd binary: `$KINKD`, `$CARGO_BIN_EXE_kinkd`, then `debug/kinkd`
    /// in `$CARGO_TARGET_DIR` or the workspace's `target`.
    pub fn binary() -> PathBuf {
        sibling_binary("kinkd", "KINKD")
    }

    /// Starts spmd, waits for it, then kinkd, and waits for kinkd's control
    /// socket.
    ///
    /// # Errors
    /// A binary is missing, a file cannot be written, or a daemon does not
    /// come up (the error carries its log's tail).
    pub fn start(lab: &LabDir, netns: &Netns, spec: KinkdSpec) -> Result<Self> {
        let binary = Self::binary();
        if !binary.is_file() {
            return Err(Error::Daemon(format!(
                "kinkd binary {} not found: run `cargo build --workspace --bins` first (or set KINKD)",
                binary.display()
            )));
        }
        let mut me = Self::start_spmd(lab, netns, spec)?;
        me.start_kinkd()?;
        Ok(me)
    }

    /// Writes the config and starts only spmd (waiting for it): kinkd
    /// follows with [`Self::start_kinkd`].
    ///
    /// # Errors
    /// spmd is missing, a file cannot be written, or spmd does not come up.
    pub fn start_spmd(lab: &LabDir, netns: &Netns, spec: KinkdSpec) -> Result<Self> {
        let spmd_bin = sibling_binary("spmd", "SPMD");
        if !spmd_bin.is_file() {
            return Err(Error::Daemon(format!(
                "spmd binary {} not found: run `cargo build --workspace --bins` first (or set SPMD)",
                spmd_bin.display()
            )));
        }
        let paths = KinkdPaths::for_label(lab, &spec.label);
        fs::create_dir_all(&paths.run_dir).map_err(io_context("create kinkd run dir"))?;
        write(&paths.conf, &spec.conf)?;
        let spmd = Launch::new(&spmd_bin, &paths.spmd_out)
            .netns(netns)
            .args(daemon_args(&paths, &paths.spmd_log))
            .env("RUST_LIB_BACKTRACE", "0")
            .spawn()?;
        let me = Self {
            spec,
            paths,
            netns: netns.clone(),
            child: None,
            spmd,
            lab: lab.clone(),
        };
        me.wait_spmd()?;
        Ok(me)
    }

    fn wait_spmd(&self) -> Result<()> {
        let log = &self.paths.spmd_log;
        let up = wait_for(
            || crate::log_contains(log, "spmd started") || !self.spmd.is_running(),
            START_TIMEOUT,
        );
        if up && self.spmd.is_running() {
            return Ok(());
        }
        Err(Error::Daemon(format!(
            "spmd ({}) did not start:\n--- spmd.log ---\n{}\n--- spmd.out ---\n{}",
            self.spec.label,
            log_tail(log, 30),
            log_tail(&self.paths.spmd_out, 20)
        )))
    }

    /// Starts kinkd (again) on the same files and environment and waits for
    /// its control socket. spmd keeps running. Its log is appended to.
    ///
    /// # Errors
    /// kinkd is running already, cannot start, or does not open its socket.
    pub fn start_kinkd(&mut self) -> Result<()> {
        if self.child.as_ref().is_some_and(ChildGuard::is_running) {
            return Err(Error::Daemon("kinkd is running already".into()));
        }
        let _ = fs::remove_file(self.paths.socket()); // a stale one would fool the wait
        let mut launch = Launch::new(Self::binary(), &self.paths.out)
            .netns(&self.netns)
            .args(daemon_args(&self.paths, &self.paths.log))
            .args(self.spec.args.iter().cloned())
            .env("RUST_LIB_BACKTRACE", "0")
            .env("KRB5_CONFIG", &self.spec.krb5_conf);
        if let Some(kt) = &self.spec.keytab {
            launch = launch.env("KRB5_KTNAME", format!("FILE:{}", kt.display()));
        }
        if let Some(cc) = &self.spec.ccache {
            launch = launch.env("KRB5CCNAME", cc);
        }
        for (k, v) in &self.spec.env {
            launch = launch.env(k, v);
        }
        self.child = Some(launch.spawn()?);
        let sock = self.paths.socket();
        let up = wait_for(|| sock.exists() || !self.is_running(), START_TIMEOUT);
        if up && self.is_running() {
            return Ok(());
        }
        Err(Error::Daemon(format!(
            "kinkd ({}) did not open {}:\n{}",
            self.spec.label,
            sock.display(),
            self.tails()
        )))
    }

    /// Stops kinkd (SIGTERM, then SIGKILL); spmd keeps running.
    pub fn stop(&mut self) {
        if let Some(child) = &mut self.child {
            child.stop();
        }
    }

    /// Kills kinkd with SIGKILL (a crash); spmd keeps running.
    pub fn kill(&mut self) {
        if let Some(child) = &mut self.child {
            child.kill();
        }
    }

    /// Stops kinkd and starts it again (same files and environment).
    ///
    /// # Errors
    /// As [`Self::start_kinkd`].
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start_kinkd()
    }

    /// Whether kinkd runs.
    pub fn is_running(&self) -> bool {
        self.child.as_ref().is_some_and(ChildGuard::is_running)
    }

    /// Whether spmd runs.
    pub fn spmd_running(&self) -> bool {
        self.spmd.is_running()
    }

    /// The files.
    pub fn paths(&self) -> &KinkdPaths {
        &self.paths
    }

    /// What it was started with.
    pub fn spec(&self) -> &KinkdSpec {
        &self.spec
    }

    /// `a` or `b`.
    pub fn label(&self) -> &str {
        &self.spec.label
    }

    /// kinkd's log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.paths.log)
    }

    /// spmd's log so far.
    pub fn spmd_log(&self) -> String {
        read_lossy(&self.paths.spmd_log)
    }

    /// The current length of kinkd's log: pass it to
    /// [`Self::wait_for_log_from`] to wait only for lines written after now.
    pub fn log_mark(&self) -> usize {
        fs::metadata(&self.paths.log).map_or(0, |m| usize::try_from(m.len()).unwrap_or(0))
    }

    /// Waits until kinkd's log contains `needle`.
    ///
    /// # Errors
    /// Not within `timeout`, or kinkd exited first; the error carries the logs.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_for_log_from(0, &[needle], timeout).map(drop)
    }

    /// Waits until kinkd's log, from byte `mark` on, contains one of
    /// `needles`; returns the one found first in the list.
    ///
    /// # Errors
    /// Not within `timeout`, or kinkd exited first; the error carries the logs.
    pub fn wait_for_log_from<'n>(
        &self,
        mark: usize,
        needles: &[&'n str],
        timeout: Duration,
    ) -> Result<&'n str> {
        let found = || {
            let log = self.log();
            let tail = log.get(mark..).unwrap_or("");
            needles.iter().copied().find(|n| tail.contains(n))
        };
        wait_for(|| found().is_some() || !self.is_running(), timeout);
        if let Some(n) = found() {
            return Ok(n);
        }
        let why = if self.is_running() {
            "timed out"
        } else {
            "kinkd exited"
        };
        Err(Error::Daemon(format!(
            "{why} waiting {timeout:?} for one of {needles:?} in kinkd {}'s log\n{}",
            self.spec.label,
            self.tails()
        )))
    }

    /// Runs racoonctl against this run directory; returns (exit code,
    /// stdout, stderr).
    ///
    /// # Errors
    /// racoonctl cannot be started (not built?).
    pub fn racoonctl<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[S],
    ) -> Result<(i32, String, String)> {
        let bin = sibling_binary("racoonctl", "RACOONCTL");
        let out = Command::new(&bin)
            .arg("--run-dir")
            .arg(&self.paths.run_dir)
            .args(args)
            .output()
            .map_err(io_context(format!("run {}", bin.display())))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// racoonctl `args`, which must succeed and print JSON.
    ///
    /// # Errors
    /// racoonctl fails or prints something else.
    pub fn ctl_json(&self, args: &[String]) -> Result<Value> {
        let (code, out, err) = self.racoonctl(args)?;
        if code != 0 {
            return Err(Error::Daemon(format!(
                "racoonctl {args:?} on {} exited {code}: {out}{err}",
                self.spec.label
            )));
        }
        serde_json::from_str(out.trim())
            .map_err(|e| Error::Daemon(format!("racoonctl {args:?}: not JSON ({e}): {out}")))
    }

    /// The SA pairs kinkd shows (`show sa kinkd --json`).
    ///
    /// # Errors
    /// racoonctl fails.
    pub fn show_sa(&self) -> Result<Vec<SaPair>> {
        self.ctl_json(&ctl_args::show_sa()).map(|v| sa_pairs(&v))
    }

    /// The established SA pairs.
    ///
    /// # Errors
    /// racoonctl fails.
    pub fn established(&self) -> Result<Vec<SaPair>> {
        Ok(self
            .show_sa()?
            .into_iter()
            .filter(SaPair::is_established)
            .collect())
    }

    /// `show status kinkd --json`.
    ///
    /// # Errors
    /// racoonctl fails.
    pub fn status(&self) -> Result<Value> {
        self.ctl_json(&ctl_args::status())
    }

    /// One status counter (`creates`, `bad_checksum`, ...).
    ///
    /// # Errors
    /// racoonctl fails, or the answer has no such counter.
    pub fn counter(&self, name: &str) -> Result<u64> {
        let status = self.status()?;
        counter(&status, name).ok_or_else(|| {
            Error::Daemon(format!("no counter {name:?} in kinkd's status: {status}"))
        })
    }

    /// Waits until counter `name` is at least `min`; returns its value.
    ///
    /// # Errors
    /// Not within `timeout` (the error shows the status), or racoonctl fails.
    pub fn wait_counter(&self, name: &str, min: u64, timeout: Duration) -> Result<u64> {
        let mut last = 0;
        wait_for(
            || {
                last = self.counter(name).unwrap_or(0);
                last >= min
            },
            timeout,
        );
        if last >= min {
            return Ok(last);
        }
        Err(Error::Daemon(format!(
            "kinkd {}: counter {name} stayed at {last} (< {min}) for {timeout:?}; status: {}\n{}",
            self.spec.label,
            self.status()
                .map_or_else(|e| e.to_string(), |v| v.to_string()),
            self.tails()
        )))
    }

    /// Waits until `pred` holds for the established SA pairs; returns them.
    ///
    /// # Errors
    /// Not within `timeout`.
    pub fn wait_sas(
        &self,
        what: &str,
        mut pred: impl FnMut(&[SaPair]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<SaPair>> {
        let mut last = Vec::new();
        let ok = wait_for(
            || {
                last = self.established().unwrap_or_default();
                pred(&last)
            },
            timeout,
        );
        if ok {
            return Ok(last);
        }
        Err(Error::Daemon(format!(
            "kinkd {}: SAs never became {what} within {timeout:?}; last seen {last:?}\n{}",
            self.spec.label,
            self.tails()
        )))
    }

    /// `initiate --daemon kinkd REMOTE`.
    ///
    /// # Errors
    /// racoonctl fails or refuses.
    pub fn initiate(&self, remote: &str) -> Result<()> {
        self.ctl_ok(&ctl_args::initiate(remote))
    }

    /// `terminate --daemon kinkd REMOTE|all`.
    ///
    /// # Errors
    /// racoonctl fails or refuses.
    pub fn terminate(&self, target: &str) -> Result<()> {
        self.ctl_ok(&ctl_args::terminate(target))
    }

    fn ctl_ok(&self, args: &[String]) -> Result<()> {
        let (code, out, err) = self.racoonctl(args)?;
        if code == 0 {
            return Ok(());
        }
        Err(Error::Daemon(format!(
            "racoonctl {args:?} on {} exited {code}: {out}{err}",
            self.spec.label
        )))
    }

    /// The tails of kinkd's and spmd's logs, for error messages.
    pub fn tails(&self) -> String {
        format!(
            "--- kinkd {} log (netns {}) ---\n{}\n--- kinkd.out ---\n{}\n--- spmd.log ---\n{}",
            self.spec.label,
            self.netns.name(),
            log_tail(&self.paths.log, 60),
            log_tail(&self.paths.out, 20),
            log_tail(&self.paths.spmd_log, 20)
        )
    }
}

impl Drop for Kinkd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.tails());
        }
        self.stop();
        self.spmd.stop();
        if !self.lab.keep() {
            let _ = fs::remove_dir_all(&self.paths.dir);
        }
    }
}

/// `-F -f CONF -D 2 -l LOG --run-dir DIR`: the flags spmd and kinkd share.
fn daemon_args(paths: &KinkdPaths, log: &Path) -> Vec<OsString> {
    vec![
        "-F".into(),
        "-f".into(),
        paths.conf.clone().into(),
        "-D".into(),
        DEBUG_FLAGS.into(),
        "-l".into(),
        log.into(),
        "--run-dir".into(),
        paths.run_dir.clone().into(),
    ]
}

/// A workspace binary: `$OVERRIDE`, `$CARGO_BIN_EXE_{name}`, then
/// `debug/{name}` in `$CARGO_TARGET_DIR` or the workspace's `target`.
fn sibling_binary(name: &str, override_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return path.into();
    }
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return path.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("debug").join(name)
}

/// Ping results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingStats {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// ping's output (and error), for messages.
    pub output: String,
}

impl PingStats {
    /// Reads `N packets transmitted, M received` from ping's summary.
    pub fn parse(output: &str) -> Self {
        let mut stats = Self {
            output: output.to_owned(),
            ..Self::default()
        };
        if let Some(line) = output.lines().find(|l| l.contains("packets transmitted")) {
            let words = line.split(|c: char| c == ',' || c.is_whitespace());
            let mut prev: Option<u32> = None;
            for w in words {
                match (w, prev) {
                    ("packets", Some(n)) => stats.sent = n,
                    ("received", Some(n)) => stats.received = n,
                    _ => {}
                }
                if !w.is_empty() {
                    prev = w.parse().ok();
                }
            }
        }
        stats
    }
}

/// Pings `dst` from `src` inside `netns`: `count` echo requests `interval`
/// seconds apart, each waiting up to 1 s.
pub fn ping(netns: &Netns, src: IpAddr, dst: IpAddr, count: u32, interval: &str) -> PingStats {
    let (src, dst, count) = (src.to_string(), dst.to_string(), count.to_string());
    let args = [
        "-n", "-c", &count, "-i", interval, "-W", "1", "-I", &src, &dst,
    ];
    match netns.command("ping").args(args).output() {
        Ok(out) => PingStats::parse(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => PingStats {
            output: format!("cannot run ping: {e}"),
            ..PingStats::default()
        },
    }
}

/// Pings (3 at a time) until all three pass or `timeout` is over: the first
/// packets are dropped while kinkd negotiates (no queueing). Returns the
/// last round.
pub fn ping_until_passes(netns: &Netns, src: IpAddr, dst: IpAddr, timeout: Duration) -> PingStats {
    let deadline = Instant::now() + timeout;
    loop {
        let round = ping(netns, src, dst, 3, "0.2");
        if round.received == 3 || Instant::now() >= deadline {
            return round;
        }
    }
}

/// A ping run in the background (e.g. across a rekey), stopped on drop.
#[derive(Debug)]
pub struct BackgroundPing {
    child: ChildGuard,
    log: PathBuf,
}

impl BackgroundPing {
    /// Starts `ping -c COUNT -i INTERVAL` from `src` to `dst` in `netns`,
    /// output to `log`.
    ///
    /// # Errors
    /// ping cannot be started.
    pub fn start(
        netns: &Netns,
        src: IpAddr,
        dst: IpAddr,
        count: u32,
        interval: &str,
        log: &Path,
    ) -> Result<Self> {
        let child = Launch::new("ping", log)
            .netns(netns)
            .args(["-n", "-c", &count.to_string(), "-i", interval, "-W", "1"])
            .args(["-I", &src.to_string(), &dst.to_string()])
            .term_timeout(Duration::from_secs(2))
            .spawn()?;
        Ok(Self {
            child,
            log: log.to_owned(),
        })
    }

    /// Waits up to `timeout` for ping to finish (stops it then) and returns
    /// its summary.
    pub fn finish(mut self, timeout: Duration) -> PingStats {
        wait_for(|| self.child.try_exit_status().is_some(), timeout);
        // SIGTERM (not SIGINT) ends ping without a summary; then it is empty.
        self.child.stop();
        PingStats::parse(&read_lossy(&self.log))
    }
}

/// Flips the last octet of a KINK message: it lies in the KINK_CKSUM (the
/// checksum is the message's last CksumLen octets, kink.md "KINK_CKSUM
/// placement"), so the message still parses but does not verify.
pub fn flip_cksum(msg: &[u8]) -> Vec<u8> {
    let mut out = msg.to_vec();
    if let Some(last) = out.last_mut() {
        *last ^= 0x01;
    }
    out
}

/// The message cut to its first `len` octets with its header unchanged: the
/// Length field then claims more than the datagram holds (KINK_PROTOERR,
/// counted as malformed).
pub fn truncate(msg: &[u8], len: usize) -> Vec<u8> {
    msg[..len.min(msg.len())].to_vec()
}

/// A datagram to `dst`:910 from `src`:910 with `payload`.
pub fn kink_datagram(src: Ipv4Addr, dst: Ipv4Addr, payload: Vec<u8>) -> crate::datagram::Datagram {
    crate::datagram::Datagram {
        src: SocketAddrV4::new(src, KINK_PORT),
        dst: SocketAddrV4::new(dst, KINK_PORT),
        payload,
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
