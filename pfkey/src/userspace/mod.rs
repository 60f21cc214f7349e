//! The userspace ESP datapath, for hosts whose kernel has no ESP (or no
//! XFRM): a sans-IO core and a thin TUN/socket shell.
//!
//! | module | what |
//! |---|---|
//! | [`esp`] | ESP header view, [`EspSa::seal`]/[`EspSa::open`] on caller buffers (RFC 4303, 4106, 7634, 3602, 4868) |
//! | [`replay`] | anti-replay window with ESN reconstruction (RFC 4303 §3.4.3, App. A) |
//! | [`spd`] | inner header parsing, selector matching, outbound SA choice |
//! | [`sad`] | SA tables, lifetimes, the encapsulate/decapsulate pipelines |
//! | [`stats`] | per-SA and per-drop-reason counters |
//! | `datapath`, `route`, `socket`, `sys` | the shell: [`UserspaceKernel`], TUN + raw/UDP sockets, routes |
//!
//! The core never touches a socket, the clock or the OS random source:
//! time and randomness are parameters, output buffers belong to the caller,
//! and nothing allocates or locks per packet. [`UserspaceKernel`] is the
//! shell that implements [`crate::Kernel`] with it (see its module docs for
//! the task layout, routing, and what this first version refuses).

mod datapath;
pub mod esp;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod replay;
mod route;
pub mod sad;
mod socket;
pub mod spd;
pub mod stats;
mod sys;

pub use datapath::{UserspaceConfig, UserspaceKernel};

pub use esp::{EspError, EspHeader, EspOptions, EspSa, Opened};
pub use replay::{ReplayError, ReplayWindow, Window};
pub use sad::{Expiry, Lifetime, Sad, SadEntry, Transmit};
pub use spd::{InnerHeader, Spd};
pub use stats::{DatapathStats, DropCounters, DropReason, SaCounters, SaStats};
