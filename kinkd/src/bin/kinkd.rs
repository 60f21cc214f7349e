//! kinkd: racoon3's KINK daemon (RFC 4430). Flags follow iked's.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// racoon3 KINK daemon.
#[derive(Parser, Debug)]
#[command(name = "kinkd", disable_version_flag = true)]
struct Args {
    /// Configuration file (racoon2.conf syntax).
    #[arg(short = 'f', default_value = "/etc/racoon2/racoon2.conf")]
    config: PathBuf,
    /// Stay in the foreground (otherwise kinkd detaches and logs to -l, or to RUN_DIR/kinkd.log).
    #[arg(short = 'F')]
    foreground: bool,
    /// Debug level: 0 info, 1-2 debug, 3 and more trace.
    #[arg(short = 'D', default_value_t = 0)]
    debug: u8,
    /// Log to this file instead of standard error.
    #[arg(short = 'l')]
    logfile: Option<PathBuf>,
    /// Print the version and exit.
    #[arg(short = 'V')]
    version: bool,
    /// Also serve the control socket to members of this group (name or
    /// gid): the socket becomes mode 0660, owned by the group.
    #[arg(long, value_name = "GROUP")]
    ctl_group: Option<String>,
    /// Directory for the pid file (kinkd.pid) and the control socket (kinkd.sock).
    #[arg(long, default_value = "/run/racoon3")]
    run_dir: PathBuf,
    /// Kernel backend: `auto` (follow spmd: SAs into the kernel when spmd
    /// uses XFRM or PF_KEY, else through spmd), `xfrm` (SAs into the kernel,
    /// policies through spmd; spmd must use xfrm too),
    /// `pfkey` (the same over PF_KEY v2), `userspace`
    /// (through spmd, which hosts the userspace ESP datapath),
    /// or `memory` (records SAs, carries no traffic; for tests without spmd).
    #[arg(long, default_value = "auto")]
    kernel: String,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kinkd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.version {
        println!("kinkd (racoon3) {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let kernel: kinkd::daemon::KernelChoice = args.kernel.parse().map_err(anyhow::Error::msg)?;
    // In the background there is no terminal: log to the run directory unless -l says otherwise.
    let logfile = match (&args.logfile, args.foreground) {
        (Some(l), _) => Some(l.clone()),
        (None, true) => None,
        (None, false) => Some(args.run_dir.join("kinkd.log")),
    };
    libracoon::daemon::init_logging(args.debug, logfile.as_deref())?;
    let ctl_group = args
        .ctl_group
        .as_deref()
        .map(libracoon::daemon::resolve_group)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let opts = kinkd::daemon::Options {
        config: args.config,
        run_dir: args.run_dir,
        kernel,
        ctl_group,
    };
    // Configuration errors are reported before going to the background.
    let log_failure = |e: &anyhow::Error| {
        if logfile.is_some() {
            tracing::error!("{e:#}");
        }
    };
    let prepared = kinkd::daemon::Prepared::load(&opts).inspect_err(log_failure)?;
    if !args.foreground {
        if let Some(l) = &logfile {
            eprintln!(
                "kinkd: running in the background, logging to {}",
                l.display()
            );
        }
        // Keeps the working directory so relative paths in the configuration
        // mean what they meant at start. Called before any thread exists.
        nix::unistd::daemon(true, false)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(kinkd::daemon::run(opts, prepared));
    if let Err(e) = &result {
        log_failure(e);
    }
    // A KDC call may still be running on the blocking pool (an unreachable
    // KDC takes seconds): do not wait for it, the pid file is gone already.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}
