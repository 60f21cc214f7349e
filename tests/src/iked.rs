//! racoon3's `iked` as a guarded process in a namespace.
//!
//! The binary is found, in order, through `$CARGO_BIN_EXE_iked` (at run time, then at compile
//! time), `$CARGO_TARGET_DIR/debug/iked`, then `target/debug/iked` in the workspace root.
//! Building it is the test runner's job (`cargo build --workspace --bins`, as
//! `scripts/test.sh` does); [`Iked::start`] fails with a clear message when it is missing.
//!
//! The command line uses racoon2's flags: `iked -F -f CONF -D 2 -l LOGFILE --run-dir DIR
//! [-I PEER_ADDR]` (foreground, config, trace debug, log file, PID/socket directory, and the
//! peer to initiate to).

use std::ffi::OsString;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lab::LabDir;
use crate::netns::Netns;
use crate::process::{ChildGuard, Launch, log_contains, log_tail, wait_for};
use crate::{Error, Result, io_context};

/// `-D` flags: racoon2's 2 = trace.
pub const DEBUG_FLAGS: &str = "2";

/// Where an [`Iked`] keeps its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkedPaths {
    /// The config file (`-f`).
    pub conf: PathBuf,
    /// The log file (`-l`).
    pub log: PathBuf,
    /// The run directory for PID file and control socket (`--run-dir`).
    pub run_dir: PathBuf,
    /// stdout and stderr of the process.
    pub out: PathBuf,
}

impl IkedPaths {
    /// The layout inside an instance directory `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            conf: dir.join("racoon2.conf"),
            log: dir.join("iked.log"),
            run_dir: dir.join("run"),
            out: dir.join("iked.out"),
        }
    }
}

/// A running `iked`, with the `spmd` it needs (same namespace, config and
/// run directory; not with `--kernel memory`), both stopped on `Drop`.
#[derive(Debug)]
pub struct Iked {
    paths: IkedPaths,
    netns: Netns,
    dir: PathBuf,
    child: ChildGuard,
    spmd: Option<ChildGuard>,
    lab: LabDir,
}

impl Iked {
    /// The `iked` binary to test (see the module docs).
    pub fn binary() -> PathBuf {
        if let Some(path) = std::env::var_os("CARGO_BIN_EXE_iked") {
            return path.into();
        }
        if let Some(path) = option_env!("CARGO_BIN_EXE_iked") {
            return path.into();
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from);
        target.join("debug").join("iked")
    }

    /// Runs racoonctl against this iked's run directory; returns (exit code, stdout, stderr).
    ///
    /// # Errors
    /// racoonctl cannot be started (not built?).
    pub fn racoonctl(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let bin = Self::binary().with_file_name("racoonctl");
        let out = std::process::Command::new(&bin)
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

    /// The arguments (after the program name) for `paths` and an optional peer to initiate to.
    pub fn args(paths: &IkedPaths, peer: Option<IpAddr>) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-F".into(), "-f".into(), paths.conf.clone().into()];
        args.extend([
            "-D".into(),
            DEBUG_FLAGS.into(),
            "-l".into(),
            paths.log.clone().into(),
        ]);
        args.extend(["--run-dir".into(), paths.run_dir.clone().into()]);
        if let Some(peer) = peer {
            args.extend(["-I".into(), peer.to_string().into()]);
        }
        args
    }

    /// Writes `conf` to `lab/iked-<label>/racoon2.conf` and starts iked in `netns`.
    ///
    /// `peer`, if given, becomes `-I PEER` (initiate to it at once).
    ///
    /// # Errors
    /// The binary is missing, a file cannot be written, or the process cannot start.
    pub fn start(
        lab: &LabDir,
        netns: &Netns,
        label: &str,
        conf: &str,
        peer: Option<IpAddr>,
    ) -> Result<Self> {
        Self::start_with(lab, netns, label, conf, peer, &[])
    }

    /// As [`Self::start`], with extra command-line arguments (e.g. `--kernel memory`).
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn start_with(
        lab: &LabDir,
        netns: &Netns,
        label: &str,
        conf: &str,
        peer: Option<IpAddr>,
        extra: &[&str],
    ) -> Result<Self> {
        let binary = Self::binary();
        if !binary.is_file() {
            return Err(Error::Daemon(format!(
                "iked binary {} not found: run `cargo build --workspace --bins` first",
                binary.display()
            )));
        }
        let dir = lab.subdir(&format!("iked-{label}"))?;
        let paths = IkedPaths::in_dir(&dir);
        fs::create_dir_all(&paths.run_dir).map_err(io_context("create iked run dir"))?;
        fs::write(&paths.conf, conf)
            .map_err(io_context(format!("write {}", paths.conf.display())))?;
        let spmd = if extra.contains(&"memory") {
            None
        } else {
            Some(Self::spawn_spmd(&paths, netns)?)
        };
        let child = Launch::new(binary, &paths.out)
            .netns(netns)
            .args(Self::args(&paths, peer))
            .args(extra.iter().map(OsString::from))
            // An `anyhow` error would otherwise carry a backtrace (the environment may set
            // RUST_BACKTRACE=1) that pushes the message out of the log tail we report.
            // Panics still print theirs.
            .env("RUST_LIB_BACKTRACE", "0")
            .spawn()?;
        Ok(Self {
            paths,
            netns: netns.clone(),
            dir,
            child,
            spmd,
            lab: lab.clone(),
        })
    }

    /// spmd's command line for `paths` (its log is `spmd.log` next to iked's).
    pub fn spmd_args(paths: &IkedPaths) -> Vec<OsString> {
        vec![
            "-F".into(),
            "-f".into(),
            paths.conf.clone().into(),
            "-D".into(),
            DEBUG_FLAGS.into(),
            "-l".into(),
            paths.log.with_file_name("spmd.log").into(),
            "--run-dir".into(),
            paths.run_dir.clone().into(),
        ]
    }

    fn spawn_spmd(paths: &IkedPaths, netns: &Netns) -> Result<ChildGuard> {
        let binary = Self::binary().with_file_name("spmd");
        if !binary.is_file() {
            return Err(Error::Daemon(format!(
                "spmd binary {} not found: run `cargo build --workspace --bins` first",
                binary.display()
            )));
        }
        Launch::new(binary, paths.out.with_file_name("spmd.out"))
            .netns(netns)
            .args(Self::spmd_args(paths))
            .env("RUST_LIB_BACKTRACE", "0")
            .spawn()
    }

    /// Kills spmd with SIGKILL (a crash) and starts a new one on the same
    /// files, as a supervisor would.
    ///
    /// # Errors
    /// spmd cannot be restarted.
    pub fn crash_and_restart_spmd(&mut self) -> Result<()> {
        if let Some(mut old) = self.spmd.take() {
            old.kill();
        }
        self.spmd = Some(Self::spawn_spmd(&self.paths, &self.netns)?);
        Ok(())
    }

    /// spmd's log so far.
    pub fn spmd_log(&self) -> String {
        fs::read(self.paths.log.with_file_name("spmd.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The spmd process guard, if one runs.
    pub fn spmd_mut(&mut self) -> Option<&mut ChildGuard> {
        self.spmd.as_mut()
    }

    /// The log so far (`-l` file).
    pub fn log(&self) -> String {
        fs::read(&self.paths.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    ///
    /// # Errors
    /// Not within `timeout`, or iked exited first; the error carries the log's tail.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let log = &self.paths.log;
        wait_for(|| log_contains(log, needle) || !self.is_running(), timeout);
        if log_contains(log, needle) {
            return Ok(());
        }
        let why = if self.is_running() {
            "timed out"
        } else {
            "iked exited"
        };
        Err(Error::Daemon(format!(
            "{why} waiting {timeout:?} for {needle:?} in {}\n--- iked.log ---\n{}\n--- iked.out ---\n{}",
            log.display(),
            log_tail(log, 40),
            log_tail(&self.paths.out, 20)
        )))
    }

    /// Whether iked is still running.
    pub fn is_running(&self) -> bool {
        self.child.is_running()
    }

    /// Its files.
    pub fn paths(&self) -> &IkedPaths {
        &self.paths
    }

    /// The namespace it runs in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The inbound SPI (8 hex digits) of the first CHILD SA `racoonctl
    /// show sa --json` lists, if any: what `racoonctl rekey` takes.
    pub fn first_child_spi_in(&self) -> Option<String> {
        let (_, sas, _) = self.racoonctl(&["--json", "show", "sa"]).ok()?;
        sas.split("\"spi_in\":\"")
            .nth(1)
            .and_then(|rest| rest.get(..8))
            .map(str::to_owned)
    }

    /// Stops iked (SIGTERM) and starts a new one with the same
    /// configuration and run directory, without `-I` or extra arguments;
    /// spmd keeps running. Both write to the same (appended) log.
    ///
    /// # Errors
    /// The new process cannot start.
    pub fn restart(&mut self) -> Result<()> {
        self.child.stop();
        self.child = Launch::new(Self::binary(), &self.paths.out)
            .netns(&self.netns)
            .args(Self::args(&self.paths, None))
            .env("RUST_LIB_BACKTRACE", "0")
            .spawn()?;
        Ok(())
    }

    /// The process guard (PID, start time), e.g. to stop it early with `stop()`.
    pub fn child_mut(&mut self) -> &mut ChildGuard {
        &mut self.child
    }
}

impl Drop for Iked {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- iked log, netns {} (last 60 lines) ---\n{}\n--- iked.out ---\n{}\n--- spmd.log ---\n{}",
                self.netns.name(),
                log_tail(&self.paths.log, 60),
                log_tail(&self.paths.out, 20),
                log_tail(self.paths.log.with_file_name("spmd.log"), 30)
            );
        }
        self.child.stop();
        if let Some(spmd) = &mut self.spmd {
            spmd.stop();
        }
        if !self.lab.keep() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_racoon2_flags() {
        let paths = IkedPaths::in_dir(Path::new("/tmp/lab/iked-a"));
        let args = Iked::args(&paths, None);
        assert_eq!(
            args,
            [
                "-F",
                "-f",
                "/tmp/lab/iked-a/racoon2.conf",
                "-D",
                "2",
                "-l",
                "/tmp/lab/iked-a/iked.log",
                "--run-dir",
                "/tmp/lab/iked-a/run"
            ]
        );
        let with_peer = Iked::args(&paths, Some("192.0.2.2".parse().expect("addr")));
        assert_eq!(with_peer[args.len()..], ["-I", "192.0.2.2"]);
        let v6 = Iked::args(&paths, Some("2001:db8::2".parse().expect("addr")));
        assert_eq!(
            v6.last().map(OsString::as_os_str),
            Some("2001:db8::2".as_ref())
        );
    }

    #[test]
    fn binary_defaults_to_workspace_target() {
        let bin = Iked::binary();
        assert!(bin.ends_with("iked"), "{}", bin.display());
        if std::env::var_os("CARGO_BIN_EXE_iked").is_none()
            && std::env::var_os("CARGO_TARGET_DIR").is_none()
        {
            assert_eq!(bin, workspace_root().join("target/debug/iked"));
            assert!(workspace_root().join("Cargo.toml").is_file());
        }
    }
}
