//! kinkd: racoon3's KINK daemon (RFC 4430). Flags follow iked's.

use std::time::Duration;

use clap::Parser;
use libracoon::daemon::cli::CommonArgs;

/// racoon3 KINK daemon.
#[derive(Parser, Debug)]
#[command(name = "kinkd", disable_version_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
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
    let common = args.common;
    let Some(started) = common.start("kinkd").map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let kernel: kinkd::daemon::KernelChoice = args.kernel.parse().map_err(anyhow::Error::msg)?;
    // Failures reach stderr from main; a log file gets them too.
    let log_failure = |e: &anyhow::Error| {
        if started.logfile.is_some() {
            tracing::error!("{e:#}");
        }
    };
    let opts = kinkd::daemon::Options {
        config: common.config.clone(),
        run_dir: common.run_dir.clone(),
        kernel,
        ctl_group: started.ctl_group,
    };
    // Configuration errors are reported before going to the background.
    let prepared = kinkd::daemon::Prepared::load(&opts).inspect_err(log_failure)?;
    common
        .detach("kinkd", started.logfile.as_deref())
        .map_err(anyhow::Error::msg)?;
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
