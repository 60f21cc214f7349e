//! Kernel events: negotiation on demand (an ACQUIRE that spmd routed here
//! for a policy's request ID starts an IKE SA), expiries, and a backend
//! that lost its SAs. spmd owns the policies themselves.

use std::net::SocketAddr;

use pfkey::KernelEvent;

use crate::ikev2::endpoint::Endpoint;

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

#[cfg(test)]
mod tests {
    use super::*;

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
