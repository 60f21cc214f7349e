//! The one `unsafe` call of pfkey: registering a raw socket with tokio's
//! reactor.
//!
//! tokio has no safe constructor for `AsyncFd` any more (its old
//! `AsyncFd::new` is deprecated as unsound: nothing stops the caller from
//! closing the descriptor while it is registered). The contract is easy to
//! keep for a `socket2::Socket` that the `AsyncFd` owns, so it is kept here,
//! once. The PF_KEY backend ([`crate::pfkeyv2`]) registers its socket here
//! too, so pfkey keeps a single `unsafe` block.
#![allow(unsafe_code)]

use std::io;

use socket2::Socket;
use tokio::io::unix::AsyncFd;

/// Registers `sock` with the current runtime's reactor.
///
/// # Panics
/// Outside a tokio runtime.
pub(crate) fn register(sock: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `AsyncFd::register` needs the descriptor behind `as_raw_fd()`
    // to stay open, and to stay the same, for as long as the `AsyncFd`
    // lives. The `AsyncFd` takes ownership of `sock`; a `socket2::Socket`
    // owns its descriptor, never replaces it, and closes it only on drop,
    // which cannot happen before the `AsyncFd` itself is dropped (nothing
    // here calls `into_inner`).
    unsafe { AsyncFd::register(sock) }.map_err(|e| e.into_parts().1)
}
