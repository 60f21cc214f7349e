//! In-crate tests that drive two IKEv2 endpoints against each other in
//! memory (quinn-proto's `Pair` shape): no sockets, injected clock and
//! randomness.

mod endpoint;
mod handshake;
mod rekey;
pub(crate) mod sim;
