//! racoon2.conf model to the protocol core's [`PeerConfig`]s.
//!
//! Every mistake an operator can make is reported here, at start-up,
//! naming the remote block and the directive, rather than at the first
//! ACQUIRE. The selector and request ID are derived exactly as spmd
//! derives the policy for the same remote (`spmd/src/plan.rs`), so the SAs
//! kinkd installs are the ones spmd's policy asks for.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use libracoon::config::{
    AuthAlgName, Config, Direction, EncAlgName, IpPrefix, IpsecMode as ConfMode, Kmp,
    Lifetime as ConfLifetime, PeerAddr, Policy, Remote, SaProtocol, Selector as ConfSelector,
};
use libracoon::ipsec::{EspAuth, EspEncr, IpsecMode, Lifetime, Selector};

use crate::proto::{EspProposal, PeerConfig};

/// The KINK port (RFC 4430 §4, IANA).
pub const KINK_PORT: u16 = 910;

/// First retransmission interval when `interval_to_send` is not set.
const RETRANSMIT_BASE: Duration = Duration::from_secs(1);
/// Sends of a command in all when `max_retry_to_send` is not set.
const RETRANSMIT_TRIES: u32 = 5;
/// The soft (rekey) limit, per mille of the hard one.
const SOFT_PERMILLE: u32 = 800;

/// What the daemon needs from the configuration file.
#[derive(Debug)]
pub struct DaemonConfig {
    /// Addresses to listen on (port 910 unless configured).
    pub listen: Vec<SocketAddr>,
    /// One entry per `remote` whose `acceptable_kmp` lists `kink`.
    pub peers: Vec<PeerConfig>,
    /// Our principal: the `my_principal` every KINK remote agrees on.
    pub principal: String,
    /// Non-fatal notes for the log.
    pub notes: Vec<String>,
}

/// Translates the parsed configuration.
///
/// # Errors
/// A message naming the block and what to fix.
pub fn translate(config: &Config) -> anyhow::Result<DaemonConfig> {
    let listen: Vec<SocketAddr> = config
        .interface
        .kink
        .iter()
        .map(|l| SocketAddr::new(l.addr, l.port.unwrap_or(KINK_PORT)))
        .collect();
    if listen.is_empty() {
        bail!("interface {{ kink {{ ADDRESS; }}; }}: list the addresses kinkd should listen on");
    }
    // The SAs' outer source address and the peer's view of us need a real
    // address; a wildcard socket would also answer from the wrong one.
    if let Some(any) = listen.iter().find(|l| l.ip().is_unspecified()) {
        bail!(
            "interface {{ kink {{ {}; }}; }}: list concrete addresses, not a wildcard",
            any.ip()
        );
    }
    let mut notes = Vec::new();
    let mut peers = Vec::new();
    let mut principal: Option<(String, String)> = None;
    for remote in &config.remotes {
        if !remote.acceptable_kmp.contains(&Kmp::Kink) {
            continue;
        }
        let in_remote = || format!("remote {}", remote.name);
        let mine = remote.kink.my_principal.clone().with_context(|| {
            format!(
                "remote {}: kink {{ my_principal \"kink/HOST@REALM\"; }} is required (our principal, whose key is in the keytab)",
                remote.name
            )
        })?;
        match &principal {
            None => principal = Some((mine, remote.name.clone())),
            Some((p, first)) if *p != mine => bail!(
                "remote {}: my_principal \"{mine}\" differs from \"{p}\" of remote {first}: \
                 kinkd has one principal, so every KINK remote must name the same",
                remote.name
            ),
            Some(_) => {}
        }
        let peer = peer(config, remote, &listen, &mut notes).with_context(in_remote)?;
        peers.push(peer);
    }
    let Some((principal, _)) = principal else {
        bail!("no remote block lists kink in acceptable_kmp: nothing for kinkd to negotiate");
    };
    // ACQUIRE finds the remote by its policy's reqid, an AP-REQ by its
    // client principal: both must be unique.
    for (i, p) in peers.iter().enumerate() {
        if let Some(q) = peers
            .iter()
            .skip(i + 1)
            .find(|q| q.principal == p.principal)
        {
            bail!(
                "remote {} and remote {} name the same peers_principal \"{}\": kinkd tells \
                 peers apart by their principal, so give each remote its own",
                p.name,
                q.name,
                p.principal
            );
        }
        if let Some(q) = peers.iter().skip(i + 1).find(|q| q.reqid == p.reqid) {
            bail!(
                "remote {} and remote {} use the same reqid {}: give each selector its own",
                p.name,
                q.name,
                p.reqid
            );
        }
    }
    Ok(DaemonConfig {
        listen,
        peers,
        principal,
        notes,
    })
}

fn peer(
    config: &Config,
    remote: &Remote,
    listen: &[SocketAddr],
    notes: &mut Vec<String>,
) -> anyhow::Result<PeerConfig> {
    let kink = &remote.kink;
    let principal = kink.peers_principal.clone().context(
        "kink { peers_principal \"kink/PEER@REALM\"; } is required (the principal we get tickets for)",
    )?;
    let (conf_selector, policy) = child_selector(config, remote).context(
        "no selector and policy refer to this remote (policy remote_index, or the remote's selector_index), so there are no SAs to negotiate",
    )?;
    let mode = match policy.ipsec_mode {
        Some(ConfMode::Transport) => IpsecMode::Transport,
        _ => IpsecMode::Tunnel,
    };
    let address = peer_address(remote, policy, mode)?;
    let local = local_address(policy, address, listen)?;
    let reqid = match conf_selector.reqid {
        Some(r) => r,
        None => config
            .default_reqid(&remote.name)
            .context("too many remote blocks for a default reqid")?,
    };
    let (proposals, lifetime) = ipsec(config, remote, policy, notes)?;
    let mut retransmit_tries = RETRANSMIT_TRIES;
    if let Some(n) = kink.max_retry_to_send {
        if n == 0 {
            bail!("max_retry_to_send 0: a KINK command must be sent at least once");
        }
        retransmit_tries = n;
    }
    let retransmit_base = kink
        .interval_to_send
        .filter(|d| !d.is_zero())
        .unwrap_or(RETRANSMIT_BASE);
    Ok(PeerConfig {
        name: remote.name.clone(),
        address,
        local,
        principal,
        reqid,
        mode,
        selector: selector(conf_selector),
        proposals,
        lifetime,
        user_to_user: kink.user_to_user.unwrap_or(false),
        retransmit_base,
        retransmit_tries,
    })
}

/// The `kink` block's `peers_ipaddr`, else (tunnel mode) the policy's
/// `peers_sa_ipaddr`, on port 910 unless the block says otherwise.
fn peer_address(remote: &Remote, policy: &Policy, mode: IpsecMode) -> anyhow::Result<SocketAddr> {
    match remote.kink.peers_ipaddr {
        Some(PeerAddr::Addr { addr, port }) => {
            return Ok(SocketAddr::new(addr, port.unwrap_or(KINK_PORT)));
        }
        Some(PeerAddr::RoadWarrior) => bail!(
            "kink {{ peers_ipaddr IP_RW; }}: kinkd needs the peer's address (KINK has no road warriors)"
        ),
        None => {}
    }
    match (mode, policy.peers_sa_ipaddr) {
        (IpsecMode::Tunnel, Some(a)) if !a.is_unspecified() => Ok(SocketAddr::new(a, KINK_PORT)),
        _ => bail!(
            "no peer address: set kink {{ peers_ipaddr ADDRESS; }} (or, in tunnel mode, policy {}'s peers_sa_ipaddr)",
            policy.name
        ),
    }
}

/// The SAs' outer source: the policy's `my_sa_ipaddr`, else our KINK
/// listen address of the peer's family.
fn local_address(
    policy: &Policy,
    peer: SocketAddr,
    listen: &[SocketAddr],
) -> anyhow::Result<IpAddr> {
    if let Some(a) = policy.my_sa_ipaddr.filter(|a| !a.is_unspecified()) {
        return Ok(a);
    }
    listen
        .iter()
        .map(SocketAddr::ip)
        .find(|l| l.is_ipv4() == peer.is_ipv4())
        .with_context(|| {
            format!(
                "no interface {{ kink {{ ...; }}; }} address of the family of the peer {}",
                peer.ip()
            )
        })
}

/// The ESP proposals and the SA lifetime from the policy's `ipsec` and
/// `sa` blocks.
fn ipsec(
    config: &Config,
    remote: &Remote,
    policy: &Policy,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Vec<EspProposal>, Lifetime)> {
    let mut ipsecs = Vec::new();
    for name in &policy.ipsec_index {
        ipsecs.push(
            config
                .ipsec(name)
                .with_context(|| format!("policy {}: no ipsec block {name}", policy.name))?,
        );
    }
    let mut esp = None;
    for i in &ipsecs {
        for s in &i.sa_index {
            let sa = config
                .sa(s)
                .with_context(|| format!("ipsec {}: no sa block {s}", i.name))?;
            match sa.sa_protocol {
                SaProtocol::Esp => esp = esp.or(Some(sa)),
                SaProtocol::Ah => bail!(
                    "ipsec {} uses AH (sa {s}): kinkd negotiates ESP only; use an ESP sa block",
                    i.name
                ),
                SaProtocol::Ipcomp => notes.push(format!(
                    "remote {}: sa {s} is IPComp, which kinkd does not negotiate; ignored",
                    remote.name
                )),
            }
        }
    }
    let sa = esp.with_context(|| {
        format!(
            "policy {}: its ipsec blocks name no ESP sa block (sa_protocol esp)",
            policy.name
        )
    })?;
    let mut encrs = Vec::new();
    for n in &sa.esp_enc_alg {
        match encr(*n) {
            Some(e) => encrs.push((e, n.is_aead())),
            None => notes.push(format!(
                "remote {}: esp_enc_alg {n} is not implemented by racoon3 and is skipped",
                remote.name
            )),
        }
    }
    let mut auths = Vec::new();
    for n in &sa.esp_auth_alg {
        match auth(*n) {
            Some(a) => auths.push(a),
            None => notes.push(format!(
                "remote {}: esp_auth_alg {n} is not implemented by racoon3 and is skipped",
                remote.name
            )),
        }
    }
    if encrs.is_empty() {
        bail!(
            "sa {}: none of its esp_enc_alg is implemented (aes128_cbc, aes256_cbc, aes128_gcm16, aes256_gcm16, chacha20_poly1305)",
            sa.name
        );
    }
    let mut proposals = Vec::new();
    for (encr, aead) in encrs {
        if aead {
            proposals.push(EspProposal { encr, auth: None });
        } else {
            proposals.extend(auths.iter().map(|a| EspProposal {
                encr,
                auth: Some(*a),
            }));
        }
    }
    if proposals.is_empty() {
        bail!(
            "sa {}: a non-AEAD esp_enc_alg needs an implemented esp_auth_alg (hmac_sha1, hmac_sha2_256, hmac_sha2_384, hmac_sha2_512)",
            sa.name
        );
    }
    let hard = ipsecs
        .iter()
        .find_map(|i| i.ipsec_sa_lifetime_time)
        .and_then(ConfLifetime::duration);
    let lifetime = Lifetime {
        soft_time: hard.map(|h| h * SOFT_PERMILLE / 1000),
        hard_time: hard,
        ..Lifetime::default()
    };
    Ok((proposals, lifetime))
}

fn encr(n: EncAlgName) -> Option<EspEncr> {
    let (id, key_bits) = match n {
        EncAlgName::Aes128Cbc => (12, 128),
        EncAlgName::Aes256Cbc => (12, 256),
        EncAlgName::Aes128Gcm16 => (20, 128),
        EncAlgName::Aes256Gcm16 => (20, 256),
        EncAlgName::Chacha20Poly1305 => (28, 256),
        _ => return None,
    };
    Some(EspEncr { id, key_bits })
}

fn auth(n: AuthAlgName) -> Option<EspAuth> {
    let id = match n.hmac() {
        AuthAlgName::HmacSha1 => 2,
        AuthAlgName::HmacSha2_256 => 12,
        AuthAlgName::HmacSha2_384 => 13,
        AuthAlgName::HmacSha2_512 => 14,
        _ => return None,
    };
    Some(EspAuth { id })
}

/// The selector (and its policy) a remote's SAs are negotiated from: the
/// first outbound selector whose policy names the remote, else the
/// remote's `selector_index` (as iked does).
fn child_selector<'c>(
    config: &'c Config,
    remote: &Remote,
) -> Option<(&'c ConfSelector, &'c Policy)> {
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

/// The selector from our side (`src` is ours), as spmd installs the
/// outbound policy: an inbound selector block is turned around.
fn selector(s: &ConfSelector) -> Selector {
    let (src, dst, src_port, dst_port) = match s.direction {
        Direction::Outbound => (s.src, s.dst, s.src_port, s.dst_port),
        Direction::Inbound => (s.dst, s.src, s.dst_port, s.src_port),
    };
    Selector {
        src: range(src),
        dst: range(dst),
        proto: s.upper_layer_protocol.unwrap_or(0),
        src_port: src_port.unwrap_or(0),
        dst_port: dst_port.unwrap_or(0),
    }
}

/// A prefix as the inclusive range the kernel types use (as spmd's plan).
fn range(p: IpPrefix) -> (IpAddr, IpAddr) {
    match p.addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX.checked_shl(32 - u32::from(p.len)).unwrap_or(0);
            (
                IpAddr::from((bits & mask).to_be_bytes()),
                IpAddr::from((bits | !mask).to_be_bytes()),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX.checked_shl(128 - u32::from(p.len)).unwrap_or(0);
            (
                IpAddr::from((bits & mask).to_be_bytes()),
                IpAddr::from((bits | !mask).to_be_bytes()),
            )
        }
    }
}

#[cfg(test)]
mod tests;
