//! What can go wrong, said so that the operator knows what to do, and the
//! exit code for each (listed in `--help`).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use libracoon::ctl::io::ClientError;
use libracoon::ctl::proto::{CtlError, ErrorCode};

use crate::cmd::Daemon;

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// No socket, or nothing listening on it.
    NotRunning {
        daemon: Daemon,
        socket: PathBuf,
        /// The socket file exists but nobody answers (a crashed daemon).
        stale: bool,
    },
    /// The daemon went away while we watched.
    Stopped { daemon: Daemon },
    /// Not allowed to use the socket.
    PermissionDenied { socket: PathBuf },
    /// The daemon answered the request with an error.
    Failed { daemon: Daemon, error: CtlError },
    /// The daemon answered something we do not understand, or refused us
    /// for a reason other than permissions.
    Protocol {
        daemon: Daemon,
        socket: PathBuf,
        detail: String,
    },
    /// No answer in time.
    Timeout { daemon: Daemon, after: Duration },
    /// stdout cannot be written.
    Output(io::Error),
    /// The async runtime could not start.
    Runtime(io::Error),
}

impl CliError {
    /// The error of talking to `daemon` on `socket`.
    pub(crate) fn from_client(daemon: Daemon, socket: PathBuf, err: ClientError) -> Self {
        match err {
            ClientError::Io(io) => Self::from_io(daemon, socket, &io),
            ClientError::Refused(refusal) if refusal.code == ErrorCode::PermissionDenied => {
                Self::PermissionDenied { socket }
            }
            other => Self::Protocol {
                daemon,
                socket,
                detail: other.to_string(),
            },
        }
    }

    fn from_io(daemon: Daemon, socket: PathBuf, err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound => Self::NotRunning {
                daemon,
                socket,
                stale: false,
            },
            io::ErrorKind::ConnectionRefused => Self::NotRunning {
                daemon,
                socket,
                stale: true,
            },
            io::ErrorKind::PermissionDenied => Self::PermissionDenied { socket },
            _ => Self::Protocol {
                daemon,
                socket,
                detail: err.to_string(),
            },
        }
    }

    /// The process exit code (see `EXIT_CODES` in main.rs).
    pub(crate) fn exit_code(&self) -> ExitCode {
        let code = match self {
            Self::Failed { .. } | Self::Runtime(_) => 1,
            Self::NotRunning { .. } | Self::Stopped { .. } => 3,
            Self::PermissionDenied { .. } => 4,
            Self::Protocol { .. } | Self::Timeout { .. } => 5,
            Self::Output(err) if err.kind() == io::ErrorKind::BrokenPipe => 0,
            Self::Output(_) => 1,
        };
        ExitCode::from(code)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRunning {
                daemon,
                socket,
                stale,
            } => {
                let why = if *stale {
                    "nothing listens on"
                } else {
                    "no socket at"
                };
                let (socket, start) = (socket.display(), daemon.start_command());
                write!(
                    f,
                    "{daemon} is not running ({why} {socket}): start it with `{start}`"
                )
            }
            Self::Stopped { daemon } => write!(f, "{daemon} closed the connection: it stopped"),
            Self::PermissionDenied { socket } => {
                write!(
                    f,
                    "permission denied on {}: run racoonctl as root",
                    socket.display()
                )
            }
            Self::Failed { daemon, error } => write!(f, "{daemon}: {error} ({})", error.code),
            Self::Protocol {
                daemon,
                socket,
                detail,
            } => write!(f, "talking to {daemon} on {}: {detail}", socket.display()),
            Self::Timeout { daemon, after } => write!(
                f,
                "{daemon} did not answer within {} s: see its log (--timeout sets the wait)",
                after.as_secs()
            ),
            Self::Output(err) => write!(f, "cannot write the output: {err}"),
            Self::Runtime(err) => write!(f, "cannot start: {err}"),
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> PathBuf {
        PathBuf::from("/run/racoon3/iked.sock")
    }

    fn io_error(kind: io::ErrorKind) -> CliError {
        CliError::from_client(Daemon::Iked, socket(), io::Error::from(kind).into())
    }

    #[test]
    fn missing_socket_says_how_to_start_iked() {
        let err = io_error(io::ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "iked is not running (no socket at /run/racoon3/iked.sock): \
             start it with `iked -f /etc/racoon2/racoon2.conf`"
        );
        assert_eq!(err.exit_code(), ExitCode::from(3));
    }

    #[test]
    fn stale_socket_is_not_running_too() {
        let err = io_error(io::ErrorKind::ConnectionRefused);
        assert!(
            err.to_string()
                .starts_with("iked is not running (nothing listens on ")
        );
        assert_eq!(err.exit_code(), ExitCode::from(3));
    }

    #[test]
    fn permission_denied_says_to_run_as_root() {
        for err in [
            io_error(io::ErrorKind::PermissionDenied),
            CliError::from_client(
                Daemon::Iked,
                socket(),
                ClientError::Refused(CtlError::new(ErrorCode::PermissionDenied, "no")),
            ),
        ] {
            assert_eq!(
                err.to_string(),
                "permission denied on /run/racoon3/iked.sock: run racoonctl as root"
            );
            assert_eq!(err.exit_code(), ExitCode::from(4));
        }
    }

    #[test]
    fn version_mismatch_is_a_protocol_error() {
        let refusal = CtlError::new(ErrorCode::VersionMismatch, "version 2 vs 1");
        let err = CliError::from_client(Daemon::Iked, socket(), ClientError::Refused(refusal));
        assert_eq!(
            err.to_string(),
            "talking to iked on /run/racoon3/iked.sock: \
             the daemon refused the connection: version 2 vs 1"
        );
        assert_eq!(err.exit_code(), ExitCode::from(5));
    }

    #[test]
    fn a_failed_request_names_the_daemon_and_the_code() {
        let err = CliError::Failed {
            daemon: Daemon::Iked,
            error: CtlError::new(ErrorCode::UnknownRemote, "no remote named peer-x"),
        };
        assert_eq!(
            err.to_string(),
            "iked: no remote named peer-x (unknown_remote)"
        );
        assert_eq!(err.exit_code(), ExitCode::from(1));
    }
}
