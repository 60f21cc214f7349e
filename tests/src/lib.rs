//! racoon3's interop harness: test hosts in network namespaces, guarded child processes,
//! strongSwan peers, a guard for racoon3's own `iked`, and a KINK lab (KDC, `kinkd`).
//!
//! **I/O rule.** Unlike the protocol crates, everything here reaches outside: it runs `ip`,
//! `unshare`, `mount`, `charon` and `swanctl`, so it needs root. Tests built on it are
//! `#[ignore]`d, so a plain `cargo test` stays hermetic; CI runs them with
//! `cargo nextest run --run-ignored all`.
//!
//! **Address rule.** Traffic goes only to addresses that exist inside namespaces the test
//! created itself, all from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32). See [`netns::Lab`] for the standard two-host topology.
//!
//! **Cleanup rule.** Every resource is owned by a guard whose `Drop` releases it: [`Netns`]
//! deletes its namespace, [`ChildGuard`] stops its process (only if PID, executable and start
//! time still match), [`LabDir`] deletes its scratch directory (unless `RACOON3_KEEP_LAB=1`).
//! Guards share what they depend on (a [`StrongSwan`] keeps its [`Netns`] alive), so drop order
//! is never wrong. What a killed test process could not clean up is recorded in a ledger file
//! and swept by the next run ([`lab::sweep_stale`]).
//!
//! Typical use:
//! ```no_run
//! use interop::{Lab, StrongSwan, SwanConn};
//! interop::require_root_and_tools();
//! let lab = Lab::two_hosts()?;
//! let conn = SwanConn::psk_tunnel_v4(&lab.a, &lab.b);
//! let a = StrongSwan::start(&lab.dir, &lab.a.netns, "a", &[conn.clone()])?;
//! let b = StrongSwan::start(&lab.dir, &lab.b.netns, "b", &[conn.mirrored()])?;
//! a.initiate(&conn.child)?;
//! # Ok::<(), interop::Error>(())
//! ```

use std::io;
use std::time::Duration;

pub mod datagram;
pub mod iked;
pub mod kdc;
pub mod kink;
pub mod lab;
pub mod netns;
pub mod process;
pub mod qemu;
pub mod racoon2conf;
pub mod strongswan;

pub use iked::Iked;
pub use kink::{KinkLab, Kinkd};
pub use lab::LabDir;
pub use netns::{Host, Lab, Netns, VethPair, require_root_and_tools};
pub use process::{ChildGuard, Launch, log_contains, wait_for};
pub use strongswan::{ChildSaStatus, IkeSaStatus, StrongSwan, SwanConn, parse_list_sas};

/// Why a harness step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An external command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line, for the log.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr, then its stdout, trimmed.
        output: String,
    },
    /// A condition did not become true in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        timeout: Duration,
    },
    /// A daemon exited or misbehaved; the message carries the tail of its log.
    #[error("{0}")]
    Daemon(String),
    /// A qemu guest could not be prepared or did not finish; the message says which step.
    #[error("{0}")]
    Guest(String),
}

/// Result type of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps an [`io::Error`] with what the harness was doing.
pub(crate) fn io_context(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
