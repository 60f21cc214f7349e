//! Kernel abstraction (placeholder).
