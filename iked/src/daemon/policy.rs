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
            // peer deleted it, or a hard expiry removed it) gets a new one.
            let now = std::time::Instant::now();
            let mut childless = None;
            for sa in endpoint
                .sas()
                .filter(|sa| sa.config().name == name && sa.closed().is_none())
            {
                if !sa.is_established() || sa.child().is_some() {
                    return;
                }
                childless = Some(sa.local_spi());
            }
            if let Some(spi) = childless {
                tracing::info!(
                    "ACQUIRE for {src} -> {dst} (reqid {reqid}): creating a CHILD SA on IKE SA {name}[{spi:016x}]"
                );
                match endpoint.create_child(now, spi) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(
                            "cannot create a CHILD SA on {name}[{spi:016x}] ({e}); replacing the IKE SA"
                        );
                        endpoint.delete(now, spi);
                    }
                }
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
            // The kernel dropped the SA. A replaced one is just forgotten;
            // the current one is deleted with the peer, and the next packet
            // creates a new CHILD SA on the same IKE SA.
            match endpoint.on_hard_expire(std::time::Instant::now(), *id) {
                Some(spi) => tracing::warn!(
                    "SA {:08x} to {} hit its hard lifetime (IKE SA {spi:016x})",
                    id.spi,
                    id.dst
                ),
                None => tracing::info!("SA {:08x} to {} hit its hard lifetime", id.spi, id.dst),
            }
        }
        KernelEvent::Expire { id, hard: false } => {
            match endpoint.on_soft_expire(std::time::Instant::now(), *id) {
                Some(spi) => tracing::info!(
                    "SA {:08x} to {} reached its soft lifetime: rekeying its CHILD SA (IKE SA {spi:016x})",
                    id.spi,
                    id.dst
                ),
                None => tracing::debug!("soft expiry of SA {:08x}, which no IKE SA owns", id.spi),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_expiry_deletes_the_child_sa_and_an_acquire_creates_a_new_one() {
        use crate::tests::sim::{Link, Pair, config_a, config_b};
        let mut p = Pair::new(config_a(), config_b(), Link::default(), 30);
        p.initiate();
        p.drive();
        let first = p.seen_a.installed[0].outbound.id;
        let config = libracoon::config::Config::default();
        on_event(
            &mut p.a,
            &config,
            &[],
            &KernelEvent::Expire {
                id: first,
                hard: true,
            },
        );
        p.drive();
        assert_eq!(p.seen_b.deleted.len(), 1, "the peer removed its CHILD SA");
        assert!(
            p.a.sas()
                .all(|sa| sa.is_established() && sa.child().is_none()),
            "the IKE SA stays, without a CHILD SA"
        );
        let reqid = p.seen_a.installed[0].outbound.reqid;
        let acquire = KernelEvent::Acquire {
            reqid,
            src: "198.51.100.1".parse().unwrap(),
            dst: "203.0.113.1".parse().unwrap(),
            proto: 1,
        };
        on_event(&mut p.a, &config, &[], &acquire);
        p.drive();
        assert_eq!(
            p.seen_a.installed.len(),
            2,
            "a new CHILD SA on the same IKE SA"
        );
        assert_ne!(p.seen_a.installed[1].outbound.id, first);
        assert_eq!(p.a.sas().count(), 1);
    }

    #[test]
    fn a_soft_expiry_rekeys_the_child_sa() {
        use crate::tests::sim::{Link, Pair, config_a, config_b};
        let mut p = Pair::new(config_a(), config_b(), Link::default(), 31);
        p.initiate();
        p.drive();
        let old = p.seen_a.installed[0].outbound.id;
        let config = libracoon::config::Config::default();
        on_event(
            &mut p.a,
            &config,
            &[],
            &KernelEvent::Expire {
                id: old,
                hard: false,
            },
        );
        p.drive();
        assert_eq!(p.seen_a.installed.len(), 2, "new CHILD SA installed");
        assert_eq!(p.seen_b.installed.len(), 2);
        let child =
            p.a.sas()
                .find_map(crate::ikev2::sa::IkeSa::child)
                .expect("a child");
        assert_ne!(child.outbound, old, "the old one was replaced");
    }
}
