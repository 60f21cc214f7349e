//! The kernel requests iked and kinkd send to spmd, which owns the SPD and,
//! with the userspace datapath, the SAD: pfkey's `Kernel` trait spoken over
//! the control socket, so protocol code never knows where its SAs live.
//!
//! Each request names the daemon it comes from, so spmd can send the SAs'
//! expiries back to the daemon that installed them. Kernel events reach a
//! daemon as ordinary [`super::proto::EventRecord`]s of a `watch`, carrying a
//! [`KernelNotice`] addressed to it.

use serde::{Deserialize, Serialize};

use crate::ipsec::{KernelEvent, PolicySpec, SaDirection, SaId, SaInfo, SaSpec, Selector};

/// One operation on spmd's kernel backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KernelOp {
    /// Announce the daemon (so ACQUIREs can be routed to it) and learn the
    /// backend ([`KernelReply::Attached`]).
    Attach,
    /// Reserve an SPI ([`KernelReply::Spi`]).
    AllocSpi {
        /// Peer address (the SA's outer source).
        src: std::net::IpAddr,
        /// Our address (the SA's outer destination).
        dst: std::net::IpAddr,
        /// The policy's request ID.
        reqid: u32,
    },
    /// Install an SA.
    AddSa {
        /// The SA, keys included.
        sa: SaSpec,
    },
    /// Change an SA's lifetime or encapsulation.
    UpdateSa {
        /// The SA, keys included.
        sa: SaSpec,
    },
    /// Remove an SA.
    DeleteSa {
        /// Which SA.
        id: SaId,
    },
    /// One SA with counters ([`KernelReply::Sa`]).
    GetSa {
        /// Which SA.
        id: SaId,
    },
    /// All installed SAs ([`KernelReply::Sas`]).
    ListSas,
    /// Install a policy on behalf of a responder (racoon2's POLICY ADD, e.g.
    /// for a road warrior whose address was not known in advance); spmd
    /// removes it when the daemon goes away or on request.
    AddPolicy {
        /// The policy.
        policy: PolicySpec,
    },
    /// Remove a policy installed with [`KernelOp::AddPolicy`].
    DeletePolicy {
        /// Its selector.
        selector: Selector,
        /// Its direction.
        direction: SaDirection,
    },
    /// Every installed policy ([`KernelReply::Policies`]).
    ListPolicies,
}

/// spmd's answer to a [`KernelOp`] that returns something besides success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KernelReply {
    /// Done, nothing to return.
    Done,
    /// Answer to [`KernelOp::Attach`].
    Attached {
        /// The backend's name (`userspace`, `xfrm`, ...).
        backend: String,
        /// Whether installed SAs protect traffic.
        carries_traffic: bool,
    },
    /// A reserved SPI.
    Spi {
        /// The SPI.
        spi: u32,
    },
    /// One SA.
    Sa {
        /// What the backend knows about it.
        sa: SaInfo,
    },
    /// Installed SAs.
    Sas {
        /// Their identities.
        sas: Vec<SaId>,
    },
    /// Installed policies.
    Policies {
        /// The policies.
        policies: Vec<PolicySpec>,
    },
}

/// A kernel event addressed to one key-exchange daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelNotice {
    /// The daemon it is for (`iked`, `kinkd`), chosen by the remote's
    /// `acceptable_kmp` for an ACQUIRE and by who installed the SA for an
    /// expiry.
    pub to: String,
    /// The event.
    pub event: KernelEvent,
}
