//! The validated, typed configuration: what the daemons read.
//!
//! Everything here has been through `build.rs`: `default { ... }` values are
//! merged into every named block, every `*_index` names an existing block,
//! and required settings are present. Optional fields are `None` when
//! neither the block nor `default` sets them; the daemon then applies its
//! own default (racoon2's are listed in `doc/config-usage.txt`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::lexer::Span;
use super::names::{
    AuthAlgName, AuthMethod, DhGroupName, Direction, EncAlgName, IpsecLevel, IpsecMode, Kmp,
    PolicyAction, SaProtocol,
};

/// A whole racoon2.conf, after includes, variables and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Config {
    /// `interface { ... }`.
    pub interface: Interface,
    /// `remote NAME { ... }` blocks in file order, defaults merged.
    pub remotes: Vec<Remote>,
    /// `selector NAME { ... }` blocks in file order.
    pub selectors: Vec<Selector>,
    /// `policy NAME { ... }` blocks in file order, defaults merged.
    pub policies: Vec<Policy>,
    /// `ipsec NAME { ... }` blocks in file order, defaults merged.
    pub ipsecs: Vec<Ipsec>,
    /// `sa NAME { ... }` blocks in file order, defaults merged.
    pub sas: Vec<Sa>,
    /// `default { remote { ... }; }` as written, named `"default"`: racoon2
    /// negotiates with peers that match no `remote` using it. Not checked
    /// for completeness, since it may hold only the shared part.
    pub default_remote: Option<Remote>,
    /// `addresspool NAME { A - B; ... }` blocks (IKEv2 configuration
    /// payload).
    pub addresspools: Vec<AddressPool>,
}

impl Config {
    /// The `remote` block called `name`.
    pub fn remote(&self, name: &str) -> Option<&Remote> {
        self.remotes.iter().find(|r| r.name == name)
    }

    /// The `selector` block called `name`.
    pub fn selector(&self, name: &str) -> Option<&Selector> {
        self.selectors.iter().find(|s| s.name == name)
    }

    /// The `policy` block called `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The `ipsec` block called `name`.
    pub fn ipsec(&self, name: &str) -> Option<&Ipsec> {
        self.ipsecs.iter().find(|i| i.name == name)
    }

    /// The `sa` block called `name`.
    pub fn sa(&self, name: &str) -> Option<&Sa> {
        self.sas.iter().find(|s| s.name == name)
    }

    /// The `addresspool` block called `name`.
    pub fn addresspool(&self, name: &str) -> Option<&AddressPool> {
        self.addresspools.iter().find(|p| p.name == name)
    }

    /// The request ID that ties a remote's SAs to its policies when its
    /// selector sets no `reqid`: the remote's position in the file, from 1.
    /// spmd (which installs the policies) and the key-exchange daemons
    /// (which install the SAs) must agree on it, so both call this.
    pub fn default_reqid(&self, remote: &str) -> Option<u32> {
        let at = self.remotes.iter().position(|r| r.name == remote)?;
        u32::try_from(at + 1).ok()
    }

    /// spmd's control socket: `interface { spmd { unix "PATH"; }; }` as in
    /// racoon2, else `spmd.sock` in the run directory.
    pub fn spmd_socket(&self, run_dir: &std::path::Path) -> PathBuf {
        self.interface
            .spmd
            .first()
            .map_or_else(|| run_dir.join("spmd.sock"), PathBuf::from)
    }
}

/// `interface { ... }`: where the daemons listen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Interface {
    /// `ike ADDR [port N];` (iked; port 500 when absent).
    pub ike: Vec<ListenAddr>,
    /// `kink ADDR [port N];` (kinkd; port 910 when absent).
    pub kink: Vec<ListenAddr>,
    /// `spmd unix "PATH";`: control socket paths. racoon2's TCP form (a
    /// debug-build feature) is accepted with a warning and not listed.
    pub spmd: Vec<String>,
    /// `spmd_password "FILE";`.
    pub spmd_password: Option<PathBuf>,
}

/// One listening address.
///
/// racoon2's `MY_IP`, `MY_IPV4`, `MY_IPV6` (and `IP_ANY`) mean "every local
/// address"; they become the unspecified address(es) `0.0.0.0` and/or `::`,
/// i.e. a wildcard bind. Interface and host names are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ListenAddr {
    /// Address to bind; unspecified = all addresses of that family.
    pub addr: IpAddr,
    /// `port N`, if given.
    pub port: Option<u16>,
}

/// `remote NAME { ... }` with `default { remote { ... }; }` merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remote {
    /// The remote index.
    pub name: String,
    /// Where the block starts.
    pub span: Span,
    /// `acceptable_kmp`, in preference order (first = initiator's choice).
    pub acceptable_kmp: Vec<Kmp>,
    /// The `ikev2 { ... }` settings. The `ikev1` block is checked and
    /// reported as not implemented.
    pub ikev2: Ikev2Params,
    /// The `kink { ... }` settings (kinkd).
    pub kink: KinkParams,
    /// `selector_index`: the selector a responder uses for this peer.
    pub selector_index: Option<String>,
}

/// The `ikev2 { ... }` settings racoon3 implements. Lists keep the written
/// (preference) order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Ikev2Params {
    /// `my_id` (the first one if a list is given).
    pub my_id: Option<Identity>,
    /// `peers_id` (the first one if a list is given).
    pub peers_id: Option<Identity>,
    /// `peers_ipaddr`.
    pub peers_ipaddr: Option<PeerAddr>,
    /// `pre_shared_key "FILE"`: the whole file is the key; see
    /// [`read_psk`](super::read_psk).
    pub pre_shared_key: Option<PathBuf>,
    /// `kmp_enc_alg`.
    pub kmp_enc_alg: Vec<EncAlgName>,
    /// `kmp_hash_alg` (IKEv2 integrity). May be empty when every
    /// `kmp_enc_alg` is AEAD.
    pub kmp_hash_alg: Vec<AuthAlgName>,
    /// `kmp_prf_alg`.
    pub kmp_prf_alg: Vec<AuthAlgName>,
    /// `kmp_dh_group`.
    pub kmp_dh_group: Vec<DhGroupName>,
    /// `kmp_auth_method`.
    pub kmp_auth_method: Vec<AuthMethod>,
    /// `kmp_sa_lifetime_time`.
    pub kmp_sa_lifetime_time: Option<Lifetime>,
    /// `ipsec_sa_lifetime_time` inside `ikev2 { }`: a racoon3 extension
    /// (racoon2 has it only in `ipsec` blocks), the CHILD SA lifetime for
    /// this peer when the `ipsec` block sets none.
    pub ipsec_sa_lifetime_time: Option<Lifetime>,
    /// `dpd_delay`; zero (`0` or `infinite`) disables liveness checks.
    pub dpd_delay: Option<Duration>,
    /// `max_retry_to_send`.
    pub max_retry_to_send: Option<u32>,
    /// `interval_to_send`.
    pub interval_to_send: Option<Duration>,
    /// `times_per_send`.
    pub times_per_send: Option<u32>,
    /// `nonce_size`, in bytes.
    pub nonce_size: Option<u32>,
    /// `nat_traversal`.
    pub nat_traversal: Option<bool>,
    /// `cookie_required`: demand an IKEv2 COOKIE (RFC 7296 §2.6) from
    /// this peer's every IKE_SA_INIT, not only under load.
    pub cookie_required: Option<bool>,
    /// `force_udp_encap` (racoon3): announce a NAT in IKE_SA_INIT although
    /// there is none (strongSwan's `encap = yes`), so that both peers float
    /// to port 4500 and ESP rides UDP (RFC 3948), e.g. for UDP GSO/GRO.
    pub force_udp_encap: Option<bool>,
    /// `need_pfs`.
    pub need_pfs: Option<bool>,
    /// `script { ... }`: hook scripts run on SA events.
    pub scripts: super::Scripts,
}

/// The `kink { ... }` settings kinkd implements. The common KMP
/// directives KINK has no use for (`kmp_enc_alg`, `my_id`, `nonce_size`,
/// ...) are checked and warned about instead.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct KinkParams {
    /// `my_principal "kink/host@REALM";`: our Kerberos principal, whose
    /// key is in the keytab.
    pub my_principal: Option<String>,
    /// `peers_principal "kink/peer@REALM";`: the peer's principal, which
    /// we get service tickets for.
    pub peers_principal: Option<String>,
    /// `peers_ipaddr ADDR [port N];`: where the peer's kinkd listens (port
    /// 910 when absent).
    pub peers_ipaddr: Option<PeerAddr>,
    /// `max_retry_to_send`: how many times a KINK command is sent in all.
    pub max_retry_to_send: Option<u32>,
    /// `interval_to_send`: the first retransmission interval (doubled
    /// each time).
    pub interval_to_send: Option<Duration>,
    /// `user_to_user on;` (a racoon3 extension): get user-to-user tickets
    /// through KINK GETTGT, for a peer with no keytab entry.
    pub user_to_user: Option<bool>,
}

/// A lifetime: racoon2 writes `infinite` or `0` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Lifetime {
    /// No limit.
    Infinite,
    /// This many seconds (never 0).
    Seconds(u64),
}

impl Lifetime {
    /// The limit as a duration, `None` for infinite.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Self::Infinite => None,
            Self::Seconds(s) => Some(Duration::from_secs(s)),
        }
    }
}

/// `peers_ipaddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PeerAddr {
    /// A fixed peer address, optionally with `port N`.
    Addr {
        /// The peer's address.
        addr: IpAddr,
        /// Its IKE port, if not the default.
        port: Option<u16>,
    },
    /// `IP_RW` (or `IP_ANY`): a road warrior, address learned when it
    /// connects.
    RoadWarrior,
}

/// `my_id` / `peers_id`: `TYPE [file|tag] VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Identity {
    /// The identification type.
    pub kind: IdKind,
    /// The value as written (variables expanded). For `ipaddr` it has
    /// been checked to be an address; for `keyid` and `x509_subject` it is
    /// a file name.
    pub value: String,
}

/// The identification types racoon2 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum IdKind {
    /// `ipaddr`: an IPv4 or IPv6 address.
    Ipaddr,
    /// `fqdn`.
    Fqdn,
    /// `email` (racoon3 also accepts `rfc822`).
    Email,
    /// `keyid [file] FILE`: the key ID is the contents of FILE.
    Keyid,
    /// `keyid tag VALUE`: the key ID is VALUE itself.
    KeyidTag,
    /// `x509_subject FILE`: the subject of the certificate in FILE.
    X509Subject,
}

/// `selector NAME { ... }`: which packets a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selector {
    /// The selector index.
    pub name: String,
    /// Where the block starts.
    pub span: Span,
    /// `direction`.
    pub direction: Direction,
    /// `src ADDR[/LEN]`. racoon2's `IP_ANY` / `IP_RW` here becomes the
    /// zero-length prefix (`0.0.0.0/0` or `::/0`) of `dst`'s family.
    pub src: IpPrefix,
    /// `dst ADDR[/LEN]`, `IP_ANY` / `IP_RW` as for `src`. Always of the
    /// same family as `src`.
    pub dst: IpPrefix,
    /// `src ... port N`; `None` for any.
    pub src_port: Option<u16>,
    /// `dst ... port N`; `None` for any.
    pub dst_port: Option<u16>,
    /// `upper_layer_protocol`; `None` for `any` or absent.
    pub upper_layer_protocol: Option<u8>,
    /// `policy_index`.
    pub policy_index: String,
    /// `reqid`.
    pub reqid: Option<u32>,
}

/// An address prefix; `len` never exceeds the address width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct IpPrefix {
    /// The address as written (host bits are kept).
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl IpPrefix {
    /// `addr/len`, or `None` when `len` is too long for the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= Self::max_len(addr)).then_some(Self { addr, len })
    }

    /// The whole-address prefix (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            len: Self::max_len(addr),
        }
    }

    fn max_len(addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `policy NAME { ... }` with `default { policy { ... }; }` merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The policy index.
    pub name: String,
    /// Where the block starts.
    pub span: Span,
    /// `action`.
    pub action: PolicyAction,
    /// `remote_index`.
    pub remote_index: Option<String>,
    /// `ipsec_mode`.
    pub ipsec_mode: Option<IpsecMode>,
    /// `ipsec_index`: alternative proposals, in preference order.
    pub ipsec_index: Vec<String>,
    /// `ipsec_level`.
    pub ipsec_level: Option<IpsecLevel>,
    /// `peers_sa_ipaddr`. racoon2's `IP_RW` / `IP_ANY` ("learn it from the
    /// peer") is the unspecified address `0.0.0.0`: test with
    /// [`IpAddr::is_unspecified`].
    pub peers_sa_ipaddr: Option<IpAddr>,
    /// `my_sa_ipaddr`. The `MY_IP*` macros and `IP_ANY` ("any of mine")
    /// are the unspecified address, as for `peers_sa_ipaddr`.
    pub my_sa_ipaddr: Option<IpAddr>,
}

/// `ipsec NAME { ... }`: one SA bundle proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ipsec {
    /// The ipsec index.
    pub name: String,
    /// Where the block starts.
    pub span: Span,
    /// `ipsec_sa_lifetime_time`.
    pub ipsec_sa_lifetime_time: Option<Lifetime>,
    /// `ext_sequence` (RFC 4303 ESN).
    pub ext_sequence: Option<bool>,
    /// `sa_index`: one to three SAs, at most one per protocol.
    pub sa_index: Vec<String>,
}

/// `sa NAME { ... }` with `default { sa { ... }; }` merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sa {
    /// The sa index.
    pub name: String,
    /// Where the block starts.
    pub span: Span,
    /// `sa_protocol`.
    pub sa_protocol: SaProtocol,
    /// `esp_enc_alg`, non-empty for ESP.
    pub esp_enc_alg: Vec<EncAlgName>,
    /// `esp_auth_alg`; may be empty for ESP when every cipher is AEAD. It
    /// may also hold algorithms inherited from `default` next to AEAD
    /// ciphers: pair them only with the non-AEAD ones.
    pub esp_auth_alg: Vec<AuthAlgName>,
    /// `ah_auth_alg`, non-empty for AH.
    pub ah_auth_alg: Vec<AuthAlgName>,
}

/// `addresspool NAME { START - END; ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressPool {
    /// The pool index.
    pub name: String,
    /// Where the block starts.
    pub span: Span,
    /// The ranges, each within one address family and `start <= end`.
    pub ranges: Vec<AddressRange>,
}

/// An inclusive address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AddressRange {
    /// First address.
    pub start: IpAddr,
    /// Last address.
    pub end: IpAddr,
}

/// The unspecified address standing for racoon2's `IP_RW`, `IP_ANY` and
/// `MY_IP*` in `*_sa_ipaddr`.
pub(crate) const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The wildcard binds `MY_IP` / `IP_ANY` stand for.
pub(crate) fn all_addresses(port: Option<u16>) -> [ListenAddr; 2] {
    [
        ListenAddr {
            addr: UNSPECIFIED,
            port,
        },
        ListenAddr {
            addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port,
        },
    ]
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_length_is_bounded_by_family() {
        let v4: IpAddr = "10.0.0.0".parse().unwrap();
        let v6: IpAddr = "2001:db8::".parse().unwrap();
        assert!(IpPrefix::new(v4, 32).is_some());
        assert!(IpPrefix::new(v4, 33).is_none());
        assert!(IpPrefix::new(v6, 128).is_some());
        assert!(IpPrefix::new(v6, 129).is_none());
        assert_eq!(IpPrefix::host(v6).to_string(), "2001:db8::/128");
    }

    #[test]
    fn lifetime_duration() {
        assert_eq!(Lifetime::Infinite.duration(), None);
        assert_eq!(
            Lifetime::Seconds(90).duration(),
            Some(Duration::from_secs(90))
        );
    }
}
