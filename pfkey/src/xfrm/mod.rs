//! The XFRM backend: SAs and policies in the Linux kernel, over a
//! `NETLINK_XFRM` socket, for kernels that carry ESP (`esp4`/`esp6`).
//!
//! | module | what |
//! |---|---|
//! | [`netlink`] | netlink framing: `nlmsghdr`, attributes, errors and extended acks |
//! | [`structs`] | the fixed structs of `linux/xfrm.h` (selector, SA, policy, template, ...) |
//! | [`attr`] | `XFRMA_*` attributes: algorithms, encapsulation, templates, ESN replay, MIGRATE |
//! | [`msg`] | typed XFRM messages: requests, replies, ACQUIRE/EXPIRE/MIGRATE events |
//! | [`convert`] | racoon3's SA/policy/event types to and from those messages (pure) |
//! | `channel`, `backend` | the sockets and [`XfrmKernel`] |
//! | `sockopt` | [`bypass_socket`] and [`enable_udp_encap`] for the daemons' own sockets |
//! | `probe` | [`kernel_has_esp`], for choosing a backend |
//!
//! The codec ([`netlink`] to [`msg`]) is sans-IO, bounds-checked and
//! never panics on input; its tests compare with bytes captured from
//! iproute2 (`testdata/xfrm/`). Layouts are those of 64-bit ABIs.
#![deny(clippy::unwrap_used)]

pub mod attr;
mod backend;
mod channel;
pub mod convert;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod msg;
pub mod netlink;
mod probe;
mod sockopt;
pub mod structs;

pub use backend::XfrmKernel;
pub use probe::{kernel_has_esp, probe_esp};
pub use sockopt::{bypass_socket, enable_udp_encap};
