//! The two-host KINK lab: namespaces, the KDC, principals and keytabs,
//! and each host's racoon2.conf.

use super::*;

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
