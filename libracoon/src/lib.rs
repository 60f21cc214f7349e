//! Shared building blocks of racoon3.
//!
//! Everything here is used by more than one daemon: the racoon2.conf parser
//! ([`config`]), the one module that owns every cryptographic algorithm
//! ([`crypto`]) and the control protocol that racoonctl speaks to the daemons
//! ([`ctl`]), and the IPsec vocabulary (SAs, policies, kernel events) that
//! crosses it ([`ipsec`]), and the ISAKMP payload codec that IKEv1 and KINK share
//! ([`isakmp`]). Nothing in this crate touches a socket or the clock except
//! [`ctl::io`], the control sockets' tokio helpers: the daemons do I/O, this
//! crate only computes.

pub mod config;
pub mod crypto;
pub mod ctl;
pub mod daemon;
pub mod ipsec;
pub mod isakmp;
pub mod registry;
