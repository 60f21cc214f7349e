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
//! - [`xfrm::XfrmKernel`] installs SAs and policies in the Linux kernel
//!   over `NETLINK_XFRM`, for kernels with ESP ([`xfrm::kernel_has_esp`]
//!   tells); its message codec ([`xfrm::msg`]) is sans-IO.
//! - [`pfkeyv2::PfKeyKernel`] talks RFC 2367 PF_KEY v2 to a kernel with
//!   AF_KEY sockets (Linux's `af_key`); its message codec
//!   ([`pfkeyv2::Message`]) is sans-IO. On kernels without AF_KEY it
//!   refuses to open with [`KernelError::Unsupported`].
//! - [`remote::SpmdKernel`] reaches spmd's backend over the control socket,
//!   and [`split::SplitKernel`] puts SAs in a kernel backend while policies
//!   and ACQUIREs go through spmd.

pub mod attach;
pub mod handoff;
pub mod memory;
pub mod pfkeyv2;
pub mod remote;
pub mod split;
mod sys;
pub mod userspace;
pub mod xfrm;

pub use libracoon::ipsec::{
    Counters, EspAuth, EspEncr, IpsecMode, KernelEvent, Lifetime, PolicyAction, PolicySpec,
    SaDirection, SaId, SaInfo, SaSpec, Selector, UdpEncap,
};

use std::future::Future;
use std::net::IpAddr;

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

    /// Reserve an unused SPI for an inbound SA from `src` to `dst` (our
    /// address), so that two key-exchange daemons never pick the same one
    /// (RFC 2367 SADB_GETSPI, XFRM_MSG_ALLOCSPI). The SA installed later
    /// with [`Kernel::add_sa`] takes the reservation over.
    fn alloc_spi(
        &self,
        src: IpAddr,
        dst: IpAddr,
        reqid: u32,
    ) -> impl Future<Output = Result<u32, KernelError>> + Send;

    /// Install one unidirectional SA.
    fn add_sa(&self, sa: SaSpec) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// Replace an installed SA's parameters (lifetimes, encapsulation ports
    /// after a NAT rebinding), keeping its counters and replay state where
    /// the backend can.
    fn update_sa(&self, sa: SaSpec) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// Remove one SA.
    fn delete_sa(&self, id: SaId) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// One SA, with its counters.
    fn get_sa(&self, id: SaId) -> impl Future<Output = Result<SaInfo, KernelError>> + Send;

    /// All SAs currently installed (keys are not returned).
    fn list_sas(&self) -> impl Future<Output = Vec<SaId>> + Send;

    /// Remove every ESP SA the backend holds (racoonctl flush).
    fn flush_sas(&self) -> impl Future<Output = Result<(), KernelError>> + Send;

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

    /// Every installed policy.
    fn list_policies(&self) -> impl Future<Output = Vec<PolicySpec>> + Send;

    /// Remove every policy the backend holds.
    fn flush_policies(&self) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// The backend's event stream. The first call takes it; later calls
    /// return `None`.
    fn take_events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<KernelEvent>>;
}
