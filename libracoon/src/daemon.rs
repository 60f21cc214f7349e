//! What every racoon3 daemon does the same way at start: the log (racoon2's
//! `-D` levels, `-l FILE` or standard error, which journald captures) and
//! the pid file in the run directory.

pub mod cli;

use std::path::{Path, PathBuf};

/// Sets the global log subscriber: `debug` 0 is info, 1-2 debug, 3 and
/// more trace; `logfile` appends there (no colours), else standard error.
///
/// # Errors
/// The log file cannot be opened.
pub fn init_logging(debug: u8, logfile: Option<&Path>) -> std::io::Result<()> {
    let level = match debug {
        0 => tracing::Level::INFO,
        1 | 2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    match logfile {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Resolves `--ctl-group` (a group name or a numeric gid) to a gid.
///
/// # Errors
/// No such group.
pub fn resolve_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("--ctl-group {name}: no such group")),
        Err(e) => Err(format!("--ctl-group {name}: {e}")),
    }
}

/// `RUN_DIR/NAME.pid`, removed when dropped.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Creates the run directory and writes our pid, refusing to start
    /// when a live process already holds the file.
    ///
    /// # Errors
    /// Another instance runs, or the directory or file cannot be written;
    /// the message says which and what to do.
    pub fn create(run_dir: &Path, daemon: &str) -> Result<Self, String> {
        std::fs::create_dir_all(run_dir)
            .map_err(|e| format!("cannot create run directory {}: {e}", run_dir.display()))?;
        let path = run_dir.join(format!("{daemon}.pid"));
        if let Ok(old) = std::fs::read_to_string(&path) {
            let pid = old.trim();
            if !pid.is_empty()
                && pid.parse::<u32>().is_ok_and(|p| p != std::process::id())
                && Path::new("/proc").join(pid).exists()
            {
                return Err(format!(
                    "{daemon} already running with pid {pid} ({}); use another --run-dir",
                    path.display()
                ));
            }
        }
        // Written whole, then renamed: a reader never sees it empty.
        let tmp = run_dir.join(format!(".{daemon}.pid.tmp"));
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Tells systemd (`Type=notify`) that the daemon is ready, so units
/// ordered after it may start (iked after spmd). A no-op outside systemd
/// (no `NOTIFY_SOCKET`).
pub fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("sd_notify: {e}");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|a| sock.send_to_addr(b"READY=1", &a))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    if let Err(e) = result {
        tracing::warn!("sd_notify: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_resolve_by_name_or_number() {
        assert_eq!(resolve_group("0"), Ok(0));
        assert_eq!(resolve_group("root"), Ok(0));
        let err = resolve_group("no-such-group-r3").unwrap_err();
        assert!(err.contains("no such group"), "{err}");
    }

    #[test]
    fn a_live_pid_file_refuses_a_second_instance_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 always runs: a second instance must refuse.
        std::fs::write(dir.path().join("spmd.pid"), "1\n").unwrap();
        let err = PidFile::create(dir.path(), "spmd").unwrap_err();
        assert!(err.contains("already running with pid 1"), "{err}");
        // A pid that cannot exist is stale.
        std::fs::write(dir.path().join("spmd.pid"), "999999999\n").unwrap();
        let pid = PidFile::create(dir.path(), "spmd").unwrap();
        let text = std::fs::read_to_string(dir.path().join("spmd.pid")).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        drop(pid);
        assert!(!dir.path().join("spmd.pid").exists());
    }
}
