//! Policies iked asks spmd for when a peer's address is learned at
//! negotiation (racoon2's `peers_sa_ipaddr IP_RW`, the road warrior): spmd
//! cannot install them from the configuration, so iked adds them, from the
//! negotiated CHILD SA, when it installs the SAs, and removes them with the
//! SAs (racoon2's POLICY ADD / POLICY DELETE to spmd).

use std::collections::{BTreeSet, HashMap};

use libracoon::config::Config;
use pfkey::{IpsecMode, Kernel, PolicyAction, PolicySpec, SaDirection, SaId, SaSpec};

/// The remotes served dynamically, and what iked installed for each CHILD
/// SA (by its outbound SA).
#[derive(Debug, Default)]
pub(crate) struct DynamicPolicies {
    remotes: BTreeSet<String>,
    installed: HashMap<SaId, Vec<PolicySpec>>,
}

impl DynamicPolicies {
    /// The remotes whose `policy` says `peers_sa_ipaddr IP_RW`.
    pub(crate) fn from_config(config: &Config) -> Self {
        let remotes = config
            .policies
            .iter()
            .filter(|p| p.peers_sa_ipaddr.is_some_and(|a| a.is_unspecified()))
            .filter_map(|p| p.remote_index.clone())
            .collect();
        Self {
            remotes,
            installed: HashMap::new(),
        }
    }

    /// Whether `remote`'s policies are iked's to add.
    pub(crate) fn is_dynamic(&self, remote: &str) -> bool {
        self.remotes.contains(remote)
    }

    /// After a CHILD SA of `remote` was installed: its policies, if the
    /// remote is dynamic. A refusal is logged; the SAs still work (their
    /// own selectors route and check the traffic).
    pub(crate) async fn child_installed(
        &mut self,
        remote: &str,
        inbound: &SaSpec,
        outbound: &SaSpec,
        kernel: &impl Kernel,
    ) {
        if !self.remotes.contains(remote) {
            return;
        }
        let mut added = Vec::new();
        for p in policies(inbound, outbound) {
            match kernel.add_policy(p.clone()).await {
                Ok(()) => added.push(p),
                Err(e) => tracing::warn!("remote {remote}: spmd refused a dynamic policy: {e}"),
            }
        }
        tracing::info!(
            "remote {remote}: {} dynamic policies for {} installed",
            added.len(),
            outbound.id.dst
        );
        self.installed.insert(outbound.id, added);
    }

    /// After the CHILD SA with outbound SA `outbound` was deleted: its
    /// policies go, except those a live CHILD SA still uses (a rekey
    /// installs the new SA, with the same selectors, before the old one
    /// is deleted).
    pub(crate) async fn child_deleted(&mut self, outbound: SaId, kernel: &impl Kernel) {
        let Some(list) = self.installed.remove(&outbound) else {
            return;
        };
        for p in list {
            let still_used = self
                .installed
                .values()
                .flatten()
                .any(|q| q.selector == p.selector && q.direction == p.direction);
            if still_used {
                continue;
            }
            if let Err(e) = kernel.delete_policy(p.selector, p.direction).await {
                tracing::warn!("removing a dynamic policy failed: {e}");
            }
        }
    }

    /// Installs every live CHILD SA's policies again: a new spmd (after a
    /// restart) knows only the configured ones.
    pub(crate) async fn reinstall(&self, kernel: &impl Kernel) {
        let all: Vec<&PolicySpec> = self.installed.values().flatten().collect();
        if all.is_empty() {
            return;
        }
        for p in &all {
            if let Err(e) = kernel.add_policy((*p).clone()).await {
                tracing::warn!("re-adding a dynamic policy to the new spmd failed: {e}");
            }
        }
        tracing::info!("re-added {} dynamic policies to the new spmd", all.len());
    }
}

/// The outbound and inbound policies a CHILD SA's own SAs describe.
fn policies(inbound: &SaSpec, outbound: &SaSpec) -> Vec<PolicySpec> {
    let mut out = Vec::new();
    for (sa, direction) in [
        (outbound, SaDirection::Outbound),
        (inbound, SaDirection::Inbound),
    ] {
        // PolicySpec's tunnel is (local, remote) whatever the direction.
        let ends = match direction {
            SaDirection::Outbound => (sa.src, sa.id.dst),
            SaDirection::Inbound => (sa.id.dst, sa.src),
        };
        let tunnel = (sa.mode == IpsecMode::Tunnel).then_some(ends);
        for selector in &sa.selectors {
            out.push(PolicySpec {
                selector: selector.clone(),
                direction,
                action: PolicyAction::Protect {
                    reqid: sa.reqid,
                    mode: sa.mode,
                },
                tunnel,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pfkey::memory::MemoryKernel;

    fn spec(direction: SaDirection, src: &str, dst: &str, sel: (&str, &str)) -> SaSpec {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        SaSpec {
            id: SaId {
                dst: ip(dst),
                spi: if direction == SaDirection::Inbound {
                    1
                } else {
                    2
                },
            },
            src: ip(src),
            direction,
            mode: IpsecMode::Tunnel,
            encr: pfkey::EspEncr {
                id: 20,
                key_bits: 128,
            },
            encr_key: zeroize::Zeroizing::new(vec![0; 20]),
            auth: None,
            auth_key: zeroize::Zeroizing::new(Vec::new()),
            encap: None,
            selectors: vec![pfkey::Selector::ranges(
                (ip(sel.0), ip(sel.0)),
                (ip(sel.1), ip(sel.1)),
            )],
            reqid: 3,
            esn: false,
            replay_window: 0,
            lifetime: pfkey::Lifetime::default(),
        }
    }

    #[tokio::test]
    async fn a_road_warriors_child_sa_brings_its_policies_and_takes_them_away() {
        let conf = r#"
interface { ike { 192.0.2.1; }; };
remote peer {
  acceptable_kmp { ikev2; };
  ikev2 {
    pre_shared_key "/dev/null";
    kmp_enc_alg { aes128_gcm16; }; kmp_prf_alg { hmac_sha2_256; };
    kmp_dh_group { curve25519; }; kmp_auth_method { psk; };
  };
};
selector s { direction outbound; src 203.0.113.0/24; dst 0.0.0.0/0; policy_index rw; };
policy rw { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { e; };
            my_sa_ipaddr 192.0.2.1; peers_sa_ipaddr IP_RW; };
ipsec e { sa_index esp; };
sa esp { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };
"#;
        let loaded = libracoon::config::parse_str(conf, "t.conf", &|_| None).unwrap();
        let mut dynamic = DynamicPolicies::from_config(&loaded.config);
        assert_eq!(dynamic.remotes.iter().collect::<Vec<_>>(), ["peer"]);
        let kernel = MemoryKernel::new();
        let inbound = spec(
            SaDirection::Inbound,
            "192.0.2.9",
            "192.0.2.1",
            ("198.51.100.9", "203.0.113.1"),
        );
        let outbound = spec(
            SaDirection::Outbound,
            "192.0.2.1",
            "192.0.2.9",
            ("203.0.113.1", "198.51.100.9"),
        );
        dynamic
            .child_installed("other", &inbound, &outbound, &kernel)
            .await;
        assert!(
            kernel.list_policies().await.is_empty(),
            "static remotes get none"
        );
        dynamic
            .child_installed("peer", &inbound, &outbound, &kernel)
            .await;
        let installed = kernel.list_policies().await;
        assert_eq!(installed.len(), 2);
        assert_eq!(installed[0].direction, SaDirection::Outbound);
        assert_eq!(
            installed[0].tunnel,
            Some(("192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap()))
        );
        assert_eq!(
            installed[1].tunnel, installed[0].tunnel,
            "(local, remote) both ways"
        );
        // A rekey: the new CHILD SA comes with the same selectors, then the
        // old one goes; the policies stay for the new one.
        let mut new_out = outbound.clone();
        new_out.id.spi = 20;
        dynamic
            .child_installed("peer", &inbound, &new_out, &kernel)
            .await;
        dynamic.child_deleted(outbound.id, &kernel).await;
        assert_eq!(
            kernel.list_policies().await.len(),
            2,
            "still used by the new SA"
        );
        dynamic.child_deleted(new_out.id, &kernel).await;
        assert!(kernel.list_policies().await.is_empty());
    }
}
