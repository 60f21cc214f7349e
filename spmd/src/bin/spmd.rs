//! spmd: racoon3's security policy manager. Flags follow racoon2's spmd.

use clap::Parser;
use libracoon::daemon::cli::CommonArgs;
use spmd::daemon::{KernelChoice, Options, Prepared};

/// racoon3 security policy manager.
#[derive(Parser, Debug)]
#[command(name = "spmd", disable_version_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
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
    let common = args.common;
    let Some(started) = common.start("spmd").map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let log_failure = |e: &anyhow::Error| {
        if started.logfile.is_some() {
            tracing::error!("{e:#}");
        }
    };
    let prepared = Prepared::load(&common.config).inspect_err(log_failure)?;
    common
        .detach("spmd", started.logfile.as_deref())
        .map_err(anyhow::Error::msg)?;
    let opts = Options {
        config: common.config,
        run_dir: common.run_dir,
        kernel: args.kernel,
        tun: args.tun,
        ctl_group: started.ctl_group,
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
