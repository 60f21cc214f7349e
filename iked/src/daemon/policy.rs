//! Policies iked installs itself until spmd owns the SPD, and negotiation
//! on demand: an ACQUIRE for a policy's request ID starts an IKE SA.

use std::net::SocketAddr;

use pfkey::{Kernel, KernelEvent, PolicyAction, PolicySpec, SaDirection, Selector};

use crate::ikev2::config::PeerConfig;
use crate::ikev2::endpoint::Endpoint;
use crate::ikev2::ts::TsRange;

/// The outbound and inbound policies of one peer's CHILD SA.
pub fn policies_for(peer: &PeerConfig, local: SocketAddr) -> Vec<PolicySpec> {
    let child = &peer.child;
    let action = PolicyAction::Protect {
        reqid: child.reqid,
        mode: child.mode,
    };
    let tunnel = peer.remote_addr.map(|r| (local.ip(), r));
    let mut out = Vec::new();
    for l in &child.local_ts {
        for r in child
            .remote_ts
            .iter()
            .filter(|r| r.start.is_ipv4() == l.start.is_ipv4())
        {
            let (outbound, inbound) = (selector(l, r), selector(r, l));
            out.push(PolicySpec {
                selector: outbound,
                direction: SaDirection::Outbound,
                action,
                tunnel,
            });
            let reverse = tunnel.map(|(a, b)| (b, a));
            out.push(PolicySpec {
                selector: inbound,
                direction: SaDirection::Inbound,
                action,
                tunnel: reverse,
            });
        }
    }
    out
}

/// Installs every peer's policies; returns what was installed, for removal.
pub async fn install(kernel: &impl Kernel, peers: &[(PeerConfig, SocketAddr)]) -> Vec<PolicySpec> {
    let mut installed = Vec::new();
    for (peer, local) in peers {
        for p in policies_for(peer, *local) {
            match kernel.add_policy(p.clone()).await {
                Ok(()) => installed.push(p),
                Err(e) => tracing::error!("remote {}: cannot install policy: {e}", peer.name),
            }
        }
    }
    installed
}

/// Removes what [`install`] put in.
pub async fn remove(kernel: &impl Kernel, installed: Vec<PolicySpec>) {
    for p in installed {
        if let Err(e) = kernel.delete_policy(p.selector, p.direction).await {
            tracing::warn!("removing a policy failed: {e}");
        }
    }
}

/// Acts on a kernel event: ACQUIRE starts an IKE SA for the peer whose
/// policy fired, unless one is already up or being negotiated.
pub fn on_event(
    endpoint: &mut Endpoint,
    config: &libracoon::config::Config,
    listen: &[SocketAddr],
    ev: &KernelEvent,
) {
    match ev {
        KernelEvent::Acquire {
            reqid, src, dst, ..
        } => {
            let Some((name, _)) = endpoint.config_for_reqid(*reqid) else {
                tracing::warn!(
                    "ACQUIRE for {src} -> {dst} (reqid {reqid}) matches no remote block"
                );
                return;
            };
            // An IKE SA that is negotiating, or up with its CHILD SA, covers
            // this traffic already. One that is up without a CHILD SA (the
            // peer deleted it, or it failed) cannot carry it: replace it,
            // since we do not create CHILD SAs on an existing IKE SA yet.
            let mut stale = Vec::new();
            for sa in endpoint
                .sas()
                .filter(|sa| sa.config().name == name && sa.closed().is_none())
            {
                if !sa.is_established() || sa.child().is_some() {
                    return;
                }
                stale.push(sa.local_spi());
            }
            for spi in stale {
                endpoint.delete(std::time::Instant::now(), spi);
            }
            let Some(remote) = super::conf::initiation_target(config, &name) else {
                tracing::warn!(
                    "ACQUIRE for {src} -> {dst}: remote {name} has no peers_ipaddr to initiate to"
                );
                return;
            };
            tracing::info!("ACQUIRE for {src} -> {dst} (reqid {reqid})");
            if let Err(e) = super::start_negotiation(endpoint, listen, &name, remote) {
                tracing::error!("ACQUIRE for {src} -> {dst}: cannot initiate: {e}");
            }
        }
        KernelEvent::Expire { id, hard: true } => {
            // The kernel dropped the SA. We cannot rekey it ourselves yet, so
            // delete its IKE SA: the peer learns it is gone, and the next
            // packet raises an ACQUIRE that builds fresh SAs.
            let owner = endpoint
                .sas()
                .find(|sa| {
                    sa.child()
                        .is_some_and(|c| c.inbound == *id || c.outbound == *id)
                })
                .map(|sa| (sa.local_spi(), sa.config().name.clone()));
            match owner {
                Some((spi, name)) => {
                    tracing::warn!(
                        "SA {:08x} of remote {name} hit its hard lifetime; deleting its IKE SA (initiating rekeys is not implemented yet)",
                        id.spi
                    );
                    endpoint.delete(std::time::Instant::now(), spi);
                }
                None => tracing::warn!("SA {:08x} to {} hit its hard lifetime", id.spi, id.dst),
            }
        }
        KernelEvent::Migrate { old, new, .. } => {
            tracing::warn!(
                "MIGRATE of a policy from {} -> {} to {} -> {}: moving IKE SAs is not implemented; they stay on the old addresses",
                old.0,
                old.1,
                new.0,
                new.1
            );
        }
        KernelEvent::Reset => {
            // Every CHILD SA is gone with the datapath: tell the peers by
            // deleting the IKE SAs; the next packet renegotiates.
            let spis: Vec<u64> = endpoint
                .sas()
                .map(crate::ikev2::sa::IkeSa::local_spi)
                .collect();
            tracing::warn!(
                "the kernel backend lost its SAs (spmd restarted): deleting {} IKE SAs; traffic renegotiates on demand",
                spis.len()
            );
            for spi in spis {
                endpoint.delete(std::time::Instant::now(), spi);
            }
        }
        KernelEvent::Expire { id, hard: false } => {
            tracing::info!(
                "SA {:08x} to {} reached its soft lifetime; initiating rekeys is not implemented yet, the peer may rekey",
                id.spi,
                id.dst
            );
        }
    }
}

fn selector(src: &TsRange, dst: &TsRange) -> Selector {
    // Both sides of a configured selector carry the same protocol.
    Selector {
        src: (src.start, src.end),
        dst: (dst.start, dst.end),
        proto: src.proto.max(dst.proto),
        src_port: 0,
        dst_port: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_gets_one_outbound_and_one_inbound_protect_policy() {
        let peer = crate::tests::sim_config_a();
        let local: SocketAddr = "192.0.2.1:500".parse().expect("addr");
        let p = policies_for(&peer, local);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].direction, SaDirection::Outbound);
        assert_eq!(
            p[0].selector.src.0,
            "198.51.100.0".parse::<std::net::IpAddr>().expect("addr")
        );
        assert_eq!(p[1].selector.dst, p[0].selector.src);
        assert_eq!(
            p[0].tunnel,
            Some((local.ip(), "192.0.2.2".parse().expect("addr")))
        );
        assert!(matches!(
            p[0].action,
            PolicyAction::Protect { reqid: 1, .. }
        ));
    }

    #[test]
    fn a_hard_expiry_deletes_the_ike_sa_that_owned_the_child() {
        use crate::tests::sim::{Link, Pair, config_a, config_b};
        let mut p = Pair::new(config_a(), config_b(), Link::default(), 30);
        p.initiate();
        p.drive();
        let id = p.seen_a.installed[0].outbound.id;
        let expire = KernelEvent::Expire { id, hard: true };
        on_event(
            &mut p.a,
            &libracoon::config::Config::default(),
            &[],
            &expire,
        );
        p.drive();
        assert!(
            p.a.sas().next().is_none() && p.b.sas().next().is_none(),
            "both sides deleted the IKE SA"
        );
        assert_eq!(
            p.seen_b.deleted.len(),
            1,
            "and the peer removed its CHILD SA"
        );
    }
}
