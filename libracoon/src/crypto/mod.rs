//! Crypto (placeholder until written).
