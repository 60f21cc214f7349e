//! The PF_KEY v2 backend (RFC 2367 with the KAME/Linux `SADB_X_*`
//! extensions): a sans-IO message codec and [`PfKeyKernel`], which
//! implements [`crate::Kernel`] over an AF_KEY socket where the kernel has
//! one (Linux with the `af_key` module).
//!
//! | module | what |
//! |---|---|
//! | [`msg`] | `sadb_msg` and the extension chain: [`Message::parse`], [`Message::emit`] |
//! | [`ext`] | extension bodies: SA, lifetimes, addresses, keys, SPI range, proposal, supported algorithms, X_POLICY with ipsecrequests, X_SA2, NAT-T, KMADDRESS |
//! | [`convert`] | [`crate::SaSpec`] / [`crate::PolicySpec`] to messages, messages to [`crate::KernelEvent`]s; what Linux PF_KEY cannot say is refused here |
//! | `backend` | [`PfKeyKernel`]: the socket, request/reply matching, the reader task |
//! | `wire`, `sockaddr` | bounds-checked reader, open enums, `sockaddr_in`/`sockaddr_in6` |
//!
//! The codec never panics on input (a fuzz target and the tests feed it
//! garbage); host-order fields are read in the host's order, as RFC 2367
//! says, SPIs and ports in network order.

mod backend;
pub mod convert;
pub mod ext;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod msg;
mod sockaddr;
mod wire;

pub use backend::{PfKeyKernel, REPLY_TIMEOUT};
pub use msg::{Header, Message, MsgType, SaType};
pub use sockaddr::{AF_INET, AF_INET6};
pub use wire::{DecodeError, EncodeError};

#[cfg(test)]
mod tests;
