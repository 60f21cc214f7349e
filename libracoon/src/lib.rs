//! Shared building blocks of racoon3.
//!
//! Everything here is used by more than one daemon: the racoon2.conf parser
//! ([`config`]) and the one module that owns every cryptographic algorithm
//! ([`crypto`]). Nothing in this crate touches a socket or the clock: the
//! daemons do I/O, this crate only computes.

pub mod config;
pub mod crypto;
