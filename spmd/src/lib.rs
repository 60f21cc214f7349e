//! spmd, racoon3's security policy manager: it owns the SPD.
//!
//! It installs the policies of racoon2.conf's `selector`/`policy` blocks
//! ([`plan`]) through pfkey, hosts the userspace ESP datapath when that is
//! the backend (with the ESP-in-UDP hand-off from iked, see
//! `pfkey::handoff`), serves iked and kinkd the `Kernel` trait over its
//! control socket, routes each ACQUIRE to the daemon of the remote's first
//! `acceptable_kmp` ([`state`]), applies configuration changes on reload,
//! removes its policies on exit, and removes what a crashed predecessor
//! left ([`journal`]).
//!
//! | module | what |
//! |---|---|
//! | [`plan`] | configuration → policies, reqids shared with iked |
//! | [`journal`] | installed policies on disk, for crash cleanup |
//! | [`state`] | bookkeeping, reload diff, answers, event routing |
//! | [`daemon`] | tokio shell: backend, sockets, signals |

pub mod daemon;
pub mod journal;
pub mod plan;
pub mod state;
