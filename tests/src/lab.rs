//! Per-test scratch directories, unique names, and the crash ledger.
//!
//! Names are `prefix + PID + counter`, so tests running in parallel (nextest runs each test in
//! its own process) never collide, and a leftover from a crashed run with the same name is
//! stale by construction and may be replaced.
//!
//! A test killed by a timeout never runs its `Drop`s. So every namespace, process and lab
//! directory a guard creates is also written to a ledger file of this process
//! (`$TMPDIR/racoon3-ledger-PID-STARTTIME`), and removed from it when the guard releases it.
//! [`sweep_stale`] (run once per process, when the first lab directory is made) cleans up the
//! ledgers of processes that are gone: it kills recorded processes whose executable and start
//! time still match, deletes recorded namespaces and directories, then the ledger.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};

use crate::process::{proc_exe, proc_start_time, signal_kill};
use crate::{Error, Result, io_context};

/// Environment variable that keeps lab directories (and charon/iked logs) after a test.
pub const KEEP_LAB_ENV: &str = "RACOON3_KEEP_LAB";

/// A name unique to this process and call: `{prefix}{pid}-{counter}`.
///
/// Keep `prefix` short where the name must fit an interface name (15 bytes).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{n}", std::process::id())
}

/// Whether `RACOON3_KEEP_LAB=1` is set.
pub fn keep_lab() -> bool {
    std::env::var_os(KEEP_LAB_ENV).is_some_and(|v| v == "1")
}

/// A scratch directory under [`std::env::temp_dir`], removed when the last clone drops.
///
/// Never under `/run`: charon runs with a private `/run` bind-mounted over the real one, which
/// would hide anything below it (strongswan-in-netns notes, gotcha 1).
#[derive(Clone, Debug)]
pub struct LabDir(Arc<LabDirInner>);

#[derive(Debug)]
struct LabDirInner {
    path: PathBuf,
    keep: bool,
}

impl LabDir {
    /// Creates `$TMPDIR/racoon3-{prefix}-{pid}-{n}`, replacing a stale one of the same name.
    ///
    /// # Errors
    /// The temporary directory is under `/run`, or the directory cannot be created.
    pub fn new(prefix: &str) -> Result<Self> {
        sweep_stale_once();
        let base = std::env::temp_dir();
        if base.starts_with("/run") || base.starts_with("/var/run") {
            return Err(Error::Daemon(format!(
                "TMPDIR {} is under /run, which charon's private /run hides; set TMPDIR elsewhere",
                base.display()
            )));
        }
        let path = base.join(unique_name(&format!("racoon3-{prefix}-")));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io_context(format!("remove stale {path:?}")))?;
        }
        fs::create_dir_all(&path).map_err(io_context(format!("create {path:?}")))?;
        let keep = keep_lab();
        if !keep {
            ledger_add(&Entry::Dir(path.clone()));
        }
        Ok(Self(Arc::new(LabDirInner { path, keep })))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Creates (if needed) and returns the subdirectory `name`.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.0.path.join(name);
        fs::create_dir_all(&dir).map_err(io_context(format!("create {dir:?}")))?;
        Ok(dir)
    }

    /// Whether this directory outlives the test (`RACOON3_KEEP_LAB=1`).
    pub fn keep(&self) -> bool {
        self.0.keep
    }
}

impl Drop for LabDirInner {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("{KEEP_LAB_ENV}=1: lab kept at {}", self.path.display());
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "warning: cannot remove lab dir {}: {e}",
                self.path.display()
            );
        }
        ledger_remove(&Entry::Dir(self.path.clone()));
    }
}

/// One resource recorded in the crash ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A network namespace (name under `/run/netns`).
    Netns(String),
    /// A process: PID, start time (clock ticks since boot), expected executable.
    Proc { pid: u32, start: u64, exe: PathBuf },
    /// A lab directory.
    Dir(PathBuf),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Netns(name) => write!(f, "netns {name}"),
            Self::Proc { pid, start, exe } => write!(f, "proc {pid} {start} {}", exe.display()),
            Self::Dir(path) => write!(f, "dir {}", path.display()),
        }
    }
}

impl Entry {
    fn parse(line: &str) -> Option<Self> {
        let (kind, rest) = line.split_once(' ')?;
        match kind {
            "netns" => Some(Self::Netns(rest.to_owned())),
            "dir" => Some(Self::Dir(PathBuf::from(rest))),
            "proc" => {
                let mut it = rest.splitn(3, ' ');
                let pid = it.next()?.parse().ok()?;
                let start = it.next()?.parse().ok()?;
                let exe = PathBuf::from(it.next()?);
                Some(Self::Proc { pid, start, exe })
            }
            _ => None,
        }
    }

    /// Releases a leftover of a dead test process.
    fn release_stale(&self) {
        match self {
            Self::Proc { pid, start, exe } => {
                let same = proc_start_time(*pid) == Some(*start)
                    && proc_exe(*pid).as_deref() == Some(exe.as_path());
                if same {
                    eprintln!("sweeping stale process {pid} ({})", exe.display());
                    signal_kill(*pid);
                }
            }
            Self::Netns(name) => {
                if Path::new("/run/netns").join(name).exists() {
                    eprintln!("sweeping stale netns {name}");
                    let _ = Command::new("ip").args(["netns", "del", name]).output();
                }
            }
            Self::Dir(path) => {
                let _ = fs::remove_dir_all(path);
            }
        }
    }
}

static LEDGER: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn ledger_path() -> Option<PathBuf> {
    let pid = std::process::id();
    let start = proc_start_time(pid)?;
    Some(std::env::temp_dir().join(format!("racoon3-ledger-{pid}-{start}")))
}

/// Records a resource so that a later run can release it if this process dies first.
pub(crate) fn ledger_add(entry: &Entry) {
    let mut ledger = LEDGER.lock().unwrap_or_else(|p| p.into_inner());
    ledger.push(entry.clone());
    write_ledger(&ledger);
}

/// Forgets a resource that its guard has released.
pub(crate) fn ledger_remove(entry: &Entry) {
    let mut ledger = LEDGER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = ledger.iter().position(|e| e == entry) {
        ledger.remove(i);
    }
    write_ledger(&ledger);
}

fn write_ledger(entries: &[Entry]) {
    let Some(path) = ledger_path() else { return };
    let result = if entries.is_empty() {
        match fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    } else {
        let text: String = entries.iter().map(|e| format!("{e}\n")).collect();
        fs::write(&path, text)
    };
    if let Err(e) = result {
        eprintln!("warning: cannot update ledger {}: {e}", path.display());
    }
}

fn sweep_stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sweep_stale);
}

/// Releases what dead test processes left behind (see the module docs).
///
/// A ledger is stale when its owner PID is gone or now has another start time. Processes
/// are killed only if executable and start time match the record; processes go first,
/// because a namespace whose daemon still runs stays alive after `ip netns del`
/// (strongswan-in-netns notes, gotcha 12).
pub fn sweep_stale() {
    let Ok(dir) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("racoon3-ledger-"))
        else {
            continue;
        };
        let Some((pid, start)) = owner.split_once('-') else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            continue;
        };
        if proc_start_time(pid) == Some(start) {
            continue; // owner alive
        }
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        let mut entries: Vec<Entry> = text.lines().filter_map(Entry::parse).collect();
        entries.sort_by_key(|e| match e {
            Entry::Proc { .. } => 0,
            Entry::Netns(_) => 1,
            Entry::Dir(_) => 2,
        });
        for e in &entries {
            e.release_stale();
        }
        let _ = fs::remove_file(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip() {
        let entries = [
            Entry::Netns("r3-a-12-0".into()),
            Entry::Proc {
                pid: 42,
                start: 123_456,
                exe: "/usr/lib/ipsec/charon".into(),
            },
            Entry::Dir("/tmp/racoon3-lab-12-1".into()),
            Entry::Dir("/tmp/dir with space".into()),
        ];
        for e in entries {
            assert_eq!(Entry::parse(&e.to_string()), Some(e));
        }
        assert_eq!(Entry::parse("bogus line"), None);
    }

    #[test]
    fn unique_names_differ() {
        let a = unique_name("x");
        let b = unique_name("x");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("x{}-", std::process::id())));
    }

    #[test]
    fn lab_dir_is_removed_on_drop() {
        let dir = LabDir::new("unit").expect("create lab dir");
        let path = dir.path().to_owned();
        let sub = dir.subdir("inner").expect("subdir");
        assert!(sub.is_dir());
        let keep = dir.keep();
        drop(dir);
        assert_eq!(path.exists(), keep);
    }
}
