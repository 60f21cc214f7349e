//! racoon2.conf model to the protocol core's [`PeerConfig`]s.
//!
//! Everything an operator can get wrong is reported here, at start-up,
//! naming the remote block and the directive, rather than at the first
//! negotiation.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, bail};
use libracoon::config::{
    AuthAlgName, AuthMethod, Config, DhGroupName, Direction, EncAlgName, IdKind,
    Identity as ConfId, IpsecMode, Kmp, Lifetime as ConfLifetime, PeerAddr, Policy, Remote,
    SaProtocol, Selector,
};
use libracoon::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use zeroize::Zeroizing;

use crate::ikev2::config::{
    ChildConfig, ChildLifetime, EspAlgorithms, Identity, IkeAlgorithms, Mode, PeerConfig,
    Retransmit,
};
use crate::ikev2::ts::TsRange;

/// What the daemon needs from the configuration file.
#[derive(Debug)]
pub struct DaemonConfig {
    /// Addresses to listen on (port 500 unless configured), plus 4500 each.
    pub listen: Vec<SocketAddr>,
    /// One entry per `remote` that accepts IKEv2.
    pub peers: Vec<PeerConfig>,
    /// Non-fatal notes for the log (ignored algorithms and the like).
    pub notes: Vec<String>,
}

/// Translates the parsed configuration.
///
/// # Errors
/// A message naming the remote block and what to fix.
pub fn translate(config: &Config) -> anyhow::Result<DaemonConfig> {
    let listen: Vec<SocketAddr> = config
        .interface
        .ike
        .iter()
        .map(|l| SocketAddr::new(l.addr, l.port.unwrap_or(500)))
        .collect();
    if listen.is_empty() {
        bail!("interface {{ ike {{ ADDRESS; }}; }}: list the addresses iked should listen on");
    }
    // NAT detection and the SAs' outer addresses need our real address.
    if let Some(any) = listen.iter().find(|l| l.ip().is_unspecified()) {
        bail!(
            "interface {{ ike {{ {}; }}; }}: list concrete addresses, not a wildcard",
            any.ip()
        );
    }
    let mut notes = Vec::new();
    let mut peers = Vec::new();
    for remote in &config.remotes {
        if !remote.acceptable_kmp.is_empty() && !remote.acceptable_kmp.contains(&Kmp::Ikev2) {
            continue;
        }
        let reqid = config.default_reqid(&remote.name).unwrap_or(u32::MAX);
        let peer = peer(config, remote, &listen, reqid, &mut notes)
            .with_context(|| format!("remote {}", remote.name))?;
        peers.push(peer);
    }
    if peers.is_empty() {
        bail!("no remote block accepts ikev2: nothing to negotiate");
    }
    // ACQUIRE finds the remote by its policy's reqid: they must be unique.
    for (i, p) in peers.iter().enumerate() {
        if let Some(q) = peers
            .iter()
            .skip(i + 1)
            .find(|q| q.child.reqid == p.child.reqid)
        {
            bail!(
                "remote {} and remote {} use the same reqid {}: give each selector its own",
                p.name,
                q.name,
                p.child.reqid
            );
        }
    }
    Ok(DaemonConfig {
        listen,
        peers,
        notes,
    })
}

fn peer(
    config: &Config,
    remote: &Remote,
    listen: &[SocketAddr],
    reqid: u32,
    notes: &mut Vec<String>,
) -> anyhow::Result<PeerConfig> {
    let v2 = &remote.ikev2;
    if v2.kmp_auth_method.iter().any(|m| *m != AuthMethod::Psk) {
        notes.push(format!("remote {}: only psk authentication is implemented; other kmp_auth_method entries are ignored", remote.name));
    }
    let psk_path = v2
        .pre_shared_key
        .as_ref()
        .context("pre_shared_key is required for psk authentication")?;
    let psk = libracoon::config::read_psk(psk_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let remote_addr = match v2.peers_ipaddr {
        Some(PeerAddr::Addr { addr, .. }) => Some(addr),
        _ => None,
    };
    let local_addr = remote_addr
        .and_then(|r| listen.iter().find(|l| l.is_ipv4() == r.is_ipv4()))
        .or_else(|| listen.first())
        .map(SocketAddr::ip)
        .context("no listen address")?;
    let local_id = match &v2.my_id {
        Some(id) => identity(id)?,
        None => Identity::addr(local_addr),
    };
    let remote_id = v2.peers_id.as_ref().map(identity).transpose()?;
    let ike = ike_algorithms(remote, notes)?;
    let mut child = child_config(config, remote, reqid, notes)?;
    // racoon2's need_pfs: rekey CHILD SAs with a new key exchange in the
    // preferred IKE group.
    if v2.need_pfs == Some(true) {
        child.pfs = ike.dh.first().copied();
    }
    let mut retransmit = Retransmit::default();
    if let Some(n) = v2.max_retry_to_send {
        retransmit.tries = n;
    }
    if let Some(d) = v2.interval_to_send.filter(|d| !d.is_zero()) {
        retransmit.base = d;
    }
    let nonce_len = v2.nonce_size.map_or(32, |n| n as usize);
    if !(16..=256).contains(&nonce_len) {
        bail!("nonce_size {nonce_len}: RFC 7296 §2.10 needs 16 to 256 bytes");
    }
    Ok(PeerConfig {
        name: remote.name.clone(),
        local_id,
        remote_id,
        remote_addr,
        psk: Zeroizing::new(psk),
        ike,
        child,
        ike_lifetime: v2.kmp_sa_lifetime_time.and_then(ConfLifetime::duration),
        dpd_delay: v2.dpd_delay.filter(|d| !d.is_zero()),
        retransmit,
        nonce_len,
        cookie_required: v2.cookie_required.unwrap_or(false),
        force_udp_encap: v2.force_udp_encap.unwrap_or(false),
    })
}

/// The peer address and IKE port to initiate to for a remote block.
pub fn initiation_target(config: &Config, name: &str) -> Option<SocketAddr> {
    match config.remote(name)?.ikev2.peers_ipaddr? {
        PeerAddr::Addr { addr, port } => Some(SocketAddr::new(addr, port.unwrap_or(500))),
        PeerAddr::RoadWarrior => None,
    }
}

fn identity(id: &ConfId) -> anyhow::Result<Identity> {
    use crate::ikev2::wire::IdType;
    Ok(match id.kind {
        IdKind::Ipaddr => Identity::addr(id.value.parse::<IpAddr>().context("ipaddr identity")?),
        IdKind::Fqdn => Identity::fqdn(&id.value),
        IdKind::Email => Identity {
            id_type: IdType::Rfc822Addr,
            data: id.value.as_bytes().to_vec(),
        },
        IdKind::KeyidTag => Identity {
            id_type: IdType::KeyId,
            data: id.value.as_bytes().to_vec(),
        },
        IdKind::Keyid => {
            let data =
                std::fs::read(&id.value).with_context(|| format!("keyid file {}", id.value))?;
            Identity {
                id_type: IdType::KeyId,
                data,
            }
        }
        IdKind::X509Subject => bail!(
            "x509_subject identities need certificate authentication, which is not implemented"
        ),
    })
}

fn ike_algorithms(remote: &Remote, notes: &mut Vec<String>) -> anyhow::Result<IkeAlgorithms> {
    let v2 = &remote.ikev2;
    let encr = or_default(
        supported(&v2.kmp_enc_alg, encr_alg, "kmp_enc_alg", remote, notes),
        default_encr,
    );
    let integ = or_default(
        supported(&v2.kmp_hash_alg, integ_alg, "kmp_hash_alg", remote, notes),
        default_integ,
    );
    let prf_src: Vec<AuthAlgName> = if v2.kmp_prf_alg.is_empty() {
        v2.kmp_hash_alg.clone()
    } else {
        v2.kmp_prf_alg.clone()
    };
    let prf = or_default(
        supported(&prf_src, prf_alg, "kmp_prf_alg", remote, notes),
        default_prf,
    );
    let dh = or_default(
        supported(&v2.kmp_dh_group, dh_group, "kmp_dh_group", remote, notes),
        default_dh,
    );
    let needs_integ = encr.iter().any(|e| !e.is_aead());
    for (empty, name) in [
        (encr.is_empty(), "kmp_enc_alg"),
        (dh.is_empty(), "kmp_dh_group"),
        (prf.is_empty(), "kmp_prf_alg"),
        (needs_integ && integ.is_empty(), "kmp_hash_alg"),
    ] {
        if empty {
            bail!("{name}: none of the listed algorithms is implemented");
        }
    }
    Ok(IkeAlgorithms {
        encr,
        prf,
        integ,
        dh,
    })
}

/// `default_reqid` ties the CHILD SA to its policy when the selector sets no `reqid`.
fn child_config(
    config: &Config,
    remote: &Remote,
    default_reqid: u32,
    notes: &mut Vec<String>,
) -> anyhow::Result<ChildConfig> {
    let (selector, policy) = child_selector(config, remote).context(
        "no selector and policy refer to this remote, so there is no CHILD SA to negotiate",
    )?;
    let ts = |p: &libracoon::config::IpPrefix, port: Option<u16>| -> anyhow::Result<TsRange> {
        let mut r = TsRange::from_prefix(p.addr, p.len).context("selector prefix")?;
        r.proto = selector.upper_layer_protocol.unwrap_or(0);
        if let Some(port) = port {
            r.start_port = port;
            r.end_port = port;
        }
        Ok(r)
    };
    let (src, dst) = (
        ts(&selector.src, selector.src_port)?,
        ts(&selector.dst, selector.dst_port)?,
    );
    let (local, remote_ts) = match selector.direction {
        Direction::Outbound => (src, dst),
        Direction::Inbound => (dst, src),
    };
    let mode = match policy.ipsec_mode {
        Some(IpsecMode::Transport) => Mode::Transport,
        _ => Mode::Tunnel,
    };
    let ipsecs: Vec<_> = policy
        .ipsec_index
        .iter()
        .filter_map(|i| config.ipsec(i))
        .collect();
    let lifetime = child_lifetime(remote, &ipsecs);
    let sa = ipsecs
        .iter()
        .flat_map(|i| i.sa_index.iter())
        .filter_map(|s| config.sa(s))
        .find(|s| s.sa_protocol == SaProtocol::Esp);
    let (encr_names, auth_names) = sa
        .map(|s| (s.esp_enc_alg.clone(), s.esp_auth_alg.clone()))
        .unwrap_or_default();
    let encr = or_default(
        supported(&encr_names, encr_alg, "esp_enc_alg", remote, notes),
        default_encr,
    );
    let integ = or_default(
        supported(&auth_names, integ_alg, "esp_auth_alg", remote, notes),
        default_integ,
    );
    if encr.is_empty() {
        bail!("esp_enc_alg: none of the listed algorithms is implemented");
    }
    if encr.iter().any(|e| !e.is_aead()) && integ.is_empty() {
        bail!("esp_auth_alg: a non-AEAD esp_enc_alg needs an implemented integrity algorithm");
    }
    Ok(ChildConfig {
        local_ts: vec![local],
        remote_ts: vec![remote_ts],
        mode,
        esp: EspAlgorithms { encr, integ },
        reqid: selector.reqid.unwrap_or(default_reqid),
        pfs: None,
        lifetime,
    })
}

/// The hard lifetime of the CHILD SAs: the policy's first `ipsec` block
/// that sets `ipsec_sa_lifetime_time`, else the racoon3 extension of the
/// same name in `ikev2 { }`. `ipsec_sa_lifetime_byte` is parsed but not
/// kept by the configuration model yet, so there is no byte limit.
fn child_lifetime(remote: &Remote, ipsecs: &[&libracoon::config::Ipsec]) -> ChildLifetime {
    let time = ipsecs
        .iter()
        .find_map(|i| i.ipsec_sa_lifetime_time)
        .or(remote.ikev2.ipsec_sa_lifetime_time)
        .and_then(ConfLifetime::duration);
    ChildLifetime { time, bytes: None }
}

/// Maps configured names to implemented algorithms, noting the rest.
fn supported<N: std::fmt::Display, A>(
    names: &[N],
    map: fn(&N) -> Option<A>,
    directive: &str,
    remote: &Remote,
    notes: &mut Vec<String>,
) -> Option<Vec<A>> {
    if names.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for n in names {
        match map(n) {
            Some(a) => out.push(a),
            None => notes.push(format!(
                "remote {}: {directive} {n} is not implemented by racoon3 and is skipped",
                remote.name
            )),
        }
    }
    Some(out)
}

fn or_default<A>(v: Option<Vec<A>>, default: fn() -> Vec<A>) -> Vec<A> {
    v.unwrap_or_else(default)
}

fn encr_alg(n: &EncAlgName) -> Option<EncrAlg> {
    Some(match n {
        EncAlgName::Aes128Cbc => EncrAlg::AesCbc128,
        EncAlgName::Aes256Cbc => EncrAlg::AesCbc256,
        EncAlgName::Aes128Gcm16 => EncrAlg::AesGcm16_128,
        EncAlgName::Aes256Gcm16 => EncrAlg::AesGcm16_256,
        EncAlgName::Chacha20Poly1305 => EncrAlg::ChaCha20Poly1305,
        _ => return None,
    })
}

fn integ_alg(n: &AuthAlgName) -> Option<IntegAlg> {
    Some(match n.hmac() {
        AuthAlgName::HmacSha1 => IntegAlg::HmacSha1_96,
        AuthAlgName::HmacSha2_256 => IntegAlg::HmacSha256_128,
        AuthAlgName::HmacSha2_384 => IntegAlg::HmacSha384_192,
        AuthAlgName::HmacSha2_512 => IntegAlg::HmacSha512_256,
        _ => return None,
    })
}

fn prf_alg(n: &AuthAlgName) -> Option<PrfAlg> {
    Some(match n.hmac() {
        AuthAlgName::HmacSha1 => PrfAlg::HmacSha1,
        AuthAlgName::HmacSha2_256 => PrfAlg::HmacSha256,
        AuthAlgName::HmacSha2_384 => PrfAlg::HmacSha384,
        AuthAlgName::HmacSha2_512 => PrfAlg::HmacSha512,
        _ => return None,
    })
}

fn dh_group(n: &DhGroupName) -> Option<DhGroup> {
    DhGroup::from_iana(n.number())
}

/// Defaults when a list is not configured: AEAD first, all strong.
fn default_encr() -> Vec<EncrAlg> {
    vec![
        EncrAlg::AesGcm16_256,
        EncrAlg::AesGcm16_128,
        EncrAlg::ChaCha20Poly1305,
        EncrAlg::AesCbc256,
        EncrAlg::AesCbc128,
    ]
}

fn default_integ() -> Vec<IntegAlg> {
    vec![
        IntegAlg::HmacSha256_128,
        IntegAlg::HmacSha512_256,
        IntegAlg::HmacSha384_192,
        IntegAlg::HmacSha1_96,
    ]
}

fn default_prf() -> Vec<PrfAlg> {
    vec![
        PrfAlg::HmacSha256,
        PrfAlg::HmacSha512,
        PrfAlg::HmacSha384,
        PrfAlg::HmacSha1,
    ]
}

fn default_dh() -> Vec<DhGroup> {
    vec![
        DhGroup::Curve25519,
        DhGroup::Ecp256,
        DhGroup::Modp2048,
        DhGroup::Ecp384,
    ]
}

/// The selector (and its policy) a remote's CHILD SA is negotiated from:
/// the first outbound selector whose policy names the remote, else the
/// remote's `selector_index`. Hook scripts report its name.
pub(crate) fn child_selector<'c>(
    config: &'c Config,
    remote: &Remote,
) -> Option<(&'c Selector, &'c Policy)> {
    config
        .selectors
        .iter()
        .filter(|s| s.direction == Direction::Outbound)
        .find_map(|s| {
            let p = config.policy(&s.policy_index)?;
            (p.remote_index.as_deref() == Some(&remote.name)).then_some((s, p))
        })
        .or_else(|| {
            let s = config.selector(remote.selector_index.as_deref()?)?;
            Some((s, config.policy(&s.policy_index)?))
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A one-peer racoon2.conf; `ikev2` and `ipsec` are extra directives
    /// for those blocks.
    fn translated(ikev2: &str, ipsec: &str) -> PeerConfig {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let psk = std::env::temp_dir().join(format!("iked-conf-{}-{n}.psk", std::process::id()));
        std::fs::write(&psk, "secret").expect("psk");
        let text = format!(
            "interface {{ ike {{ 192.0.2.1 port 500; }}; }};
remote peer {{ acceptable_kmp {{ ikev2; }}; ikev2 {{
  peers_ipaddr 192.0.2.2 port 500; kmp_dh_group {{ modp2048; 19; }};
  kmp_enc_alg {{ aes128_gcm16; }}; kmp_prf_alg {{ hmac_sha2_256; }}; kmp_auth_method {{ psk; }};
  pre_shared_key \"{}\"; {ikev2} }}; }};
selector s {{ direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24;
  upper_layer_protocol \"any\"; policy_index pol; }};
policy pol {{ action auto_ipsec; remote_index peer; ipsec_mode tunnel;
  ipsec_index {{ ie; }}; ipsec_level require; my_sa_ipaddr 192.0.2.1; peers_sa_ipaddr 192.0.2.2; }};
ipsec ie {{ {ipsec} sa_index esp; }};
sa esp {{ sa_protocol esp; esp_enc_alg {{ aes128_gcm16; }}; }};
",
            psk.display()
        );
        let loaded = libracoon::config::parse_str(&text, "t.conf", &|_| None).expect("parse");
        let out = translate(&loaded.config).expect("translate");
        let _ = std::fs::remove_file(&psk);
        out.peers.into_iter().next().expect("one peer")
    }

    #[test]
    fn lifetimes_and_pfs_come_from_the_configuration() {
        let p = translated(
            "kmp_sa_lifetime_time 1 hour; need_pfs on;",
            "ipsec_sa_lifetime_time 10 min;",
        );
        assert_eq!(p.ike_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(p.child.lifetime.time, Some(Duration::from_secs(600)));
        assert_eq!(p.child.lifetime.bytes, None);
        assert_eq!(
            p.child.pfs,
            Some(DhGroup::Modp2048),
            "the first kmp_dh_group"
        );
    }

    #[test]
    fn the_ikev2_block_sets_the_child_lifetime_when_the_ipsec_block_does_not() {
        let p = translated("ipsec_sa_lifetime_time 90 sec;", "");
        assert_eq!(p.child.lifetime.time, Some(Duration::from_secs(90)));
        assert_eq!(p.ike_lifetime, None);
        assert_eq!(p.child.pfs, None);
        let p = translated(
            "ipsec_sa_lifetime_time 90 sec;",
            "ipsec_sa_lifetime_time 20 sec;",
        );
        assert_eq!(p.child.lifetime.time, Some(Duration::from_secs(20)));
        let p = translated(
            "kmp_sa_lifetime_time infinite;",
            "ipsec_sa_lifetime_time infinite;",
        );
        assert_eq!((p.ike_lifetime, p.child.lifetime.time), (None, None));
    }
}
