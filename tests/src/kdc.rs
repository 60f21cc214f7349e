//! A throwaway MIT Kerberos KDC for kinkd's tests.
//!
//! [`Kdc::start`] writes its own `krb5.conf` and `kdc.conf` into a [`LabDir`], creates a fresh
//! database (`kdb5_util create -s`) for realm [`REALM`], and runs `krb5kdc -n` (foreground)
//! under a [`ChildGuard`], listening only on `127.0.0.1` at a free port, or
//! ([`Kdc::start_in`]) inside a test namespace on one of its documentation-range addresses.
//! Nothing reads `/etc/krb5.conf` or the system KDC database: every command gets
//! `KRB5_CONFIG` and `KRB5_KDC_PROFILE` pointing into the lab directory, and the library
//! under test is given [`Kdc::krb5_conf`].
//!
//! Principals are made with `kadmin.local` (no kadmind needed): [`Kdc::add_host`] creates
//! `kink/<host>` with a random key and exports it to a keytab; [`Kdc::change_key`] bumps the
//! key version afterwards to make that keytab stale.
//!
//! Needs Debian's `krb5-kdc`, `krb5-admin-server` and `krb5-user` (installed by
//! `scripts/test.sh`); [`require_kdc_tools`] says so when they are missing. Root is not needed
//! for the loopback KDC.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::lab::LabDir;
use crate::netns::Netns;
use crate::process::{ChildGuard, Launch, find_in_path, log_contains, log_tail, run_checked};
use crate::{Error, Result, io_context};

/// The test realm.
pub const REALM: &str = "KINK.TEST";

/// Where Debian installs the KDC programs.
const SBIN: &str = "/usr/sbin";

/// How long `krb5kdc` may take to open its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Panics (fails the test) unless the MIT KDC tools are installed, naming the packages.
pub fn require_kdc_tools() {
    let missing: Vec<&str> = ["krb5kdc", "kdb5_util", "kadmin.local"]
        .into_iter()
        .filter(|tool| tool_path(tool).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "Kerberos tests need {}: install with `bash scripts/test.sh` (as root), or \
         apt-get install -y libkrb5-dev krb5-kdc krb5-admin-server krb5-user",
        missing.join(", ")
    );
}

/// `/usr/sbin/NAME`, or NAME found in `PATH`.
fn tool_path(name: &str) -> Option<PathBuf> {
    let sbin = Path::new(SBIN).join(name);
    if sbin.is_file() {
        return Some(sbin);
    }
    find_in_path(OsStr::new(name))
}

/// The client configuration: our realm, its one KDC, no DNS, default clock skew (300 s).
pub fn render_krb5_conf(realm: &str, kdc: SocketAddrV4) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "[libdefaults]");
    let _ = writeln!(s, "    default_realm = {realm}");
    let _ = writeln!(s, "    dns_lookup_kdc = false");
    let _ = writeln!(s, "    dns_lookup_realm = false");
    let _ = writeln!(s, "    rdns = false");
    let _ = writeln!(s, "    ignore_acceptor_hostname = false");
    let _ = writeln!(s, "\n[realms]");
    let _ = writeln!(s, "    {realm} = {{");
    let _ = writeln!(s, "        kdc = {kdc}");
    let _ = writeln!(s, "    }}");
    s
}

/// The KDC configuration: database, stash and listening address all under `dir`/`kdc`.
pub fn render_kdc_conf(realm: &str, listen: SocketAddrV4, dir: &Path) -> String {
    let d = dir.display();
    let mut s = String::new();
    let _ = writeln!(s, "[kdcdefaults]");
    let _ = writeln!(s, "    kdc_listen = {listen}");
    let _ = writeln!(s, "    kdc_tcp_listen = {listen}");
    let _ = writeln!(s, "\n[realms]");
    let _ = writeln!(s, "    {realm} = {{");
    let _ = writeln!(s, "        database_name = {d}/principal");
    let _ = writeln!(s, "        key_stash_file = {d}/stash");
    let _ = writeln!(s, "        acl_file = {d}/kadm5.acl");
    let _ = writeln!(s, "        max_life = 10h 0m 0s");
    let _ = writeln!(
        s,
        "        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes256-cts-hmac-sha384-192:normal"
    );
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "\n[logging]");
    let _ = writeln!(s, "    kdc = STDERR");
    s
}

/// A running KDC for [`REALM`], stopped (by PID) when dropped.
#[derive(Debug)]
pub struct Kdc {
    addr: SocketAddrV4,
    krb5_conf: PathBuf,
    kdc_conf: PathBuf,
    dir: PathBuf,
    // Field order is drop order: the KDC stops before its directory goes.
    child: ChildGuard,
    _lab: LabDir,
}

impl Kdc {
    /// Starts a KDC on `127.0.0.1` at a free port, with its files in `lab/kdc`.
    ///
    /// # Errors
    /// A tool is missing or fails, or the KDC does not come up.
    pub fn start(lab: &LabDir) -> Result<Self> {
        let port = free_loopback_port()?;
        Self::launch(lab, None, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    /// Starts a KDC inside `netns` on `addr:88` (`addr` must already be configured there,
    /// e.g. a [`Host`](crate::Host)'s outer address).
    ///
    /// # Errors
    /// A tool is missing or fails, or the KDC does not come up.
    pub fn start_in(lab: &LabDir, netns: &Netns, addr: Ipv4Addr) -> Result<Self> {
        Self::launch(lab, Some(netns), SocketAddrV4::new(addr, 88))
    }

    fn launch(lab: &LabDir, netns: Option<&Netns>, addr: SocketAddrV4) -> Result<Self> {
        require_kdc_tools();
        let dir = lab.subdir("kdc")?;
        let krb5_conf = dir.join("krb5.conf");
        let kdc_conf = dir.join("kdc.conf");
        write(&krb5_conf, &render_krb5_conf(REALM, addr))?;
        write(&kdc_conf, &render_kdc_conf(REALM, addr, &dir))?;
        write(&dir.join("kadm5.acl"), "")?;
        let envs = [
            ("KRB5_CONFIG", krb5_conf.as_os_str()),
            ("KRB5_KDC_PROFILE", kdc_conf.as_os_str()),
        ];
        let kdb5_util = tool_path("kdb5_util").unwrap_or_else(|| "kdb5_util".into());
        run_checked(
            Command::new(kdb5_util)
                .args(["-r", REALM, "create", "-s", "-P", "kink-test-master-key"])
                .envs(envs),
        )?;
        let log = dir.join("krb5kdc.log");
        let mut launch = Launch::new(
            tool_path("krb5kdc").unwrap_or_else(|| "krb5kdc".into()),
            &log,
        )
        .args(["-n", "-r", REALM])
        .env("KRB5_CONFIG", &krb5_conf)
        .env("KRB5_KDC_PROFILE", &kdc_conf)
        .term_timeout(Duration::from_secs(3));
        if let Some(ns) = netns {
            launch = launch.netns(ns);
        }
        let mut child = launch.spawn()?;
        let up = crate::wait_for(
            || log_contains(&log, "commencing operation") || child.try_exit_status().is_some(),
            START_TIMEOUT,
        );
        if !up || !child.is_running() {
            return Err(Error::Daemon(format!(
                "krb5kdc did not start on {addr}:\n{}",
                log_tail(&log, 20)
            )));
        }
        Ok(Self {
            addr,
            krb5_conf,
            kdc_conf,
            dir,
            child,
            _lab: lab.clone(),
        })
    }

    /// The address the KDC listens on (UDP and TCP).
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// The client `krb5.conf` naming this KDC, for the library under test.
    pub fn krb5_conf(&self) -> &Path {
        &self.krb5_conf
    }

    /// The KDC's directory (database, configuration, keytabs, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The KDC's log (stderr of `krb5kdc`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.child.log_path()).unwrap_or_default()
    }

    /// Whether `krb5kdc` still runs.
    pub fn is_running(&self) -> bool {
        self.child.is_running()
    }

    /// Runs `kadmin.local -q QUERY` on the database; returns its output.
    ///
    /// # Errors
    /// `kadmin.local` fails or reports an error.
    pub fn kadmin(&self, query: &str) -> Result<String> {
        let command = format!("kadmin.local -q {query:?}");
        let out = Command::new(tool_path("kadmin.local").unwrap_or_else(|| "kadmin.local".into()))
            .args(["-r", REALM, "-q", query])
            .env("KRB5_CONFIG", &self.krb5_conf)
            .env("KRB5_KDC_PROFILE", &self.kdc_conf)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(io_context(format!("run `{command}`")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // kadmin.local exits 0 even when the query fails; it then prints
        // "<request>: <reason> while <doing what>" on stderr.
        let failed = stderr.lines().any(|l| l.contains(" while "));
        if !out.status.success() || failed {
            return Err(Error::Command {
                command,
                status: out.status.to_string(),
                output: format!("{}\n{}", stderr.trim(), stdout.trim()),
            });
        }
        Ok(stdout)
    }

    /// Creates `kink/<host>@KINK.TEST` with a random key and exports it to
    /// `<dir>/<host>.keytab`; returns the principal and the keytab path.
    ///
    /// # Errors
    /// `kadmin.local` fails.
    pub fn add_host(&self, host: &str) -> Result<(String, PathBuf)> {
        let principal = format!("kink/{host}@{REALM}");
        self.kadmin(&format!("addprinc -randkey {principal}"))?;
        let keytab = self.dir.join(format!("{host}.keytab"));
        self.export_keytab(&principal, &keytab)?;
        Ok((principal, keytab))
    }

    /// Exports `principal`'s current keys to `keytab` without changing them.
    ///
    /// # Errors
    /// `kadmin.local` fails.
    pub fn export_keytab(&self, principal: &str, keytab: &Path) -> Result<()> {
        self.kadmin(&format!(
            "ktadd -norandkey -k {} {principal}",
            keytab.display()
        ))
        .map(drop)
    }

    /// Gives `principal` a new random key (key version + 1): keytabs exported before are stale.
    ///
    /// # Errors
    /// `kadmin.local` fails.
    pub fn change_key(&self, principal: &str) -> Result<()> {
        self.kadmin(&format!("cpw -randkey {principal}")).map(drop)
    }

    /// Sets attributes on `principal` (`modprinc ARGS principal`), e.g. `+requires_preauth`.
    ///
    /// # Errors
    /// `kadmin.local` fails.
    pub fn modify(&self, principal: &str, args: &str) -> Result<()> {
        self.kadmin(&format!("modprinc {args} {principal}"))
            .map(drop)
    }

    /// Runs `kinit -k -t KEYTAB PRINCIPAL` against this KDC (with a throwaway cache) inside
    /// `netns`, or here: proves the KDC answers from there.
    ///
    /// # Errors
    /// `kinit` fails.
    pub fn kinit(&self, netns: Option<&Netns>, principal: &str, keytab: &Path) -> Result<()> {
        let ccache = format!("FILE:{}", self.dir.join("kinit.ccache").display());
        let kt = keytab.display().to_string();
        let args = ["-k", "-t", kt.as_str(), "-c", ccache.as_str(), principal];
        let mut cmd = match netns {
            Some(ns) => ns.command("kinit"),
            None => Command::new("kinit"),
        };
        run_checked(cmd.args(args).env("KRB5_CONFIG", &self.krb5_conf)).map(drop)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(io_context(format!("write {}", path.display())))
}

/// A port free on 127.0.0.1 for both UDP and TCP right now (the KDC binds it a moment later;
/// a collision makes [`Kdc::start`] fail loudly, not hang).
fn free_loopback_port() -> Result<u16> {
    for _ in 0..32 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_context("bind udp"))?;
        let port = udp.local_addr().map_err(io_context("local addr"))?.port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(Error::Daemon(
        "no port free for both UDP and TCP on 127.0.0.1".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_conf_names_only_our_kdc() {
        let conf = render_krb5_conf(REALM, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40088));
        assert!(conf.contains("default_realm = KINK.TEST"));
        assert!(conf.contains("kdc = 127.0.0.1:40088"));
        assert!(conf.contains("dns_lookup_kdc = false"));
    }

    #[test]
    fn kdc_conf_keeps_everything_in_the_lab() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 53), 88);
        let conf = render_kdc_conf(REALM, addr, Path::new("/tmp/lab/kdc"));
        assert!(conf.contains("kdc_listen = 192.0.2.53:88"));
        assert!(conf.contains("kdc_tcp_listen = 192.0.2.53:88"));
        assert!(conf.contains("database_name = /tmp/lab/kdc/principal"));
        assert!(conf.contains("key_stash_file = /tmp/lab/kdc/stash"));
        assert!(!conf.contains("/var/lib/krb5kdc"));
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_loopback_port().expect("port");
        assert!(port > 0);
        UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).expect("udp still free");
    }
}
