//! Control-socket framing: a 4-byte big-endian length, then that many bytes
//! of one JSON object. Sans-IO: [`encode`] appends a frame to a buffer,
//! [`FrameDecoder`] takes bytes as they arrive and hands out messages.
//!
//! ```text
//! +--------+--------+--------+--------+----------------------------+
//! |        length (u32, big-endian)   |  JSON object, length bytes |
//! +--------+--------+--------+--------+----------------------------+
//! ```
//!
//! A length above [`MAX_FRAME`] is refused before anything of the body is
//! read, so a peer cannot make the reader buffer more than that.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest JSON body a frame may carry: 1 MiB.
pub const MAX_FRAME: usize = 1 << 20;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix (or the encoded message) exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    Oversized(usize),
    /// The body is not JSON (the parser's message).
    #[error("frame is not valid JSON: {0}")]
    BadJson(String),
    /// The body is JSON but not a message of the expected type (an unknown
    /// `type` or `cmd`, a missing field, ...).
    #[error("frame is not a valid message: {0}")]
    BadMessage(String),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes of the frame received, length prefix included.
        have: usize,
        /// Bytes the frame needs (4 while the prefix itself is incomplete).
        need: usize,
    },
    /// The message could not be serialized.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Appends `msg` to `out` as one frame.
///
/// # Errors
///
/// [`FrameError::Oversized`] if the JSON exceeds [`MAX_FRAME`], or
/// [`FrameError::Encode`] if serde fails; `out` is then left as it was.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let written = serde_json::to_writer(&mut *out, msg)
        .map_err(|err| FrameError::Encode(err.to_string()))
        .and_then(|()| body_len(out.len() - start - HEADER_LEN));
    match written {
        Ok(len) => {
            out[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(err) => {
            out.truncate(start);
            Err(err)
        }
    }
}

/// Parses one frame body as a `T`, telling bad JSON from a wrong message.
///
/// # Errors
///
/// [`FrameError::BadJson`] for a syntax error or a body that ends early,
/// [`FrameError::BadMessage`] for JSON of the wrong shape.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(|err| {
        if err.is_data() {
            FrameError::BadMessage(err.to_string())
        } else {
            FrameError::BadJson(err.to_string())
        }
    })
}

/// Reassembles frames from a byte stream.
///
/// Call [`push`](Self::push) with whatever the socket returned, then
/// [`next`](Self::next) until it returns `Ok(None)` (more bytes needed).
/// At end of stream, [`finish`](Self::finish) tells a clean close from a
/// truncated frame.
///
/// After [`FrameError::BadJson`] or [`FrameError::BadMessage`] the bad frame
/// has been consumed and the stream stays in sync. After
/// [`FrameError::Oversized`] it cannot be resynchronised: every later call
/// returns the same error.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, or `None` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`FrameError::Oversized`] as soon as a length prefix exceeds
    /// [`MAX_FRAME`]; the errors of [`parse`] for a complete frame.
    #[expect(
        clippy::should_implement_trait,
        reason = "generic over the message type and fallible: not an Iterator"
    )]
    pub fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        self.next_frame()?.map(|body| parse(&body)).transpose()
    }

    /// The next complete frame's JSON body, unparsed, or `None` if more bytes
    /// are needed. A server uses this to read the `id` of a request it cannot
    /// parse.
    ///
    /// # Errors
    ///
    /// [`FrameError::Oversized`] as soon as a length prefix exceeds
    /// [`MAX_FRAME`].
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(len) = self.announced_len()? else {
            return Ok(None);
        };
        let end = HEADER_LEN + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        let body = self.buf[HEADER_LEN..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(body))
    }

    /// Checks that the stream ended between frames.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] if part of a frame is buffered.
    pub fn finish(&self) -> Result<(), FrameError> {
        let have = self.buf.len();
        if have == 0 {
            return Ok(());
        }
        let need = match self.announced_len() {
            Ok(Some(len)) => HEADER_LEN + len,
            _ => HEADER_LEN,
        };
        Err(FrameError::Truncated { have, need })
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The length the buffered prefix announces, if a whole prefix is there.
    fn announced_len(&self) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            return Err(FrameError::Oversized(len));
        }
        Ok(Some(len))
    }
}

/// A body length as the prefix carries it, if within [`MAX_FRAME`].
fn body_len(len: usize) -> Result<u32, FrameError> {
    if len > MAX_FRAME {
        return Err(FrameError::Oversized(len));
    }
    u32::try_from(len).map_err(|_| FrameError::Oversized(len))
}

#[cfg(test)]
mod tests;
