//! strongSwan 5.9 (Debian) peers: one charon per namespace, configured from Rust.
//!
//! Each [`StrongSwan`] gets its own directory in the lab with a generated `strongswan.conf`
//! (passed as `STRONGSWAN_CONF`), a `swanctl/swanctl.conf` rendered from [`SwanConn`]s, its
//! log, its vici socket and a private `run/` bind-mounted over `/run` (charon's PID file path
//! is compiled in). The recipe and every setting come from
//! `shared/notes/strongswan-in-netns.md`:
//!
//! - an explicit plugin list with `kdf` (gotcha 2) and kernel-libipsec before kernel-netlink
//!   (gotcha 3): the kernels here have no ESP, so ESP runs in charon's libipsec over a TUN
//!   device `ipsec0`, always UDP-encapsulated (`TUNNEL-in-UDP`), tunnel mode only;
//! - `allow_peer_ts` and the fwmark pair, so host-to-host selectors work (gotcha 4);
//! - leftover `ip rule pref 220` removed on start and stop (gotcha 13).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::lab::LabDir;
use crate::netns::{Host, Netns};
use crate::process::{ChildGuard, Launch, log_contains, log_tail, run_checked, wait_for};
use crate::{Error, Result, io_context};

/// The charon daemon from Debian's `strongswan-charon`.
pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// Where Debian installs strongSwan's plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/ipsec/plugins";

/// The `charon.load` list: `kdf` is required, kernel-libipsec must precede kernel-netlink.
pub const PLUGINS: &str = "random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey kernel-libipsec kernel-netlink socket-default vici";

/// The `swanctl.load` list: enough to parse PSK and certificate credentials. Without it
/// swanctl tries Debian's compiled-in list and warns about missing `test-vectors`.
pub const SWANCTL_PLUGINS: &str = "random nonce openssl pem pkcs1 pkcs8 x509 pubkey";

/// Routing-rule preference (and table) that libipsec uses.
pub const LIBIPSEC_RULE_PREF: u32 = 220;

/// How long to wait for charon's vici socket (measured: 0.05-0.13 s).
const VICI_TIMEOUT: Duration = Duration::from_secs(10);

/// When charon starts a connection (`children.<child>.start_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartAction {
    /// Wait for `swanctl --initiate` or the peer.
    #[default]
    None,
    /// Install a trap policy; the first packet triggers negotiation.
    Trap,
    /// Initiate as soon as the config is loaded.
    Start,
}

impl StartAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Trap => "trap",
            Self::Start => "start",
        }
    }
}

/// IPsec mode of a CHILD_SA (`children.<child>.mode`).
///
/// libipsec rejects transport mode ("IPsec SA: unsupported mode"); it is here for configs
/// that use kernel-netlink against a kernel with ESP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Tunnel mode.
    #[default]
    Tunnel,
    /// Transport mode.
    Transport,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tunnel => "tunnel",
            Self::Transport => "transport",
        }
    }
}

/// One swanctl connection with one PSK-authenticated child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwanConn {
    /// Connection name (`connections.<name>`).
    pub name: String,
    /// The child's name (`children.<child>`), what [`StrongSwan::initiate`] takes.
    pub child: String,
    /// Local IKE addresses.
    pub local_addrs: Vec<String>,
    /// Remote IKE addresses.
    pub remote_addrs: Vec<String>,
    /// Local IKE identity.
    pub local_id: String,
    /// Remote IKE identity.
    pub remote_id: String,
    /// The pre-shared key.
    pub psk: String,
    /// IKE proposals, e.g. `aes128-sha256-x25519`.
    pub ike_proposals: String,
    /// ESP proposals, e.g. `aes128gcm16`.
    pub esp_proposals: String,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// When to start the child.
    pub start_action: StartAction,
    /// Tunnel or transport.
    pub mode: Mode,
    /// IKE version: 1 or 2.
    pub version: u8,
    /// The child's `rekey_time` (e.g. `"5s"`); `None` keeps strongSwan's default.
    pub child_rekey_time: Option<String>,
    /// The IKE SA's `rekey_time`; `None` keeps strongSwan's default.
    pub ike_rekey_time: Option<String>,
}

impl SwanConn {
    /// IKEv2 PSK over IPv4 between two lab hosts, tunnelling their IPv4 LANs;
    /// `aes128-sha256-x25519` and ESP `aes128gcm16`. Named `v2psk4`, child `net4`.
    pub fn psk_tunnel_v4(local: &Host, remote: &Host) -> Self {
        Self {
            name: "v2psk4".into(),
            child: "net4".into(),
            local_addrs: vec![local.outer_v4.to_string()],
            remote_addrs: vec![remote.outer_v4.to_string()],
            local_id: local.ike_id(),
            remote_id: remote.ike_id(),
            psk: "racoon3-interop-psk-0123456789".into(),
            ike_proposals: "aes128-sha256-x25519".into(),
            esp_proposals: "aes128gcm16".into(),
            local_ts: vec![local.lan_net_v4.into()],
            remote_ts: vec![remote.lan_net_v4.into()],
            start_action: StartAction::None,
            mode: Mode::Tunnel,
            version: 2,
            child_rekey_time: None,
            ike_rekey_time: None,
        }
    }

    /// As [`Self::psk_tunnel_v4`] over IPv6 outer addresses, tunnelling the IPv6 LANs.
    /// Named `v2psk6`, child `net6`.
    pub fn psk_tunnel_v6(local: &Host, remote: &Host) -> Self {
        Self {
            name: "v2psk6".into(),
            child: "net6".into(),
            local_addrs: vec![local.outer_v6.to_string()],
            remote_addrs: vec![remote.outer_v6.to_string()],
            local_ts: vec![local.lan_net_v6.into()],
            remote_ts: vec![remote.lan_net_v6.into()],
            ..Self::psk_tunnel_v4(local, remote)
        }
    }

    /// The same connection seen from the peer: addresses, identities and selectors swapped.
    #[must_use]
    pub fn mirrored(&self) -> Self {
        Self {
            local_addrs: self.remote_addrs.clone(),
            remote_addrs: self.local_addrs.clone(),
            local_id: self.remote_id.clone(),
            remote_id: self.local_id.clone(),
            local_ts: self.remote_ts.clone(),
            remote_ts: self.local_ts.clone(),
            ..self.clone()
        }
    }

    /// This connection's `connections { .. }` entry.
    pub fn render_connection(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "  {} {{", self.name);
        let _ = writeln!(s, "    version = {}", self.version);
        let _ = writeln!(s, "    local_addrs = {}", self.local_addrs.join(","));
        let _ = writeln!(s, "    remote_addrs = {}", self.remote_addrs.join(","));
        let _ = writeln!(s, "    proposals = {}", self.ike_proposals);
        if let Some(t) = &self.ike_rekey_time {
            let _ = writeln!(
                s,
                "    rekey_time = {t}\n    over_time = 60s\n    rand_time = 0s"
            );
        }
        let _ = writeln!(
            s,
            "    local {{\n      auth = psk\n      id = {}\n    }}",
            self.local_id
        );
        let _ = writeln!(
            s,
            "    remote {{\n      auth = psk\n      id = {}\n    }}",
            self.remote_id
        );
        let _ = writeln!(s, "    children {{\n      {} {{", self.child);
        let _ = writeln!(s, "        local_ts = {}", self.local_ts.join(","));
        let _ = writeln!(s, "        remote_ts = {}", self.remote_ts.join(","));
        let _ = writeln!(s, "        esp_proposals = {}", self.esp_proposals);
        let _ = writeln!(s, "        mode = {}", self.mode.as_str());
        if let Some(t) = &self.child_rekey_time {
            // Keep the hard lifetime well after the rekey, so the rekey happens.
            let _ = writeln!(
                s,
                "        rekey_time = {t}\n        life_time = 60s\n        rand_time = 0s"
            );
        }
        let _ = writeln!(s, "        start_action = {}", self.start_action.as_str());
        let _ = writeln!(s, "      }}\n    }}\n  }}");
        s
    }

    /// This connection's `secrets { .. }` entry.
    pub fn render_secret(&self) -> String {
        format!(
            "  ike-{} {{\n    id-local = {}\n    id-remote = {}\n    secret = \"{}\"\n  }}\n",
            self.name, self.local_id, self.remote_id, self.psk
        )
    }
}

/// A whole `swanctl.conf` for `conns`.
pub fn render_swanctl_conf(conns: &[SwanConn]) -> String {
    let connections: String = conns.iter().map(SwanConn::render_connection).collect();
    let secrets: String = conns.iter().map(SwanConn::render_secret).collect();
    format!("connections {{\n{connections}}}\n\nsecrets {{\n{secrets}}}\n")
}

/// The per-instance `strongswan.conf` for an instance directory `dir`.
pub fn render_strongswan_conf(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"# generated by the racoon3 interop harness
charon {{
  load = {PLUGINS}
  filelog {{
    lab {{
      path = {dir}/charon.log
      time_format = %H:%M:%S
      time_add_ms = yes
      ike_name = yes
      append = no
      flush_line = yes
      default = 1
      ike = 2
      cfg = 2
      knl = 2
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{dir}/charon.vici
    }}
    kernel-libipsec {{
      allow_peer_ts = yes
    }}
    kernel-netlink {{
      fwmark = !0x42
    }}
    socket-default {{
      fwmark = 0x42
    }}
  }}
}}
swanctl {{
  load = {SWANCTL_PLUGINS}
  socket = unix://{dir}/charon.vici
}}
"#
    )
}

/// A running charon in a namespace, stopped and cleaned up on `Drop`.
#[derive(Debug)]
pub struct StrongSwan {
    netns: Netns,
    dir: PathBuf,
    charon: ChildGuard,
    lab: LabDir,
}

impl StrongSwan {
    /// Writes the configs into `lab/<label>/`, starts charon inside `netns`, waits for its
    /// vici socket and loads `conns` with `swanctl --load-all`.
    ///
    /// # Errors
    /// A file cannot be written, charon exits or is not ready within 10 s, or swanctl fails.
    pub fn start(lab: &LabDir, netns: &Netns, label: &str, conns: &[SwanConn]) -> Result<Self> {
        let dir = lab.subdir(&format!("strongswan-{label}"))?;
        let vici = dir.join("charon.vici");
        if vici.as_os_str().len() >= 100 {
            return Err(Error::Daemon(format!(
                "vici socket path too long for sun_path: {}",
                vici.display()
            )));
        }
        for sub in [
            "run",
            "swanctl/x509",
            "swanctl/x509ca",
            "swanctl/private",
            "swanctl/pubkey",
        ] {
            fs::create_dir_all(dir.join(sub)).map_err(io_context(format!("create {sub}")))?;
        }
        write(&dir.join("strongswan.conf"), &render_strongswan_conf(&dir))?;
        write(
            &dir.join("swanctl/swanctl.conf"),
            &render_swanctl_conf(conns),
        )?;
        // A socket left by an earlier instance with the same label would look ready at once.
        let _ = fs::remove_file(&vici);
        netns.flush_rule_pref(LIBIPSEC_RULE_PREF);
        let charon = Launch::new(charon_path(), dir.join("charon.out"))
            .netns(netns)
            .private_run(dir.join("run"))
            .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
            .spawn()?;
        let ss = Self {
            netns: netns.clone(),
            dir,
            charon,
            lab: lab.clone(),
        };
        ss.wait_ready(&vici)?;
        ss.swanctl(&["--load-all", "--noprompt"])?;
        Ok(ss)
    }

    fn wait_ready(&self, vici: &Path) -> Result<()> {
        let ready = wait_for(|| vici.exists() || !self.charon.is_running(), VICI_TIMEOUT);
        if ready && vici.exists() && self.charon.is_running() {
            return Ok(());
        }
        let what = if ready {
            "charon exited"
        } else {
            "charon's vici socket did not appear"
        };
        Err(Error::Daemon(format!(
            "{what} in netns {}\n--- charon.out ---\n{}\n--- charon.log ---\n{}",
            self.netns.name(),
            log_tail(self.dir.join("charon.out"), 20),
            log_tail(self.log_path(), 40)
        )))
    }

    /// Runs `swanctl args..` against this instance; returns its stdout.
    ///
    /// # Errors
    /// swanctl exits unsuccessfully.
    pub fn swanctl(&self, args: &[&str]) -> Result<String> {
        run_checked(
            Command::new("swanctl")
                .args(args)
                .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
                .env("SWANCTL_DIR", self.dir.join("swanctl")),
        )
    }

    /// Initiates CHILD_SA `child` (and its IKE_SA) and waits for the result (at most 30 s).
    ///
    /// # Errors
    /// Negotiation fails; the error carries swanctl's log output.
    pub fn initiate(&self, child: &str) -> Result<String> {
        self.swanctl(&["--initiate", "--child", child, "--timeout", "30"])
    }

    /// Terminates IKE_SA `ike` (by connection name) and waits for the result.
    ///
    /// # Errors
    /// swanctl fails.
    pub fn terminate_ike(&self, ike: &str) -> Result<String> {
        self.swanctl(&["--terminate", "--ike", ike, "--timeout", "10"])
    }

    /// `swanctl --list-sas` output.
    ///
    /// # Errors
    /// swanctl fails.
    pub fn list_sas(&self) -> Result<String> {
        self.swanctl(&["--list-sas"])
    }

    /// [`Self::list_sas`], parsed.
    ///
    /// # Errors
    /// swanctl fails.
    pub fn sas(&self) -> Result<Vec<IkeSaStatus>> {
        self.list_sas().map(|out| parse_list_sas(&out))
    }

    /// Waits until IKE_SA `ike` is ESTABLISHED with CHILD_SA `child` INSTALLED.
    ///
    /// # Errors
    /// Not so within `timeout`; the error shows the last `--list-sas` output.
    pub fn wait_established(
        &self,
        ike: &str,
        child: &str,
        timeout: Duration,
    ) -> Result<IkeSaStatus> {
        let mut found = None;
        let ok = wait_for(
            || {
                found = self
                    .sas()
                    .ok()
                    .and_then(|sas| sas.into_iter().find(|sa| sa.is_up(ike, child)));
                found.is_some()
            },
            timeout,
        );
        match found {
            Some(sa) if ok => Ok(sa),
            _ => Err(Error::Timeout {
                what: format!(
                    "{ike}/{child} ESTABLISHED/INSTALLED in {}; list-sas:\n{}",
                    self.netns.name(),
                    self.list_sas().unwrap_or_else(|e| e.to_string())
                ),
                timeout,
            }),
        }
    }

    /// The charon log file (`charon.filelog`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("charon.log")
    }

    /// The charon log so far.
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Whether the charon log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        log_contains(self.log_path(), needle)
    }

    /// The instance directory (configs, logs, vici socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The namespace charon runs in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// charon's process guard (PID, start time).
    pub fn charon(&self) -> &ChildGuard {
        &self.charon
    }

    /// Whether charon is still running.
    pub fn is_running(&self) -> bool {
        self.charon.is_running()
    }
}

impl Drop for StrongSwan {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- charon log, netns {} (last 60 lines) ---\n{}",
                self.netns.name(),
                log_tail(self.log_path(), 60)
            );
        }
        self.charon.stop();
        self.netns.flush_rule_pref(LIBIPSEC_RULE_PREF);
        if !self.lab.keep() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The charon binary: `$RACOON3_CHARON` or Debian's [`CHARON`].
fn charon_path() -> PathBuf {
    std::env::var_os("RACOON3_CHARON").map_or_else(|| PathBuf::from(CHARON), PathBuf::from)
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(io_context(format!("write {}", path.display())))
}

/// One IKE_SA from `swanctl --list-sas`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IkeSaStatus {
    /// Connection name.
    pub name: String,
    /// `ESTABLISHED`, `CONNECTING`, `REKEYING`, `DELETING`, ..
    pub state: String,
    /// `IKEv1` or `IKEv2`.
    pub version: String,
    /// Negotiated algorithms, e.g. `AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519`
    /// (empty before IKE_SA_INIT completes).
    pub ike_algs: String,
    /// Its CHILD_SAs.
    pub children: Vec<ChildSaStatus>,
}

impl IkeSaStatus {
    /// Whether this is IKE_SA `ike`, ESTABLISHED, with CHILD_SA `child` INSTALLED.
    pub fn is_up(&self, ike: &str, child: &str) -> bool {
        self.name == ike
            && self.state == "ESTABLISHED"
            && self
                .children
                .iter()
                .any(|c| c.name == child && c.state == "INSTALLED")
    }
}

/// One CHILD_SA from `swanctl --list-sas`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildSaStatus {
    /// Child name.
    pub name: String,
    /// `INSTALLED`, `REKEYED`, `DELETING`, ..
    pub state: String,
    /// `TUNNEL`, `TUNNEL-in-UDP`, `TRANSPORT`, ..
    pub mode: String,
    /// Algorithms after `ESP:`, e.g. `AES_GCM_16-128`.
    pub esp_algs: String,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
}

/// Parses the text output of `swanctl --list-sas` (strongSwan 5.9).
///
/// Layout: an IKE_SA line at column 0 (`name: #1, ESTABLISHED, IKEv2, spis`), its details at
/// column 2 (the algorithm line is the one bare token with a `/`), CHILD_SA lines at column 2
/// (`name: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128`), their details at
/// column 4 (`local  ts..`, `remote ts..`). Unknown lines are ignored.
pub fn parse_list_sas(text: &str) -> Vec<IkeSaStatus> {
    let mut sas: Vec<IkeSaStatus> = Vec::new();
    for line in text.lines() {
        let body = line.trim_start();
        if body.is_empty() {
            continue;
        }
        match line.len() - body.len() {
            0 => sas.extend(parse_ike_line(body)),
            2 => parse_ike_detail(sas.last_mut(), body),
            _ => parse_child_detail(sas.last_mut().and_then(|sa| sa.children.last_mut()), body),
        }
    }
    sas
}

/// `name: #1, ESTABLISHED, IKEv2, ...`
fn parse_ike_line(line: &str) -> Option<IkeSaStatus> {
    let (name, rest) = line.split_once(": #")?;
    let fields: Vec<&str> = rest.split(", ").collect();
    Some(IkeSaStatus {
        name: name.to_owned(),
        state: fields.get(1)?.to_string(),
        version: fields.get(2).map(|s| s.to_string()).unwrap_or_default(),
        ..IkeSaStatus::default()
    })
}

fn parse_ike_detail(sa: Option<&mut IkeSaStatus>, body: &str) {
    let Some(sa) = sa else { return };
    if let Some(child) = parse_child_line(body) {
        sa.children.push(child);
    } else if !body.contains(char::is_whitespace) && body.contains('/') && !body.contains(':') {
        sa.ike_algs = body.to_owned();
    }
}

/// `name: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128`
fn parse_child_line(line: &str) -> Option<ChildSaStatus> {
    let (name, rest) = line.split_once(": #")?;
    let fields: Vec<&str> = rest.split(", ").collect();
    if !fields.get(1)?.starts_with("reqid ") {
        return None;
    }
    let field = |i: usize| fields.get(i).map(|s| s.to_string()).unwrap_or_default();
    let algs = field(4);
    Some(ChildSaStatus {
        name: name.to_owned(),
        state: field(2),
        mode: field(3),
        esp_algs: algs.strip_prefix("ESP:").map(str::to_owned).unwrap_or(algs),
        ..ChildSaStatus::default()
    })
}

fn parse_child_detail(child: Option<&mut ChildSaStatus>, body: &str) {
    let Some(child) = child else { return };
    let mut words = body.split_whitespace();
    let list = match words.next() {
        Some("local") => &mut child.local_ts,
        Some("remote") => &mut child.remote_ts,
        _ => return,
    };
    list.extend(words.map(str::to_owned));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From `shared/notes/strongswan-in-netns.md` (strongSwan 5.9.8, host A).
    const NOTES_SAMPLE: &str = "\
v2psk4: #1, ESTABLISHED, IKEv2, 621a73cfb720427a_i* cc304521c7ede90c_r
  local  'a.lab.example' @ 192.0.2.1[4500]
  remote 'b.lab.example' @ 192.0.2.2[4500]
  AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256
  net4: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128
    in  e9a81e8a,      0 bytes,     0 packets
    out a160128e,      0 bytes,     0 packets
    local  198.51.100.0/24
    remote 203.0.113.0/24
";

    #[test]
    fn parses_notes_sample() {
        let sas = parse_list_sas(NOTES_SAMPLE);
        assert_eq!(
            sas,
            [IkeSaStatus {
                name: "v2psk4".into(),
                state: "ESTABLISHED".into(),
                version: "IKEv2".into(),
                ike_algs: "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256".into(),
                children: vec![ChildSaStatus {
                    name: "net4".into(),
                    state: "INSTALLED".into(),
                    mode: "TUNNEL-in-UDP".into(),
                    esp_algs: "AES_GCM_16-128".into(),
                    local_ts: vec!["198.51.100.0/24".into()],
                    remote_ts: vec!["203.0.113.0/24".into()],
                }],
            }]
        );
        assert!(sas[0].is_up("v2psk4", "net4"));
        assert!(!sas[0].is_up("v2psk4", "net6"));
    }

    /// Shape of real 5.9.8 output with timing lines, IPv6 and a second, half-open IKE_SA.
    #[test]
    fn parses_timings_ipv6_and_connecting() {
        let text = "\
v2psk6: #2, ESTABLISHED, IKEv2, 1111111111111111_i 2222222222222222_r*
  local  'b.lab.example' @ 2001:db8::2[4500]
  remote 'a.lab.example' @ 2001:db8::1[4500]
  AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519
  established 1s ago, rekeying in 13923s
  net6: #2, reqid 2, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-128/HMAC_SHA2_256_128
    installed 1s ago, rekeying in 3285s, expires in 3959s
    in  c1a3b3e5,     84 bytes,     1 packets,     0s ago
    out c9fe2d0a,     84 bytes,     1 packets,     0s ago
    local  2001:db8:b::/48 2001:db8:bb::/48
    remote 2001:db8:a::/48
other: #3, CONNECTING, IKEv2, 3333333333333333_i* 0000000000000000_r
  local  '%any' @ 192.0.2.1[500]
  remote '%any' @ 192.0.2.9[500]
";
        let sas = parse_list_sas(text);
        assert_eq!(sas.len(), 2);
        assert_eq!(
            sas[0].ike_algs,
            "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519"
        );
        let child = &sas[0].children[0];
        assert_eq!(child.esp_algs, "AES_CBC-128/HMAC_SHA2_256_128");
        assert_eq!(child.local_ts, ["2001:db8:b::/48", "2001:db8:bb::/48"]);
        assert_eq!(child.remote_ts, ["2001:db8:a::/48"]);
        assert_eq!(
            (sas[1].name.as_str(), sas[1].state.as_str()),
            ("other", "CONNECTING")
        );
        assert!(sas[1].ike_algs.is_empty() && sas[1].children.is_empty());
        assert!(parse_list_sas("").is_empty());
    }

    #[test]
    fn swanctl_conf_has_both_sides() {
        let conn = SwanConn {
            name: "c".into(),
            child: "k".into(),
            local_addrs: vec!["192.0.2.1".into()],
            remote_addrs: vec!["192.0.2.2".into()],
            local_id: "a.lab.example".into(),
            remote_id: "b.lab.example".into(),
            psk: "secret".into(),
            ike_proposals: "aes128-sha256-x25519".into(),
            esp_proposals: "aes128gcm16".into(),
            local_ts: vec!["198.51.100.0/24".into()],
            remote_ts: vec!["203.0.113.0/24".into()],
            start_action: StartAction::Trap,
            mode: Mode::Tunnel,
            version: 2,
            child_rekey_time: None,
            ike_rekey_time: None,
        };
        let text = render_swanctl_conf(std::slice::from_ref(&conn));
        for needle in [
            "  c {\n    version = 2\n",
            "local_addrs = 192.0.2.1\n",
            "proposals = aes128-sha256-x25519\n",
            "      k {\n        local_ts = 198.51.100.0/24\n        remote_ts = 203.0.113.0/24\n",
            "start_action = trap\n",
            "ike-c {\n    id-local = a.lab.example\n    id-remote = b.lab.example\n    secret = \"secret\"\n",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        assert_eq!(text.matches('{').count(), text.matches('}').count());
        let back = conn.mirrored();
        assert_eq!(
            (back.local_id.as_str(), back.remote_ts[0].as_str()),
            ("b.lab.example", "198.51.100.0/24")
        );
        assert_eq!(back.mirrored(), conn);
    }

    #[test]
    fn strongswan_conf_follows_the_notes() {
        let text = render_strongswan_conf(Path::new("/tmp/lab/x"));
        assert!(text.contains(&format!("load = {PLUGINS}\n")));
        let libipsec = PLUGINS.find("kernel-libipsec").expect("libipsec");
        assert!(
            libipsec < PLUGINS.find("kernel-netlink").expect("netlink"),
            "gotcha 3"
        );
        assert!(PLUGINS.split(' ').any(|p| p == "kdf"), "gotcha 2");
        for needle in [
            "path = /tmp/lab/x/charon.log",
            "socket = unix:///tmp/lab/x/charon.vici",
            "allow_peer_ts = yes",
            "fwmark = !0x42",
            "fwmark = 0x42",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
    }
}
