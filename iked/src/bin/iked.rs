//! iked: racoon3's IKEv2 daemon. Flags follow racoon2's iked.

use std::net::IpAddr;

use clap::Parser;
use libracoon::daemon::cli::CommonArgs;

/// racoon3 IKEv2 daemon.
#[derive(Parser, Debug)]
#[command(name = "iked", disable_version_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Initiate an IKE SA to this peer address at start (repeatable).
    #[arg(short = 'I')]
    initiate: Vec<IpAddr>,
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
    let common = args.common;
    let Some(started) = common.start("iked").map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let kernel: iked::daemon::KernelChoice = args.kernel.parse().map_err(anyhow::Error::msg)?;
    // Failures reach stderr from main; a log file gets them too.
    let log_failure = |e: &anyhow::Error| {
        if started.logfile.is_some() {
            tracing::error!("{e:#}");
        }
    };
    let opts = iked::daemon::Options {
        config: common.config.clone(),
        initiate: args.initiate,
        run_dir: common.run_dir.clone(),
        kernel,
        ctl_group: started.ctl_group,
    };
    // Configuration errors are reported before going to the background.
    let prepared = iked::daemon::Prepared::load(&opts).inspect_err(log_failure)?;
    common
        .detach("iked", started.logfile.as_deref())
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(iked::daemon::run(opts, prepared));
    if let Err(e) = &result {
        log_failure(e);
    }
    result
}
