//! IKEv2 (RFC 7296): wire codec and protocol state machines.

pub mod wire;
