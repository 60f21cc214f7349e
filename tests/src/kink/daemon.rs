//! [`Kinkd`]: spmd + kinkd in one host's namespace, stopped on drop.

use super::*;

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
