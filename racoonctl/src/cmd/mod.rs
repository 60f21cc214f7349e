//! One module per verb. Each names the daemon it talks to (a `DAEMON`
//! constant), so `show policy` can go to spmd and KINK commands to kinkd
//! without touching the others.

pub(crate) mod flush;
pub(crate) mod initiate;
pub(crate) mod rekey;
pub(crate) mod reload;
pub(crate) mod show;
pub(crate) mod terminate;
pub(crate) mod watch;

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libracoon::ctl::io::{ClientError, ControlClient};
use libracoon::ctl::proto::{EventRecord, Request, ResponseBody};

use crate::error::CliError;

/// What every command needs from the command line.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// Where the sockets are.
    pub(crate) run_dir: PathBuf,
    /// JSON instead of tables.
    pub(crate) json: bool,
    /// How long to wait for the daemon.
    pub(crate) timeout: Duration,
    /// spmd's socket when racoon2.conf moves it
    /// (`interface { spmd { unix "PATH"; }; }`).
    pub(crate) spmd_socket: Option<PathBuf>,
}

/// A racoon3 daemon with a control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Daemon {
    /// The IKE daemon.
    Iked,
    /// The policy manager.
    Spmd,
    /// The KINK daemon.
    Kinkd,
}

impl Daemon {
    /// The daemon's name, which is also its socket's stem.
    fn name(self) -> &'static str {
        match self {
            Self::Iked => "iked",
            Self::Spmd => "spmd",
            Self::Kinkd => "kinkd",
        }
    }

    /// Its socket in `run_dir`.
    pub(crate) fn socket(self, run_dir: &Path) -> PathBuf {
        run_dir.join(format!("{}.sock", self.name()))
    }

    /// How an operator starts it.
    pub(crate) fn start_command(self) -> &'static str {
        match self {
            Self::Iked => "iked -f /etc/racoon2/racoon2.conf",
            Self::Spmd => "spmd -f /etc/racoon2/racoon2.conf",
            Self::Kinkd => "kinkd -f /etc/racoon2/racoon2.conf",
        }
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connection to one daemon, with the errors already in operator terms.
pub(crate) struct Session<'a> {
    ctx: &'a Ctx,
    daemon: Daemon,
    socket: PathBuf,
    client: ControlClient,
}

impl<'a> Session<'a> {
    /// Connects to `daemon` and does the hello.
    pub(crate) async fn open(ctx: &'a Ctx, daemon: Daemon) -> Result<Self, CliError> {
        let socket = match (daemon, &ctx.spmd_socket) {
            (Daemon::Spmd, Some(path)) => path.clone(),
            _ => daemon.socket(&ctx.run_dir),
        };
        let connect = ControlClient::connect_as(&socket, "racoonctl");
        let client = within(ctx, daemon, &socket, connect).await?;
        Ok(Self {
            ctx,
            daemon,
            socket,
            client,
        })
    }

    /// Sends `request` and returns the daemon's answer.
    pub(crate) async fn call(&mut self, request: Request) -> Result<ResponseBody, CliError> {
        let answer = self.client.request(request);
        let result = within(self.ctx, self.daemon, &self.socket, answer).await?;
        result.into_result().map_err(|error| CliError::Failed {
            daemon: self.daemon,
            error,
        })
    }

    /// The next event (no time limit: watching waits as long as it takes).
    pub(crate) async fn next_event(&mut self) -> Result<EventRecord, CliError> {
        match self.client.next_event().await {
            Ok(event) => Ok(event),
            Err(ClientError::Closed) => Err(CliError::Stopped {
                daemon: self.daemon,
            }),
            Err(err) => Err(self.error(err)),
        }
    }

    fn error(&self, err: ClientError) -> CliError {
        CliError::from_client(self.daemon, self.socket.clone(), err)
    }
}

/// Runs `fut` with the command's time limit.
async fn within<T>(
    ctx: &Ctx,
    daemon: Daemon,
    socket: &Path,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(ctx.timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(CliError::from_client(daemon, socket.to_owned(), err)),
        Err(_) => Err(CliError::Timeout {
            daemon,
            after: ctx.timeout,
        }),
    }
}

/// Connects to `daemon`, sends one request, prints the answer.
pub(crate) async fn one_shot(ctx: &Ctx, daemon: Daemon, request: Request) -> Result<(), CliError> {
    let mut session = Session::open(ctx, daemon).await?;
    let body = session.call(request).await?;
    print(&crate::render::body(&body, ctx.json))
}

/// Writes `text` (plus a newline unless it ends with one) to stdout.
pub(crate) fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    write!(out, "{text}{newline}")
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}
