//! The control sockets' I/O (tokio): [`ControlServer`], which a daemon
//! embeds, and [`ControlClient`], which racoonctl uses. The only module of
//! libracoon that touches a socket.
//!
//! A daemon binds its socket and serves requests from its main loop:
//!
//! ```no_run
//! # async fn daemon() -> std::io::Result<()> {
//! use libracoon::ctl::io::ControlServer;
//! use libracoon::ctl::proto::{CtlError, ErrorCode, Request, ResponseBody, ResponseResult};
//!
//! let (server, mut incoming) =
//!     ControlServer::bind("/run/racoon3/iked.sock".as_ref(), "iked").await?;
//! while let Some(req) = incoming.recv().await {
//!     let result = match req.request {
//!         Request::ShowSa => ResponseResult::Ok(ResponseBody::Sas(Vec::new())),
//!         _ => ResponseResult::Err(CtlError::new(ErrorCode::Internal, "not yet")),
//!     };
//!     let _ = req.reply.send(result); // the client may have gone
//! }
//! # drop(server);
//! # Ok(())
//! # }
//! ```
//!
//! and tells watchers what happens with [`ControlServer::publish`].

mod client;
mod server;

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

pub use client::{ClientError, ControlClient};
pub use server::{ControlServer, Incoming};

use super::frame::{FrameDecoder, FrameError};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Frames off a byte stream.
#[derive(Debug)]
struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
    chunk: Box<[u8]>,
}

/// Why no frame could be read.
#[derive(Debug)]
enum ReadError {
    /// The socket failed.
    Io(io::Error),
    /// The bytes are not a frame.
    Frame(FrameError),
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl From<FrameError> for ReadError {
    fn from(err: FrameError) -> Self {
        Self::Frame(err)
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            decoder: FrameDecoder::new(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// The next frame's JSON body; `None` when the stream ends between frames.
    async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        loop {
            if let Some(body) = self.decoder.next_frame()? {
                return Ok(Some(body));
            }
            let n = self.inner.read(&mut self.chunk).await?;
            if n == 0 {
                self.decoder.finish()?;
                return Ok(None);
            }
            self.decoder.push(&self.chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests;
