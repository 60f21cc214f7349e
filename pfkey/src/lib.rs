//! racoon3's kernel abstraction: SAs and policies where packets meet them.
//!
//! Protocol code (iked, kinkd, spmd) talks to one [`Kernel`] trait and never
//! knows which backend runs. Backends so far:
//!
//! - [`memory::MemoryKernel`] keeps SAs in a table and carries no traffic;
//!   it exists so that key exchange can be tested without a datapath, and
//!   it says so in its name.
//! - [`userspace::UserspaceKernel`] is an ESP datapath in user space (TUN
//!   device, raw ESP and ESP-in-UDP sockets) for kernels without ESP; its
//!   core ([`userspace::EspSa`], [`userspace::Sad`]) is sans-IO.
//!
//! The XFRM and PF_KEY backends are separate pieces of work.

pub mod memory;
mod types;
pub mod userspace;

pub use types::{
    Counters, EspAuth, EspEncr, IpsecMode, KernelEvent, PolicyAction, PolicySpec, SaDirection,
    SaId, SaSpec, Selector, UdpEncap,
};

use std::future::Future;

/// Why the kernel (or a backend standing in for it) refused a request.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelError {
    /// An SA with the same (destination, protocol, SPI) is already installed.
    #[error("an SA with SPI {0:#010x} already exists")]
    Exists(u32),
    /// The SA to update or delete is not there.
    #[error("no SA with SPI {0:#010x}")]
    NotFound(u32),
    /// The backend cannot express the request (e.g. an algorithm it lacks).
    #[error("backend {backend} cannot do this: {what}")]
    Unsupported {
        /// Which backend refused.
        backend: &'static str,
        /// What it could not do.
        what: String,
    },
    /// The backend failed while carrying out a request it supports (an
    /// I/O error, a device that cannot be created, a stopped task).
    #[error("backend {backend} failed: {what}")]
    Failed {
        /// Which backend failed.
        backend: &'static str,
        /// What went wrong.
        what: String,
    },
}

/// SA and policy operations every backend provides.
///
/// The methods are async because the real backends talk to the kernel or to
/// spmd; callers must not assume they complete immediately.
pub trait Kernel: Send + Sync {
    /// Short backend name for logs, e.g. `memory` or `xfrm`.
    fn name(&self) -> &'static str;

    /// Whether SAs installed here protect real traffic. The memory backend
    /// answers `false`, and daemons must say so instead of claiming
    /// protection.
    fn carries_traffic(&self) -> bool;

    /// Install one unidirectional SA.
    fn add_sa(&self, sa: SaSpec) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// Remove one SA.
    fn delete_sa(&self, id: SaId) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// All SAs currently installed (keys are not returned).
    fn list_sas(&self) -> impl Future<Output = Vec<SaId>> + Send;

    /// Install a policy. A `Protect` policy whose traffic has no SA makes
    /// the backend raise [`KernelEvent::Acquire`] (negotiation on demand).
    fn add_policy(
        &self,
        policy: PolicySpec,
    ) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// Remove the policy with this selector and direction.
    fn delete_policy(
        &self,
        selector: Selector,
        direction: SaDirection,
    ) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// Traffic counters of one SA, where the backend counts (RFC 4301
    /// §4.4.2.1 lifetime counters). `None` if unknown or not counted.
    fn sa_counters(&self, id: SaId) -> Option<Counters> {
        let _ = id;
        None
    }

    /// The backend's event stream. The first call takes it; later calls
    /// return `None`.
    fn take_events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<KernelEvent>>;
}
