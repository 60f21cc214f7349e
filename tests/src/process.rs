//! Child processes that stop when their guard drops, and polling helpers.
//!
//! [`Launch`] builds the command line: optionally `ip netns exec NS`, optionally a private
//! mount namespace with a directory bind-mounted over `/run` (charon's PID file path is
//! compiled in, so two charons need two `/run`s). Every wrapper `exec`s and none forks, so the
//! PID we record is the daemon's own. [`ChildGuard`] stops it on `Drop`: SIGTERM, then SIGKILL
//! after a timeout, and only while PID, start time and executable still match what was
//! launched.

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::lab::{Entry, ledger_add, ledger_remove};
use crate::netns::Netns;
use crate::{Error, Result, io_context};

/// How long [`ChildGuard`] waits after SIGTERM before SIGKILL, unless set otherwise.
///
/// charon needs about 1.5 s to exit after SIGTERM on these machines.
pub const DEFAULT_TERM_TIMEOUT: Duration = Duration::from_secs(5);

/// A command line to start under a [`ChildGuard`].
#[derive(Debug)]
#[must_use]
pub struct Launch {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    netns: Option<Netns>,
    private_run: Option<PathBuf>,
    log: PathBuf,
    term_timeout: Duration,
}

impl Launch {
    /// Starts `program`, with stdout and stderr appended to `log`.
    pub fn new(program: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            netns: None,
            private_run: None,
            log: log.into(),
            term_timeout: DEFAULT_TERM_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the process inside `netns` (which the guard keeps alive).
    pub fn netns(mut self, netns: &Netns) -> Self {
        self.netns = Some(netns.clone());
        self
    }

    /// Runs the process in a private mount namespace with `dir` bind-mounted over `/run`.
    ///
    /// `dir` must not be under `/run` itself.
    pub fn private_run(mut self, dir: impl Into<PathBuf>) -> Self {
        self.private_run = Some(dir.into());
        self
    }

    /// How long to wait after SIGTERM before SIGKILL.
    pub fn term_timeout(mut self, timeout: Duration) -> Self {
        self.term_timeout = timeout;
        self
    }

    /// The full argv, wrappers included (first element is the program run).
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.name()].map(OsString::from));
        }
        if let Some(dir) = &self.private_run {
            argv.extend(["unshare", "--mount", "--propagation", "slave", "--"].map(OsString::from));
            argv.extend(
                [
                    "sh",
                    "-c",
                    r#"mount --bind "$1" /run && shift && exec "$@""#,
                    "sh",
                ]
                .map(OsString::from),
            );
            argv.push(dir.clone().into_os_string());
        }
        argv.push(self.program.clone().into_os_string());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Starts the process.
    ///
    /// # Errors
    /// The log file cannot be opened or the process cannot be spawned.
    pub fn spawn(self) -> Result<ChildGuard> {
        let argv = self.argv();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io_context(format!("open {:?}", self.log)))?;
        let err_log = log.try_clone().map_err(io_context("dup log fd"))?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let child = cmd
            .spawn()
            .map_err(io_context(format!("spawn {}", render(&argv))))?;
        let pid = child.id();
        let start_time = proc_start_time(pid).unwrap_or(0);
        let exe = resolve_program(&self.program);
        let entry = Entry::Proc {
            pid,
            start: start_time,
            exe: exe.clone(),
        };
        ledger_add(&entry);
        Ok(ChildGuard {
            child,
            pid,
            start_time,
            exe,
            log: self.log,
            term_timeout: self.term_timeout,
            exit: None,
            entry,
            _netns: self.netns,
        })
    }
}

/// A started process, stopped on `Drop`.
///
/// It kills only its own process: PID, start time (from `/proc/PID/stat`) and executable must
/// still match. While the launch wrappers (`ip`, `unshare`, `sh`) have not yet `exec`ed the
/// program, the PID is still ours (we have not reaped it) and is signalled too.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    pid: u32,
    start_time: u64,
    exe: PathBuf,
    log: PathBuf,
    term_timeout: Duration,
    exit: Option<ExitStatus>,
    entry: Entry,
    _netns: Option<Netns>,
}

impl ChildGuard {
    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// The program the process is expected to run once the wrappers have `exec`ed.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The file that receives stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether the process is alive (not exited, not a zombie) and still ours.
    pub fn is_running(&self) -> bool {
        self.exit.is_none()
            && proc_start_time(self.pid) == Some(self.start_time)
            && proc_state(self.pid).is_some_and(|s| s != 'Z' && s != 'X')
    }

    /// Whether the PID still names the process we started: same start time, and the expected
    /// executable or one of the launch wrappers.
    pub fn owns_pid(&self) -> bool {
        if proc_start_time(self.pid) != Some(self.start_time) {
            return false;
        }
        match proc_exe(self.pid) {
            Some(exe) => exe == self.exe || is_wrapper(&exe),
            None => false, // zombie or gone: nothing to signal
        }
    }

    /// The exit status, if the process has exited (reaps it).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Stops the process: SIGTERM, wait up to the term timeout, then SIGKILL. Idempotent.
    ///
    /// Returns the exit status, or `None` if the PID no longer belonged to us.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.try_exit_status() {
            return Some(status);
        }
        if !self.owns_pid() {
            // Exited but not reaped yet (a zombie has no exe link), or not ours any more.
            return self.wait_exit(Duration::from_millis(200));
        }
        self.signal(Signal::TERM);
        if let Some(status) = self.wait_exit(self.term_timeout) {
            return Some(status);
        }
        eprintln!(
            "pid {} ({}) ignored SIGTERM, sending SIGKILL",
            self.pid,
            self.exe.display()
        );
        if self.owns_pid() {
            self.signal(Signal::KILL);
        }
        self.wait_exit(Duration::from_secs(5))
    }

    /// Kills the process with SIGKILL at once (a crash, for tests of
    /// recovery) and reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.try_exit_status().is_none() && self.owns_pid() {
            self.signal(Signal::KILL);
        }
        self.wait_exit(Duration::from_secs(5))
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            let _ = kill_process(pid, sig);
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(|| self.try_exit_status().is_some(), timeout);
        self.exit
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
        if self.exit.is_some() {
            ledger_remove(&self.entry);
        }
    }
}

/// Polls `predicate` until it returns true or `timeout` passes; returns its last answer.
///
/// Polls every 5 ms at first, backing off to 50 ms.
pub fn wait_for(mut predicate: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if predicate() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Whether the file at `path` exists and contains `needle`.
pub fn log_contains(path: impl AsRef<Path>, needle: &str) -> bool {
    fs::read(path).is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
}

/// The last `n` lines of a log file (empty if it cannot be read), for error messages.
pub fn log_tail(path: impl AsRef<Path>, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` to completion; returns its stdout, or an error with its stderr.
///
/// # Errors
/// The command cannot be started or exits unsuccessfully.
pub fn run_checked(cmd: &mut Command) -> Result<String> {
    let rendered = render(std::iter::once(cmd.get_program()).chain(cmd.get_args()));
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_context(format!("run `{rendered}`")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let output = [stderr.trim(), stdout.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Err(Error::Command {
        command: rendered,
        status: out.status.to_string(),
        output,
    })
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn proc_start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The target of `/proc/PID/exe` (absent for zombies and foreign processes).
pub fn proc_exe(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The state letter of `pid` (field 3 of `/proc/PID/stat`).
fn proc_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Fields of `/proc/PID/stat` after the `(comm)` field, which may contain spaces.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Sends SIGKILL to `pid` (for the crash sweeper, which has checked ownership).
pub(crate) fn signal_kill(pid: u32) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// Executables that may legitimately appear under our PID before the program's own `exec`.
fn is_wrapper(exe: &Path) -> bool {
    let name = exe.file_name().and_then(OsStr::to_str).unwrap_or("");
    matches!(
        name,
        "ip" | "unshare" | "sh" | "dash" | "bash" | "mount" | "env"
    )
}

/// Resolves a program name through `PATH` and symlinks, as `/proc/PID/exe` will show it.
fn resolve_program(program: &Path) -> PathBuf {
    let found = if program.components().count() > 1 {
        Some(program.to_owned())
    } else {
        find_in_path(program.as_os_str())
    };
    found
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| program.to_owned())
}

/// The first executable named `name` in `PATH`.
pub fn find_in_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn render<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(argv: I) -> String {
    argv.into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabDir;

    #[test]
    fn guard_stops_its_process() {
        let lab = LabDir::new("unit").expect("lab dir");
        let log = lab.path().join("sleep.log");
        let guard = Launch::new("sleep", &log)
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let (pid, start) = (guard.pid(), guard.start_time());
        assert!(wait_for(|| guard.is_running(), Duration::from_secs(2)));
        assert!(guard.owns_pid());
        assert_eq!(
            guard.exe().file_name().and_then(OsStr::to_str),
            Some("sleep")
        );
        drop(guard);
        assert_ne!(
            proc_start_time(pid),
            Some(start),
            "sleep {pid} survived its guard"
        );
    }

    #[test]
    fn output_goes_to_log() {
        let lab = LabDir::new("unit").expect("lab dir");
        let log = lab.path().join("echo.log");
        let mut guard = Launch::new("sh", &log)
            .args(["-c", "echo hello-out; echo hello-err >&2"])
            .spawn()
            .expect("spawn");
        assert!(wait_for(
            || guard.try_exit_status().is_some(),
            Duration::from_secs(5)
        ));
        assert!(log_contains(&log, "hello-out"));
        assert!(log_contains(&log, "hello-err"));
        assert!(!guard.is_running());
    }

    #[test]
    fn argv_wraps_netns_and_private_run() {
        let launch = Launch::new("/usr/lib/ipsec/charon", "/tmp/x.log")
            .private_run("/tmp/lab/run")
            .arg("--debug-ike")
            .arg("2");
        let argv: Vec<String> = launch
            .argv()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            argv[..5],
            ["unshare", "--mount", "--propagation", "slave", "--"]
        );
        assert_eq!(
            argv[9..],
            ["/tmp/lab/run", "/usr/lib/ipsec/charon", "--debug-ike", "2"]
        );
    }

    #[test]
    fn run_checked_reports_stderr() {
        let err =
            run_checked(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("oops") && msg.contains('3'), "{msg}");
        assert_eq!(
            run_checked(Command::new("echo").arg("hi")).expect("echo"),
            "hi\n"
        );
    }

    #[test]
    fn wait_for_times_out() {
        let t = Instant::now();
        assert!(!wait_for(|| false, Duration::from_millis(60)));
        assert!(t.elapsed() >= Duration::from_millis(60));
        assert!(wait_for(|| true, Duration::ZERO));
    }
}
