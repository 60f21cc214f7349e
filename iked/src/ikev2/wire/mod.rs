//! IKEv2 wire codec (placeholder until written).
