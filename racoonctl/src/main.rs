//! racoonctl: racoon3's operator CLI.
//!
//! Each subcommand talks to one daemon over its control socket in the run
//! directory (`iked.sock` for SAs, `spmd.sock` for policies, `kinkd.sock`
//! for KINK SAs), with the protocol of
//! `libracoon::ctl` (`docs/control-protocol.md`). `main.rs` parses the
//! command line and maps failures to exit codes; `cmd/` has one module per
//! verb, each naming the daemon it talks to; `render.rs` turns answers into
//! tables for people or JSON for scripts (`--json`).

mod cmd;
mod error;
mod render;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use libracoon::ctl::proto::ResponseResult;

use crate::cmd::Ctx;
use crate::error::CliError;

/// The exit codes, as `--help` shows them (and docs/control-protocol.md).
const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the daemon refused the request (unknown remote, no such SA, ...)
  2  usage error (bad command line)
  3  the daemon is not running (no socket, or nothing listens on it)
  4  permission denied (run racoonctl as root)
  5  protocol error: a bad answer, or none within --timeout";

/// Control racoon3's daemons: show SAs, policies and status, start, rekey
/// and delete SAs, reload the configuration, watch events.
#[derive(Debug, Parser)]
#[command(name = "racoonctl", version, after_help = EXIT_CODES)]
struct Cli {
    /// Directory of the daemons' control sockets (as given to iked --run-dir).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/run/racoon3",
        global = true
    )]
    run_dir: PathBuf,
    /// Print the daemon's answer as JSON (one object per line) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// spmd's control socket, when racoon2.conf sets one with
    /// `interface { spmd { unix "PATH"; }; }` (default: DIR/spmd.sock).
    #[arg(long, value_name = "PATH", global = true)]
    spmd_socket: Option<PathBuf>,
    /// Seconds to wait for the daemon to answer.
    #[arg(long, value_name = "SECS", default_value_t = 30, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show IKE SAs or a daemon's status.
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// Start an IKE SA (and its CHILD SAs) with a remote of the
    /// configuration, or with `--daemon kinkd` a KINK CREATE.
    Initiate {
        /// The daemon that negotiates for the remote.
        #[arg(long, value_enum, default_value = "iked")]
        daemon: SaDaemonArg,
        /// The name of a `remote` block in racoon2.conf.
        remote: String,
    },
    /// Delete IKE SAs and their CHILD SAs, or with `--daemon kinkd` KINK SA pairs.
    Terminate {
        /// The daemon that holds the SAs.
        #[arg(long, value_enum, default_value = "iked")]
        daemon: SaDaemonArg,
        /// A remote's name (all its SAs), an IKE SA's initiator SPI
        /// (16 hex digits, as `show sa` prints it; iked only), or `all`.
        #[arg(value_name = "REMOTE|SPI|all")]
        target: String,
    },
    /// Renew one SA now (iked).
    Rekey {
        /// A CHILD SA's SPI (8 hex digits) or an IKE SA's initiator SPI
        /// (16 hex digits), as `show sa` prints them.
        #[arg(value_name = "SPI")]
        target: String,
    },
    /// Re-read the configuration: spmd adds and removes policies, keeping
    /// the SAs the change does not touch.
    Reload,
    /// Delete every SA: iked's IKE SAs (telling the peers), then spmd's SAD.
    Flush,
    /// Print a daemon's events (iked's unless --daemon kinkd) as they happen, until interrupted.
    Watch {
        /// The daemon whose events to print.
        #[arg(long, value_enum, default_value = "iked")]
        daemon: SaDaemonArg,
    },
}

#[derive(Debug, Subcommand)]
enum Show {
    /// IKE SAs with their CHILD SAs (iked), or KINK SA pairs (kinkd).
    Sa {
        /// Which daemon.
        #[arg(value_enum, default_value = "iked")]
        daemon: SaDaemonArg,
    },
    /// Installed security policies (spmd).
    Policy,
    /// A daemon's status: version, uptime, kernel backend, SA counts.
    Status {
        /// Which daemon.
        #[arg(value_enum, default_value = "iked")]
        daemon: DaemonArg,
    },
}

/// A daemon, as named on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DaemonArg {
    Iked,
    Spmd,
    Kinkd,
}

/// A daemon that holds SAs, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SaDaemonArg {
    Iked,
    Kinkd,
}

impl SaDaemonArg {
    fn daemon(self) -> cmd::Daemon {
        match self {
            Self::Iked => cmd::Daemon::Iked,
            Self::Kinkd => cmd::Daemon::Kinkd,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx {
        run_dir: cli.run_dir,
        json: cli.json,
        timeout: Duration::from_secs(cli.timeout),
        spmd_socket: cli.spmd_socket,
    };
    match run(&ctx, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&ctx, &err),
    }
}

fn run(ctx: &Ctx, command: Command) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async {
        match command {
            Command::Show {
                what: Show::Sa { daemon },
            } => cmd::show::sa(ctx, daemon.daemon()).await,
            Command::Show { what: Show::Policy } => cmd::show::policy(ctx).await,
            Command::Show {
                what: Show::Status { daemon },
            } => {
                let daemon = match daemon {
                    DaemonArg::Iked => cmd::Daemon::Iked,
                    DaemonArg::Spmd => cmd::Daemon::Spmd,
                    DaemonArg::Kinkd => cmd::Daemon::Kinkd,
                };
                cmd::show::status(ctx, daemon).await
            }
            Command::Rekey { target } => cmd::rekey::run(ctx, target).await,
            Command::Reload => cmd::reload::run(ctx).await,
            Command::Flush => cmd::flush::run(ctx).await,
            Command::Initiate { daemon, remote } => {
                cmd::initiate::run(ctx, daemon.daemon(), remote).await
            }
            Command::Terminate { daemon, target } => {
                cmd::terminate::run(ctx, daemon.daemon(), target).await
            }
            Command::Watch { daemon } => cmd::watch::run(ctx, daemon.daemon()).await,
        }
    })
}

/// Says what went wrong (and, for scripts, the daemon's error as JSON on
/// stdout), and picks the exit code.
fn report(ctx: &Ctx, err: &CliError) -> ExitCode {
    if let CliError::Output(out) = err
        && out.kind() == std::io::ErrorKind::BrokenPipe
    {
        // stdout's reader left (`racoonctl watch | head`): nobody to tell.
        return err.exit_code();
    }
    if let (true, CliError::Failed { error, .. }) = (ctx.json, err) {
        let body = render::json(&ResponseResult::Err(error.clone()));
        let _ = writeln!(std::io::stdout(), "{body}");
    }
    eprintln!("racoonctl: {err}");
    err.exit_code()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains(EXIT_CODES), "{help}");
    }

    #[test]
    fn control_protocol_doc_lists_the_exit_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control-protocol.md");
        let doc = std::fs::read_to_string(path).unwrap();
        for line in EXIT_CODES.lines().skip(1) {
            let (code, meaning) = line.trim().split_once("  ").unwrap();
            let row = format!("| {code} | {meaning} |");
            assert!(doc.contains(&row), "docs/control-protocol.md lacks {row}");
        }
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["racoonctl", "show", "sa"]).unwrap();
        assert_eq!(cli.run_dir, PathBuf::from("/run/racoon3"));
        assert!(!cli.json);
        let cli = Cli::try_parse_from([
            "racoonctl",
            "terminate",
            "all",
            "--json",
            "--run-dir",
            "/tmp/r",
        ]);
        let cli = cli.unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Terminate { daemon: SaDaemonArg::Iked, target } if target == "all"
        ));
    }

    #[test]
    fn kinkd_is_reachable_from_show_initiate_and_terminate() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().command;
        assert!(matches!(
            parse(&["racoonctl", "show", "sa", "kinkd"]),
            Command::Show {
                what: Show::Sa {
                    daemon: SaDaemonArg::Kinkd
                }
            }
        ));
        assert!(matches!(
            parse(&["racoonctl", "show", "status", "kinkd"]),
            Command::Show {
                what: Show::Status {
                    daemon: DaemonArg::Kinkd
                }
            }
        ));
        assert!(matches!(
            parse(&["racoonctl", "initiate", "--daemon", "kinkd", "peer-b"]),
            Command::Initiate { daemon: SaDaemonArg::Kinkd, remote } if remote == "peer-b"
        ));
        assert!(matches!(
            parse(&["racoonctl", "terminate", "peer-b", "--daemon", "kinkd"]),
            Command::Terminate { daemon: SaDaemonArg::Kinkd, target } if target == "peer-b"
        ));
        assert!(matches!(
            parse(&["racoonctl", "initiate", "peer-b"]),
            Command::Initiate {
                daemon: SaDaemonArg::Iked,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["racoonctl", "show", "sa", "spmd"]).is_err());
        assert!(Cli::try_parse_from(["racoonctl", "initiate", "--daemon", "spmd", "p"]).is_err());
        assert_eq!(
            cmd::Daemon::Kinkd.socket(std::path::Path::new("/run/racoon3")),
            PathBuf::from("/run/racoon3/kinkd.sock")
        );
    }
}
