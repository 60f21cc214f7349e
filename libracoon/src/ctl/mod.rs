//! The control protocol between racoonctl and the daemons.
//!
//! Each daemon listens on a Unix stream socket (`/run/racoon3/iked.sock` and
//! so on), mode 0600, and serves only root and its own user, checked with
//! `SO_PEERCRED`. On the socket, each message is one JSON object behind a
//! 4-byte big-endian length ([`frame`]). The client opens with a hello and
//! then sends requests, each answered by a response that carries the
//! request's id; a `watch` request subscribes the connection to the daemon's
//! event stream ([`proto`]). `docs/control-protocol.md` shows every message.
//!
//! [`proto`] and [`frame`] are sans-IO: plain types and a byte-in,
//! message-out decoder. [`io`] is the only module in this crate that touches
//! a socket: the tokio server the daemons embed and the client racoonctl
//! uses.

pub mod frame;
pub mod io;
pub mod kernel;
pub mod proto;

/// Fuzzing entry points (`cargo fuzz run ctl_frame`).
#[cfg(any(fuzzing, test))]
pub mod fuzzing {
    use super::frame::FrameDecoder;
    use super::proto::ClientMessage;

    /// Feeds arbitrary bytes to a [`FrameDecoder`] the way a daemon reads a
    /// client, and decodes [`ClientMessage`]s until the decoder reports an
    /// error or wants more bytes. The first byte picks where the rest is split
    /// into two pushes, so frames that straddle reads are covered too. Must
    /// never panic.
    pub fn decode(data: &[u8]) {
        let Some((&split, rest)) = data.split_first() else {
            return;
        };
        let (first, second) = rest.split_at(usize::from(split).min(rest.len()));
        let mut decoder = FrameDecoder::new();
        for chunk in [first, second] {
            decoder.push(chunk);
            while let Ok(Some(_)) = decoder.next::<ClientMessage>() {}
        }
        let _ = decoder.finish();
    }
}

#[cfg(test)]
mod samples;
#[cfg(test)]
mod tests;
