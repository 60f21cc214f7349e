//! kinkd, racoon3's KINK daemon (RFC 4430): IPsec SAs keyed through
//! Kerberos in one round trip, with IKEv1 Quick Mode payloads
//! (`libracoon::isakmp`) inside KINK messages.
//!
//! Work in progress: the wire codec ([`wire`]) and the Kerberos access
//! ([`krb5`]) exist; the protocol core and the daemon follow. Nothing here
//! runs yet.

pub mod krb5;
pub mod proto;
pub mod wire;
