//! Running one hook script: its own process group, stdin `/dev/null`, a
//! cleared environment, each output line logged, a timeout, and the exit
//! status logged.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use libracoon::config::HookEvent;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinSet;

use super::Env;

/// How long the log waits for a finished script's last output lines (a
/// background process it left may hold the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// racoon2 gives scripts no `PATH` at all; racoon3 gives them this one, so
/// shell scripts find their tools however iked was started.
pub(super) const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One script to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) event: HookEvent,
    pub(crate) script: PathBuf,
    pub(crate) env: Env,
}

/// How a script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It could not be started (missing, not executable, ...).
    NotStarted,
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it (not ours).
    Signalled(i32),
    /// It outlived the timeout and was killed.
    Killed,
    /// Waiting for it failed; it is killed when dropped.
    Lost,
}

impl Run {
    /// Runs the script to its end or its timeout, logging its output and
    /// how it ended.
    pub(crate) async fn execute(self, timeout: Duration) {
        let started = Instant::now();
        let outcome = self.run(timeout).await;
        let (event, script) = (self.event.name(), self.script.display());
        let ms = started.elapsed().as_millis();
        match outcome {
            Outcome::NotStarted | Outcome::Lost => {}
            Outcome::Exited(0) => tracing::info!("hook {event} {script}: exited 0 after {ms} ms"),
            Outcome::Exited(n) => {
                tracing::warn!("hook {event} {script}: exited with status {n} after {ms} ms")
            }
            Outcome::Signalled(n) => tracing::warn!("hook {event} {script}: ended by signal {n}"),
            Outcome::Killed => tracing::warn!(
                "hook {event} {script}: still running after {} s; killed",
                timeout.as_secs()
            ),
        }
    }

    /// Spawns the script (racoon2's `argv[1]` is the event name) and
    /// waits for it, killing its process group at `timeout`.
    pub(crate) async fn run(&self, timeout: Duration) -> Outcome {
        let mut cmd = tokio::process::Command::new(&self.script);
        cmd.arg(self.event.name())
            .env_clear()
            .env("PATH", SCRIPT_PATH)
            .envs(self.env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    "hook {} {}: cannot run it: {e}",
                    self.event.name(),
                    self.script.display()
                );
                return Outcome::NotStarted;
            }
        };
        let prefix = format!("hook {} {}", self.event.name(), self.script.display());
        let mut lines = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            lines.spawn(log_lines(out, prefix.clone(), ""));
        }
        if let Some(err) = child.stderr.take() {
            lines.spawn(log_lines(err, prefix, " (stderr)"));
        }
        let outcome = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => outcome_of(status),
            Ok(Err(e)) => {
                tracing::warn!("hook {}: waiting for it failed: {e}", self.script.display());
                Outcome::Lost
            }
            Err(_) => {
                kill_group(child.id());
                let _ = child.wait().await;
                Outcome::Killed
            }
        };
        let _ = tokio::time::timeout(OUTPUT_GRACE, async {
            while lines.join_next().await.is_some() {}
        })
        .await;
        outcome
    }
}

fn outcome_of(status: ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited(code),
        (None, Some(sig)) => Outcome::Signalled(sig),
        (None, None) => Outcome::Lost,
    }
}

/// SIGKILL to the script's process group (it leads it: `process_group(0)`).
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Logs each line of a script's output, prefixed, until it closes.
async fn log_lines(stream: impl AsyncRead + Unpin, prefix: String, what: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!("{prefix}{what}: {line}");
    }
}
