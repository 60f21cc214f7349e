//! The `unsafe` calls of pfkey, each with its contract: registering a raw
//! socket with tokio's reactor, and `setsockopt` with an option value laid
//! out by hand (the XFRM socket policy and `UDP_ENCAP`, which neither nix
//! nor socket2 wrap).
//!
//! tokio has no safe constructor for `AsyncFd` any more (its old
//! `AsyncFd::new` is deprecated as unsound: nothing stops the caller from
//! closing the descriptor while it is registered). The contract is easy to
//! keep for a `socket2::Socket` that the `AsyncFd` owns, so it is kept here,
//! once.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

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

/// `setsockopt(fd, level, name, value, value.len())` with the option value
/// given as the exact bytes the kernel expects.
///
/// # Errors
/// The `setsockopt` error.
pub(crate) fn setsockopt_bytes(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is borrowed, so it is an open descriptor for the whole
    // call; `value.as_ptr()` points to `len` initialized bytes that live
    // until the call returns, and the kernel only reads them (it copies
    // the option value in; it keeps no pointer).
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
