//! spmd: racoon3's security policy manager. Flags follow racoon2's spmd.

use std::path::PathBuf;

use clap::Parser;
use spmd::daemon::{KernelChoice, Options, Prepared};

/// racoon3 security policy manager.
#[derive(Parser, Debug)]
#[command(name = "spmd", disable_version_flag = true)]
struct Args {
    /// Configuration file (racoon2.conf syntax).
    #[arg(short = 'f', default_value = "/etc/racoon2/racoon2.conf")]
    config: PathBuf,
    /// Stay in the foreground (otherwise spmd detaches and logs to -l, or to RUN_DIR/spmd.log).
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
    /// Directory for the pid file, the policy journal and the sockets.
    #[arg(long, default_value = "/run/racoon3")]
    run_dir: PathBuf,
    /// Kernel backend: auto (XFRM where the kernel holds ESP states, else
    /// userspace), xfrm, pfkey, userspace (ESP over a TUN device), or memory
    /// (records only, carries no traffic; for tests).
    #[arg(long, default_value = "auto")]
    kernel: KernelChoice,
    /// TUN device of the userspace datapath.
    #[arg(long, default_value = "r3esp0")]
    tun: String,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spmd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.version {
        println!("spmd (racoon3) {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let logfile = match (&args.logfile, args.foreground) {
        (Some(l), _) => Some(l.clone()),
        (None, true) => None,
        (None, false) => Some(args.run_dir.join("spmd.log")),
    };
    libracoon::daemon::init_logging(args.debug, logfile.as_deref())?;
    let log_failure = |e: &anyhow::Error| {
        if logfile.is_some() {
            tracing::error!("{e:#}");
        }
    };
    let prepared = Prepared::load(&args.config).inspect_err(log_failure)?;
    let ctl_group = args
        .ctl_group
        .as_deref()
        .map(libracoon::daemon::resolve_group)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))
        .inspect_err(log_failure)?;
    if !args.foreground {
        if let Some(l) = &logfile {
            eprintln!(
                "spmd: running in the background, logging to {}",
                l.display()
            );
        }
        // Before any thread exists; keeps the working directory so relative
        // paths in the configuration keep their meaning.
        nix::unistd::daemon(true, false)?;
    }
    let opts = Options {
        config: args.config,
        run_dir: args.run_dir,
        kernel: args.kernel,
        tun: args.tun,
        ctl_group,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(spmd::daemon::run(opts, prepared));
    if let Err(e) = &result {
        log_failure(e);
    }
    result
}
