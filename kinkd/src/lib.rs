//! kinkd, racoon3's KINK daemon (RFC 4430): IPsec SAs keyed through
//! Kerberos in one round trip, with IKEv1 Quick Mode payloads
//! (`libracoon::isakmp`) inside KINK messages.
//!
//! The wire codec ([`wire`]), the Kerberos access ([`krb5`]), the sans-IO
//! protocol core ([`proto`]) and the tokio daemon around it ([`daemon`],
//! started by `src/bin/kinkd.rs`).

pub mod daemon;
pub mod krb5;
pub mod proto;
pub mod wire;
