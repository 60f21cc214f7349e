//! The client's side: connect, hello, one request at a time, events.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::{FrameReader, ReadError};
use crate::ctl::frame::{self, FrameError};
use crate::ctl::proto::{
    ClientMessage, CtlError, EventRecord, PROTOCOL_VERSION, Request, ResponseResult, ServerMessage,
};

/// A connection to a daemon's control socket, past the hello.
///
/// Requests go one at a time ([`request`](Self::request) takes `&mut self`).
/// After a [`Request::Watch`], events that arrive while a request waits for
/// its response are kept for [`next_event`](Self::next_event).
#[derive(Debug)]
pub struct ControlClient {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    daemon: String,
    pid: u32,
    next_id: u64,
    events: VecDeque<EventRecord>,
}

/// Why talking to a daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, reading or writing failed. From `connect`, `NotFound` or
    /// `ConnectionRefused` mean no daemon listens, `PermissionDenied` that
    /// the socket is not ours to use.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The daemon sent something that is not a frame or not a message.
    #[error("bad message from the daemon: {0}")]
    Frame(#[from] FrameError),
    /// The daemon closed the connection.
    #[error("the daemon closed the connection")]
    Closed,
    /// The daemon refused the connection and closed it (a response with id
    /// 0): not allowed, another protocol version, a bad frame.
    #[error("the daemon refused the connection: {0}")]
    Refused(CtlError),
    /// The daemon broke the protocol (an answer to the wrong request, ...).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ControlClient {
    /// Connects to the socket at PATH and does the hello, naming this
    /// program (its executable's file name) as the client.
    ///
    /// # Errors
    ///
    /// See [`connect_as`](Self::connect_as).
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        Self::connect_as(path, &program_name()).await
    }

    /// Connects to the socket at PATH and does the hello as `client`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if the socket cannot be reached,
    /// [`ClientError::Refused`] if the daemon turns the client away,
    /// [`ClientError::Protocol`] if its hello is not one of ours.
    pub async fn connect_as(path: &Path, client: &str) -> Result<Self, ClientError> {
        let (read, writer) = UnixStream::connect(path).await?.into_split();
        let mut this = Self {
            reader: FrameReader::new(read),
            writer,
            daemon: String::new(),
            pid: 0,
            next_id: 1,
            events: VecDeque::new(),
        };
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            client: client.to_owned(),
        };
        // A daemon that refuses us may close before our hello is written;
        // its reason is still waiting to be read.
        let sent = this.send(&hello).await;
        match (this.read().await, sent) {
            (Ok(msg), _) => this.accept_hello(msg)?,
            (Err(err @ ClientError::Refused(_)), _) | (Err(err), Ok(())) => return Err(err),
            (Err(_), Err(err)) => return Err(err),
        }
        Ok(this)
    }

    /// The daemon's name from its hello (`iked`).
    pub fn daemon(&self) -> &str {
        &self.daemon
    }

    /// The daemon's process id from its hello.
    pub fn daemon_pid(&self) -> u32 {
        self.pid
    }

    /// Sends a request and waits for its response.
    ///
    /// # Errors
    ///
    /// [`ClientError`] if the exchange fails; a request the daemon rejects is
    /// `Ok(ResponseResult::Err(..))`.
    pub async fn request(&mut self, request: Request) -> Result<ResponseResult, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        if let Err(err) = self.send(&ClientMessage::Request { id, request }).await {
            return Err(self.reason_for(err).await);
        }
        loop {
            match self.read().await? {
                ServerMessage::Response { id: got, result } if got == id => return Ok(result),
                ServerMessage::Event { event } => self.events.push_back(event),
                other => return Err(unexpected(&other, &format!("the response to request {id}"))),
            }
        }
    }

    /// The next event, after a [`Request::Watch`]; waits for one.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] when the daemon goes away, or any other
    /// [`ClientError`].
    pub async fn next_event(&mut self) -> Result<EventRecord, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        match self.read().await? {
            ServerMessage::Event { event } => Ok(event),
            other => Err(unexpected(&other, "an event")),
        }
    }

    fn accept_hello(&mut self, msg: ServerMessage) -> Result<(), ClientError> {
        match msg {
            ServerMessage::Hello {
                version: PROTOCOL_VERSION,
                daemon,
                pid,
            } => {
                self.daemon = daemon;
                self.pid = pid;
                Ok(())
            }
            ServerMessage::Hello {
                version, daemon, ..
            } => Err(ClientError::Protocol(format!(
                "{daemon} speaks control protocol version {version}, this client \
                 version {PROTOCOL_VERSION}"
            ))),
            other => Err(unexpected(&other, "the daemon's hello")),
        }
    }

    async fn send(&mut self, msg: &ClientMessage) -> Result<(), ClientError> {
        let mut buf = Vec::new();
        frame::encode(msg, &mut buf)?;
        self.writer.write_all(&buf).await?;
        Ok(())
    }

    /// The next message; a refusal (response with id 0) becomes
    /// [`ClientError::Refused`].
    async fn read(&mut self) -> Result<ServerMessage, ClientError> {
        let body = match self.reader.next_frame().await {
            Ok(Some(body)) => body,
            Ok(None) => return Err(ClientError::Closed),
            Err(ReadError::Io(err)) => return Err(err.into()),
            Err(ReadError::Frame(err)) => return Err(err.into()),
        };
        match frame::parse(&body)? {
            ServerMessage::Response {
                id: 0,
                result: ResponseResult::Err(err),
            } => Err(ClientError::Refused(err)),
            msg => Ok(msg),
        }
    }

    /// After a failed write: the daemon's refusal if it sent one, else `err`.
    async fn reason_for(&mut self, err: ClientError) -> ClientError {
        match self.read().await {
            Err(refused @ ClientError::Refused(_)) => refused,
            _ => err,
        }
    }
}

fn unexpected(msg: &ServerMessage, wanted: &str) -> ClientError {
    let got = match msg {
        ServerMessage::Hello { .. } => "a second hello".to_owned(),
        ServerMessage::Response { id, .. } => format!("a response to request {id}"),
        ServerMessage::Event { .. } => "an event".to_owned(),
    };
    ClientError::Protocol(format!("expected {wanted}, got {got}"))
}

/// This executable's file name, for the hello.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map_or_else(
            || "client".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        )
}
