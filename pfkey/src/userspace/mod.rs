//! The userspace ESP datapath, for hosts whose kernel has no ESP (or no
//! XFRM): a sans-IO core and a thin TUN/socket shell.
//!
//! | module | what |
//! |---|---|
//! | [`esp`] | ESP header view, [`EspSa::seal`]/[`EspSa::open`] on caller buffers (RFC 4303, 4106, 7634, 3602, 4868) |
//! | [`replay`] | anti-replay window with ESN reconstruction (RFC 4303 §3.4.3, App. A) |
//! | [`policy`] | installed policies: discard/bypass/protect, ACQUIRE rate limiting |
//! | [`spd`] | inner header parsing, selector matching, outbound SA choice |
//! | [`sad`] | SA tables, lifetimes, the encapsulate/decapsulate pipelines |
//! | [`transport`] | transport mode: split after the IP header, rebuild it inbound (RFC 4303 §3.1.1) |
//! | [`stats`] | per-SA and per-drop-reason counters |
//! | `datapath`, `task`, `route`, `socket` | the shell: [`UserspaceKernel`], TUN + raw/UDP sockets, routes (tokio registration in `crate::sys`) |
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
pub mod natt;
pub mod policy;
pub mod replay;
mod route;
pub mod sad;
mod socket;
pub mod spd;
pub mod stats;
mod task;
pub mod transport;

pub use datapath::{NonEspSink, UserspaceConfig, UserspaceKernel};
pub use socket::{BYPASS_MARK, mark_socket};

pub use esp::{EspError, EspHeader, EspOptions, EspSa, Opened};
pub use policy::{ACQUIRE_RETRY, PolicyTable};
pub use replay::{ReplayError, ReplayWindow, Window};
pub use sad::{Decapsulated, Expiry, Lifetime, SEQ_SOFT_LIMIT, Sad, SadEntry, Transmit};
pub use spd::{InnerHeader, Spd};
pub use stats::{DatapathStats, DropCounters, DropReason, SaCounters, SaStats};
