//! The command line every racoon3 daemon shares: racoon2's `-f -F -D -l -V`
//! plus `--run-dir` and `--ctl-group`, and what they mean at start (the
//! version, the log, the control group, going to the background). Each
//! daemon flattens [`CommonArgs`] into its own `clap` parser and adds its
//! own flags (`--kernel`, `-I`, `--tun`).

use std::path::{Path, PathBuf};

/// The shared flags.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Configuration file (racoon2.conf syntax).
    #[arg(short = 'f', default_value = "/etc/racoon2/racoon2.conf")]
    pub config: PathBuf,
    /// Stay in the foreground (otherwise the daemon detaches and logs to
    /// -l, or to RUN_DIR/DAEMON.log, e.g. RUN_DIR/iked.log).
    #[arg(short = 'F')]
    pub foreground: bool,
    /// Debug level: 0 info, 1-2 debug, 3 and more trace.
    #[arg(short = 'D', default_value_t = 0)]
    pub debug: u8,
    /// Log to this file instead of standard error.
    #[arg(short = 'l')]
    pub logfile: Option<PathBuf>,
    /// Print the version and exit.
    #[arg(short = 'V')]
    pub version: bool,
    /// Also serve the control socket to members of this group (name or
    /// gid): the socket becomes mode 0660, owned by the group.
    #[arg(long, value_name = "GROUP")]
    pub ctl_group: Option<String>,
    /// Directory for the pid file (DAEMON.pid), the control socket
    /// (DAEMON.sock) and, for spmd, the policy journal.
    #[arg(long, default_value = "/run/racoon3")]
    pub run_dir: PathBuf,
}

/// What [`CommonArgs::start`] settled.
#[derive(Debug)]
pub struct Started {
    /// Where the log goes (`None`: standard error).
    pub logfile: Option<PathBuf>,
    /// The control group's gid.
    pub ctl_group: Option<u32>,
}

impl CommonArgs {
    /// `-V` prints the version and returns `None`; otherwise the log is set
    /// up (in the background there is no terminal: the run directory's
    /// `DAEMON.log` unless `-l`) and the control group resolved.
    ///
    /// # Errors
    /// The log file cannot be opened, or the group does not exist.
    pub fn start(&self, daemon: &str) -> Result<Option<Started>, String> {
        if self.version {
            println!("{daemon} (racoon3) {}", env!("CARGO_PKG_VERSION"));
            return Ok(None);
        }
        let logfile = match (&self.logfile, self.foreground) {
            (Some(l), _) => Some(l.clone()),
            (None, true) => None,
            (None, false) => Some(self.run_dir.join(format!("{daemon}.log"))),
        };
        super::init_logging(self.debug, logfile.as_deref())
            .map_err(|e| format!("cannot open the log: {e}"))?;
        let ctl_group = self
            .ctl_group
            .as_deref()
            .map(super::resolve_group)
            .transpose()?;
        Ok(Some(Started { logfile, ctl_group }))
    }

    /// Goes to the background unless `-F`, saying first where it logs.
    /// Keeps the working directory, so relative paths in the configuration
    /// mean what they meant at start. Call before any thread exists.
    ///
    /// # Errors
    /// daemon(3) failed.
    pub fn detach(&self, daemon: &str, logfile: Option<&Path>) -> Result<(), String> {
        if self.foreground {
            return Ok(());
        }
        if let Some(l) = logfile {
            eprintln!(
                "{daemon}: running in the background, logging to {}",
                l.display()
            );
        }
        nix::unistd::daemon(true, false).map_err(|e| format!("cannot detach: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        extra: bool,
    }

    #[test]
    fn racoon2_flags_parse_next_to_a_daemons_own() {
        let a = Args::parse_from([
            "d",
            "-f",
            "/x.conf",
            "-F",
            "-D",
            "2",
            "--run-dir",
            "/r",
            "--extra",
        ]);
        assert_eq!(a.common.config, Path::new("/x.conf"));
        assert!(a.common.foreground && a.extra);
        assert_eq!(a.common.debug, 2);
        assert_eq!(a.common.run_dir, Path::new("/r"));
        let d = Args::parse_from(["d"]);
        assert_eq!(d.common.config, Path::new("/etc/racoon2/racoon2.conf"));
        assert_eq!(d.common.run_dir, Path::new("/run/racoon3"));
    }
}
