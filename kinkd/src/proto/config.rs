//! What the protocol core needs to know about each peer, translated from
//! racoon2.conf by the daemon (`crate::daemon::conf`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libracoon::ipsec::{EspAuth, EspEncr, IpsecMode, Lifetime, Selector};

/// One ESP transform we offer or accept, in preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspProposal {
    /// Cipher (IKEv2 transform ID and key size, as in [`libracoon::ipsec::SaSpec`]).
    pub encr: EspEncr,
    /// Integrity algorithm; `None` for AEAD ciphers.
    pub auth: Option<EspAuth>,
}

/// One `remote` block with `acceptable_kmp { kink; }`.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The remote block's name, for logs and racoonctl.
    pub name: String,
    /// Where the peer's kinkd listens (`peers_ipaddr`, port 910 unless set).
    pub address: SocketAddr,
    /// Our address towards it: the outer source of our SAs.
    pub local: IpAddr,
    /// The peer's service principal (`peers_principal`, `kink/<host>@REALM`),
    /// canonical ([`crate::krb5::Kerberos::canonical_name`]): authenticated
    /// clients are compared with it as strings.
    pub principal: String,
    /// Request ID tying the SAs to spmd's policies for this remote.
    pub reqid: u32,
    /// Tunnel or transport (the remote's policy).
    pub mode: IpsecMode,
    /// What traffic the SAs carry, from our side: `src` is ours. In tunnel
    /// mode these go on the wire as IDci/IDcr; in transport mode they are
    /// the two hosts and no IDs are sent.
    pub selector: Selector,
    /// Transforms in preference order; the first is the optimistic one.
    pub proposals: Vec<EspProposal>,
    /// SA lifetime (soft and hard; the soft limit triggers the rekey).
    pub lifetime: Lifetime,
    /// Get a user-to-user ticket (GETTGT first) instead of a service
    /// ticket: the peer has no keytab entry the KDC issues tickets for.
    pub user_to_user: bool,
    /// Retransmission: first interval, doubled each time.
    pub retransmit_base: Duration,
    /// Retransmission: how many times a command is sent in all.
    pub retransmit_tries: u32,
}
