//! The one `unsafe` step of the hand-off: taking ownership of a descriptor
//! the kernel installed in this process with `SCM_RIGHTS`.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Owns `fd`, a descriptor just received as `SCM_RIGHTS`.
///
/// Callers pass only descriptors taken from a `recvmsg` control message,
/// each once.
pub(super) fn adopt_received(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel created `fd` in this process's table while
    // delivering the SCM_RIGHTS message; nothing else knows its number, so
    // it is open, owned by nobody, and this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
