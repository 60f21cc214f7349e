//! iked: racoon3's IKEv2 daemon. Flags follow racoon2's iked.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

/// racoon3 IKEv2 daemon.
#[derive(Parser, Debug)]
#[command(name = "iked", disable_version_flag = true)]
struct Args {
    /// Configuration file (racoon2.conf syntax).
    #[arg(short = 'f', default_value = "/etc/racoon2/racoon2.conf")]
    config: PathBuf,
    /// Stay in the foreground (otherwise iked detaches and logs to -l, or to RUN_DIR/iked.log).
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
    /// Initiate an IKE SA to this peer address at start (repeatable).
    #[arg(short = 'I')]
    initiate: Vec<IpAddr>,
    /// Directory for the pid file.
    #[arg(long, default_value = "/run/racoon3")]
    run_dir: PathBuf,
    /// Kernel backend: `auto` (follow spmd: SAs into the kernel when spmd
    /// uses XFRM or PF_KEY, else through spmd), `xfrm` (SAs into the kernel,
    /// policies through spmd; spmd must use xfrm too),
    /// `pfkey` (the same over PF_KEY v2: no AEAD on Linux), `userspace`
    /// (through spmd, which hosts the userspace ESP datapath),
    /// or `memory` (records SAs, carries no traffic; for tests without spmd).
    #[arg(long, default_value = "auto")]
    kernel: String,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iked: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.version {
        println!("iked (racoon3) {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let kernel: iked::daemon::KernelChoice = args.kernel.parse().map_err(anyhow::Error::msg)?;
    // In the background there is no terminal: log to the run directory unless -l says otherwise.
    let logfile = match (&args.logfile, args.foreground) {
        (Some(l), _) => Some(l.clone()),
        (None, true) => None,
        (None, false) => Some(args.run_dir.join("iked.log")),
    };
    libracoon::daemon::init_logging(args.debug, logfile.as_deref())?;
    let ctl_group = args
        .ctl_group
        .as_deref()
        .map(libracoon::daemon::resolve_group)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let opts = iked::daemon::Options {
        config: args.config,
        initiate: args.initiate,
        run_dir: args.run_dir,
        kernel,
        ctl_group,
    };
    // Configuration errors are reported before going to the background.
    // Failures reach stderr from main; a log file gets them too.
    let log_failure = |e: &anyhow::Error| {
        if logfile.is_some() {
            tracing::error!("{e:#}");
        }
    };
    let prepared = iked::daemon::Prepared::load(&opts).inspect_err(log_failure)?;
    if !args.foreground {
        if let Some(l) = &logfile {
            eprintln!(
                "iked: running in the background, logging to {}",
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
    let result = runtime.block_on(iked::daemon::run(opts, prepared));
    if let Err(e) = &result {
        log_failure(e);
    }
    result
}
