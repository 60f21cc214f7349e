//! In-crate tests that drive two IKEv2 endpoints against each other in
//! memory (quinn-proto's `Pair` shape): no sockets, injected clock and
//! randomness.

mod endpoint;
mod handshake;
mod rekey;
pub(crate) mod sim;

/// A's simulator configuration, for tests elsewhere in the crate.
pub(crate) fn sim_config_a() -> crate::ikev2::config::PeerConfig {
    sim::config_a()
}
