//! racoon2.conf parsing (placeholder until written).
