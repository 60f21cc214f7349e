//! The daemon's side: bind, check peers, speak the protocol, hand requests
//! to the daemon's main loop, fan events out to watchers.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf, UCred};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::{FrameReader, ReadError};
use crate::ctl::frame::{self, FrameError, MAX_FRAME};
use crate::ctl::proto::{
    ClientMessage, CtlError, ErrorCode, EventRecord, PROTOCOL_VERSION, Request, ResponseBody,
    ResponseResult, ServerMessage,
};

/// Requests waiting for the daemon's main loop.
const INCOMING_LEN: usize = 16;
/// Events kept for a slow watcher before it is told it lagged.
const EVENT_BACKLOG: usize = 256;
/// Messages queued for one connection's writer.
const OUTBOX_LEN: usize = 16;
/// Pause after a failed accept (EMFILE, ...), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A daemon's control socket. Dropping it stops serving, closes every
/// connection and removes the socket file.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    events: broadcast::Sender<EventRecord>,
    accept: JoinHandle<()>,
}

/// One request for the daemon, from [`ControlServer::bind`]'s receiver.
#[derive(Debug)]
pub struct Incoming {
    /// What the client asks. Never [`Request::Watch`]: the server handles it.
    pub request: Request,
    /// The peer is root or the daemon's own user, not merely a member of
    /// the control group: only such peers may use kernel operations.
    pub privileged: bool,
    /// Where the answer goes. Dropping it answers [`ErrorCode::Internal`];
    /// a send error means the client has gone, which is no error.
    pub reply: oneshot::Sender<ResponseResult>,
}

impl ControlServer {
    /// Binds PATH (removing a stale socket file first, refusing if another
    /// daemon answers on it), makes it mode 0600 and serves it in a spawned
    /// task. Only root and the daemon's own user may talk to it
    /// (`SO_PEERCRED`); anyone else gets a [`ErrorCode::PermissionDenied`]
    /// response and is disconnected, and the refusal is logged. Missing parent
    /// directories are created with mode 0755. (Between `bind(2)` and the
    /// `chmod` the socket has the umask's mode; the peer check covers that
    /// moment.)
    ///
    /// `daemon` names the daemon in the hello and in messages (`iked`).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AddrInUse`] if a daemon answers on PATH,
    /// [`io::ErrorKind::AlreadyExists`] if PATH is something other than a
    /// socket (it is left alone), or the error of creating the directory,
    /// binding or changing the mode.
    pub async fn bind(path: &Path, daemon: &str) -> io::Result<(Self, mpsc::Receiver<Incoming>)> {
        Self::bind_for(path, daemon, None).await
    }

    /// As [`Self::bind`], and also serves members of the group `gid` (the
    /// daemons' `--ctl-group`, for operators who are not root): the socket
    /// becomes mode 0660 owned by that group, and a peer whose primary or
    /// supplementary groups include it is let in.
    ///
    /// # Errors
    /// As [`Self::bind`], or the `chown` error.
    pub async fn bind_for(
        path: &Path,
        daemon: &str,
        group: Option<u32>,
    ) -> io::Result<(Self, mpsc::Receiver<Incoming>)> {
        clear_path(path).await?;
        let listener = UnixListener::bind(path)?;
        match group {
            Some(gid) => {
                std::os::unix::fs::chown(path, None, Some(gid))?;
                fs::set_permissions(path, Permissions::from_mode(0o660))?;
            }
            None => fs::set_permissions(path, Permissions::from_mode(0o600))?,
        }
        let (requests, incoming) = mpsc::channel(INCOMING_LEN);
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let shared = Arc::new(Shared {
            daemon: daemon.to_owned(),
            uid: nix::unistd::geteuid().as_raw(),
            group,
            requests,
            events: events.clone(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared));
        let server = Self {
            path: path.to_owned(),
            events,
            accept,
        };
        Ok((server, incoming))
    }

    /// Sends an event to every connection that sent [`Request::Watch`]. A
    /// watcher that falls 256 events behind loses the oldest
    /// and is sent a `lagged` event saying how many.
    pub fn publish(&self, event: EventRecord) {
        // An error only means nobody watches.
        let _ = self.events.send(event);
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many connections watch events.
    pub fn watchers(&self) -> usize {
        self.events.receiver_count()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether a peer may use a daemon's socket: root, or the daemon's own user.
pub(super) fn peer_allowed(peer_uid: u32, daemon_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == daemon_uid
}

/// Whether a peer belongs to the control group: its primary group (from
/// `SO_PEERCRED`) or one of the supplementary groups of the connecting
/// process (`Groups:` in `/proc/PID/status`).
pub(super) fn peer_in_group(gid: u32, peer_gid: u32, peer_pid: Option<i32>) -> bool {
    if peer_gid == gid {
        return true;
    }
    let Some(pid) = peer_pid else {
        return false;
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    supplementary_groups(&status).any(|g| g == gid)
}

/// The `Groups:` line of a `/proc/PID/status` text.
pub(super) fn supplementary_groups(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
}

/// What every connection of one server shares.
#[derive(Debug)]
struct Shared {
    daemon: String,
    uid: u32,
    group: Option<u32>,
    requests: mpsc::Sender<Incoming>,
    events: broadcast::Sender<EventRecord>,
}

/// Makes PATH free for `bind`: creates the directory, removes a stale
/// socket, refuses a live one or a file that is not a socket.
async fn clear_path(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return create_parent(path),
        Err(err) => return Err(err),
    };
    if !meta.file_type().is_socket() {
        let msg = format!(
            "{} exists and is not a socket: not removing it",
            path.display()
        );
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, msg));
    }
    match UnixStream::connect(path).await {
        Ok(_) => {
            let msg = format!("another daemon is listening on {}", path.display());
            Err(io::Error::new(io::ErrorKind::AddrInUse, msg))
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::debug!("removing stale control socket {}", path.display());
            fs::remove_file(path)
        }
        Err(err) => Err(err),
    }
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            DirBuilder::new().recursive(true).mode(0o755).create(dir)
        }
        _ => Ok(()),
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    // Dropping the set (when the server aborts this task) aborts every
    // connection.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve(stream, Arc::clone(&shared)));
            }
            Err(err) => {
                tracing::warn!("{} control socket: accept failed: {err}", shared.daemon);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves one connection to its end.
async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let cred = match stream.peer_cred() {
        Ok(cred) => cred,
        Err(err) => {
            tracing::warn!(
                "{} control socket: no peer credentials: {err}",
                shared.daemon
            );
            return;
        }
    };
    let (read, write) = stream.into_split();
    let (outbox, queued) = mpsc::channel(OUTBOX_LEN);
    let writer = AbortOnDrop(tokio::spawn(write_loop(write, queued)));
    let mut conn = Connection {
        reader: FrameReader::new(read),
        outbox,
        shared,
        cred,
        client: None,
        watch: None,
    };
    if let Err(Close::With(err)) = conn.run().await {
        conn.log_close(&err);
        let refusal = ServerMessage::Response {
            id: 0,
            result: ResponseResult::Err(err),
        };
        let _ = conn.outbox.send(refusal).await;
    }
    tracing::debug!(
        "{} control connection from {} closed",
        conn.shared.daemon,
        conn.who()
    );
    // The writer ends once every sender is gone: ours and the watcher's.
    drop(conn);
    writer.finish().await;
}

/// Why a connection ends early.
enum Close {
    /// The client left or its socket failed: nothing to say.
    Quietly,
    /// Tell the client (as a response with id 0), then close.
    With(CtlError),
}

impl From<CtlError> for Close {
    fn from(err: CtlError) -> Self {
        Self::With(err)
    }
}

/// One client's connection, from the server's side.
struct Connection {
    reader: FrameReader<OwnedReadHalf>,
    outbox: mpsc::Sender<ServerMessage>,
    shared: Arc<Shared>,
    cred: UCred,
    /// The name from the client's hello, for the log.
    client: Option<String>,
    /// The task forwarding events, once the client asked to watch.
    watch: Option<AbortOnDrop>,
}

impl Connection {
    /// Checks the peer, does the hello, then serves requests until the
    /// client leaves or breaks the protocol.
    async fn run(&mut self) -> Result<(), Close> {
        self.check_peer()?;
        self.hello().await?;
        while let Some(body) = self.read().await? {
            self.handle_frame(&body).await?;
        }
        Ok(())
    }

    fn check_peer(&self) -> Result<(), CtlError> {
        if peer_allowed(self.cred.uid(), self.shared.uid) {
            return Ok(());
        }
        if let Some(gid) = self.shared.group
            && peer_in_group(gid, self.cred.gid(), self.cred.pid())
        {
            return Ok(());
        }
        let (uid, daemon) = (self.shared.uid, &self.shared.daemon);
        let mut who = if uid == 0 {
            "root".to_owned()
        } else {
            format!("root and uid {uid}")
        };
        if let Some(gid) = self.shared.group {
            who.push_str(&format!(" and members of group {gid}"));
        }
        let msg = format!("permission denied: only {who} may use the {daemon} control socket");
        Err(CtlError::new(ErrorCode::PermissionDenied, msg))
    }

    async fn hello(&mut self) -> Result<(), Close> {
        let Some(body) = self.read().await? else {
            return Err(Close::Quietly);
        };
        match frame::parse::<ClientMessage>(&body) {
            Ok(ClientMessage::Hello { version, client }) => {
                self.client = Some(client);
                self.check_version(version)?;
                tracing::debug!(
                    "{} control connection from {}",
                    self.shared.daemon,
                    self.who()
                );
                self.send(ServerMessage::Hello {
                    version: PROTOCOL_VERSION,
                    daemon: self.shared.daemon.clone(),
                    pid: std::process::id(),
                })
                .await
            }
            Ok(ClientMessage::Request { .. }) => Err(bad_request("expected a hello first").into()),
            Err(err) => Err(bad_frame(&err).into()),
        }
    }

    fn check_version(&self, version: u32) -> Result<(), CtlError> {
        if version == PROTOCOL_VERSION {
            return Ok(());
        }
        let msg = format!(
            "client speaks control protocol version {version}, {} speaks version \
             {PROTOCOL_VERSION}: use racoonctl from the same racoon3 release",
            self.shared.daemon
        );
        Err(CtlError::new(ErrorCode::VersionMismatch, msg))
    }

    async fn handle_frame(&mut self, body: &[u8]) -> Result<(), Close> {
        let msg = match frame::parse::<ClientMessage>(body) {
            Ok(msg) => msg,
            Err(err) => return self.handle_unparsable(body, &err).await,
        };
        match msg {
            ClientMessage::Hello { .. } => Err(bad_request("hello sent twice").into()),
            ClientMessage::Request { id: 0, .. } => {
                Err(bad_request("request id 0 is reserved: number requests from 1").into())
            }
            ClientMessage::Request {
                id,
                request: Request::Watch,
            } => {
                let result = self.watch();
                self.respond(id, result).await
            }
            ClientMessage::Request { id, request } => {
                let result = self.dispatch(request).await;
                self.respond(id, result).await
            }
        }
    }

    /// A well-framed request this server does not understand (a newer
    /// client's command, a missing field) is answered under its id and the
    /// connection stays open; anything else ends it.
    async fn handle_unparsable(&self, body: &[u8], err: &FrameError) -> Result<(), Close> {
        match (err, request_id(body)) {
            (FrameError::BadMessage(_), Some(id)) => {
                tracing::warn!("{}: {err}", self.who());
                self.respond(id, ResponseResult::Err(bad_frame(err))).await
            }
            _ => Err(bad_frame(err).into()),
        }
    }

    fn watch(&mut self) -> ResponseResult {
        if self.watch.is_some() {
            return ResponseResult::Ok(done("already watching events"));
        }
        let events = self.shared.events.subscribe();
        let forward = forward_events(events, self.outbox.clone());
        self.watch = Some(AbortOnDrop(tokio::spawn(forward)));
        ResponseResult::Ok(done(format!("watching {} events", self.shared.daemon)))
    }

    /// Hands a request to the daemon and waits for its answer.
    async fn dispatch(&self, request: Request) -> ResponseResult {
        let daemon = &self.shared.daemon;
        let (reply, answer) = oneshot::channel();
        let privileged = peer_allowed(self.cred.uid(), self.shared.uid);
        let incoming = Incoming {
            request,
            privileged,
            reply,
        };
        if self.shared.requests.send(incoming).await.is_err() {
            return internal(format!("{daemon} is shutting down"));
        }
        answer
            .await
            .unwrap_or_else(|_| internal(format!("{daemon} dropped the request unanswered")))
    }

    async fn respond(&self, id: u64, result: ResponseResult) -> Result<(), Close> {
        self.send(ServerMessage::Response { id, result }).await
    }

    async fn send(&self, msg: ServerMessage) -> Result<(), Close> {
        self.outbox.send(msg).await.map_err(|_| Close::Quietly)
    }

    async fn read(&mut self) -> Result<Option<Vec<u8>>, Close> {
        match self.reader.next_frame().await {
            Ok(body) => Ok(body),
            Err(ReadError::Frame(err)) => Err(bad_frame(&err).into()),
            Err(ReadError::Io(err)) => {
                tracing::debug!("{}: read failed: {err}", self.who());
                Err(Close::Quietly)
            }
        }
    }

    fn log_close(&self, err: &CtlError) {
        let daemon = &self.shared.daemon;
        tracing::warn!(
            "{daemon} control socket: closing connection of {}: {err}",
            self.who()
        );
    }

    /// The peer, for the log: `racoonctl (uid 0, pid 1234)`, or `uid 1000,
    /// pid 1234` before the hello.
    fn who(&self) -> String {
        let pid = self
            .cred
            .pid()
            .map_or_else(|| "?".into(), |pid| pid.to_string());
        let ids = format!("uid {}, pid {pid}", self.cred.uid());
        match &self.client {
            Some(client) => format!("{client} ({ids})"),
            None => ids,
        }
    }
}

/// The `id` of something that looks like a request, if it has a usable one.
fn request_id(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("type")?.as_str()? != "request" {
        return None;
    }
    value.get("id")?.as_u64().filter(|&id| id != 0)
}

fn bad_request(msg: &str) -> CtlError {
    CtlError::new(ErrorCode::BadRequest, msg)
}

fn bad_frame(err: &FrameError) -> CtlError {
    CtlError::new(ErrorCode::BadRequest, err.to_string())
}

fn internal(msg: String) -> ResponseResult {
    ResponseResult::Err(CtlError::new(ErrorCode::Internal, msg))
}

fn done(message: impl Into<String>) -> ResponseBody {
    ResponseBody::Done {
        message: message.into(),
    }
}

/// Copies published events to one watcher's outbox until either side ends.
async fn forward_events(
    mut events: broadcast::Receiver<EventRecord>,
    outbox: mpsc::Sender<ServerMessage>,
) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => lagged(missed),
            Err(RecvError::Closed) => return,
        };
        if outbox.send(ServerMessage::Event { event }).await.is_err() {
            return;
        }
    }
}

fn lagged(missed: u64) -> EventRecord {
    let msg = format!("{missed} events were dropped because this watcher fell behind");
    EventRecord::new(SystemTime::now(), "lagged", None, msg)
}

/// Writes queued messages in order; shuts the write side down at the end.
async fn write_loop(mut write: OwnedWriteHalf, mut queued: mpsc::Receiver<ServerMessage>) {
    let mut buf = Vec::new();
    while let Some(msg) = queued.recv().await {
        buf.clear();
        if !encode_or_explain(&msg, &mut buf) {
            continue;
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// Encodes `msg`; a response too large for a frame becomes an error
/// response, an event too large is dropped (false).
fn encode_or_explain(msg: &ServerMessage, buf: &mut Vec<u8>) -> bool {
    let err = match frame::encode(msg, buf) {
        Ok(()) => return true,
        Err(err) => err,
    };
    tracing::warn!("control message not sent: {err}");
    let ServerMessage::Response { id, .. } = msg else {
        return false;
    };
    let msg = format!("the answer does not fit a control frame ({err}; at most {MAX_FRAME} bytes)");
    let reply = ServerMessage::Response {
        id: *id,
        result: ResponseResult::Err(CtlError::new(ErrorCode::Internal, msg)),
    };
    frame::encode(&reply, buf).is_ok()
}

/// A task aborted when its handle is dropped (a connection's writer and
/// event forwarder die with the connection).
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end by itself.
    async fn finish(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
