//! The backend a key-exchange daemon uses when the kernel carries ESP
//! (XFRM, PF_KEY): SAs go straight into the kernel from the daemon, while
//! policies and the ACQUIREs that spmd routes stay spmd's business.
//!
//! Why split: SA installation is on the negotiation's critical path (a
//! responder installs before it answers) and needs no second process, but
//! the SPD has one owner, spmd, which also decides whether iked or kinkd
//! negotiates for a policy (the remote's `acceptable_kmp`). The kernel
//! multicasts its events to every listener, so this backend takes only
//! expiries from the kernel (for SAs this daemon installed) and only
//! ACQUIREs and MIGRATEs from spmd. spmd's restart does not touch kernel SAs,
//! so spmd's `Reset` is dropped here.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::remote::SpmdKernel;
use crate::{
    Kernel, KernelError, KernelEvent, PolicySpec, SaDirection, SaId, SaInfo, SaSpec, Selector,
};

/// SAs in kernel backend `K`, policies and ACQUIREs through spmd.
#[derive(Debug)]
pub struct SplitKernel<K> {
    sas: Arc<K>,
    spmd: Arc<SpmdKernel>,
    mine: Arc<Mutex<HashSet<SaId>>>,
    events: Mutex<Option<mpsc::UnboundedReceiver<KernelEvent>>>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl<K: Kernel + 'static> SplitKernel<K> {
    /// Joins a kernel backend and a connection to spmd, and merges their
    /// event streams as the module docs say.
    pub fn new(sas: Arc<K>, spmd: Arc<SpmdKernel>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let mine: Arc<Mutex<HashSet<SaId>>> = Arc::default();
        let from_kernel = sas.take_events();
        let from_spmd = spmd.take_events();
        let kernel_task = {
            let (tx, mine) = (tx.clone(), mine.clone());
            tokio::spawn(async move {
                let Some(mut rx) = from_kernel else { return };
                while let Some(ev) = rx.recv().await {
                    if let KernelEvent::Expire { id, hard } = &ev {
                        let ours = {
                            let mut set = mine.lock().unwrap_or_else(PoisonError::into_inner);
                            if *hard {
                                set.remove(id)
                            } else {
                                set.contains(id)
                            }
                        };
                        if ours && tx.send(ev).is_err() {
                            return;
                        }
                    }
                }
            })
        };
        let spmd_task = tokio::spawn(async move {
            let Some(mut rx) = from_spmd else { return };
            while let Some(ev) = rx.recv().await {
                let wanted = matches!(
                    ev,
                    KernelEvent::Acquire { .. } | KernelEvent::Migrate { .. }
                );
                if wanted && tx.send(ev).is_err() {
                    return;
                }
            }
        });
        Self {
            sas,
            spmd,
            mine,
            events: Mutex::new(Some(rx)),
            tasks: [kernel_task, spmd_task],
        }
    }

    fn mine(&self) -> std::sync::MutexGuard<'_, HashSet<SaId>> {
        self.mine.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K> Drop for SplitKernel<K> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl<K: Kernel + 'static> Kernel for SplitKernel<K> {
    fn name(&self) -> &'static str {
        self.sas.name()
    }

    fn carries_traffic(&self) -> bool {
        self.sas.carries_traffic()
    }

    async fn alloc_spi(&self, src: IpAddr, dst: IpAddr, reqid: u32) -> Result<u32, KernelError> {
        self.sas.alloc_spi(src, dst, reqid).await
    }

    async fn add_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        let id = sa.id;
        self.sas.add_sa(sa).await?;
        self.mine().insert(id);
        Ok(())
    }

    async fn update_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        self.sas.update_sa(sa).await
    }

    async fn delete_sa(&self, id: SaId) -> Result<(), KernelError> {
        self.mine().remove(&id);
        self.sas.delete_sa(id).await
    }

    async fn get_sa(&self, id: SaId) -> Result<SaInfo, KernelError> {
        self.sas.get_sa(id).await
    }

    async fn list_sas(&self) -> Vec<SaId> {
        self.sas.list_sas().await
    }

    /// Only the SAs this daemon installed: other daemons' SAs in the same
    /// kernel are not ours to flush.
    async fn flush_sas(&self) -> Result<(), KernelError> {
        let ids: Vec<SaId> = self.mine().iter().copied().collect();
        for id in ids {
            match self.delete_sa(id).await {
                Ok(()) | Err(KernelError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn add_policy(&self, policy: PolicySpec) -> Result<(), KernelError> {
        self.spmd.add_policy(policy).await
    }

    async fn delete_policy(
        &self,
        selector: Selector,
        direction: SaDirection,
    ) -> Result<(), KernelError> {
        self.spmd.delete_policy(selector, direction).await
    }

    async fn list_policies(&self) -> Vec<PolicySpec> {
        self.spmd.list_policies().await
    }

    async fn flush_policies(&self) -> Result<(), KernelError> {
        self.spmd.flush_policies().await
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<KernelEvent>> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use libracoon::ctl::io::ControlServer;
    use libracoon::ctl::kernel::{KernelNotice, KernelOp, KernelReply};
    use libracoon::ctl::proto::{EventRecord, Request, ResponseBody, ResponseResult};

    use super::*;
    use crate::memory::MemoryKernel;

    fn notice(to: &str, event: KernelEvent) -> EventRecord {
        let mut r = EventRecord::new(SystemTime::now(), "test", None, "test");
        r.kernel = Some(KernelNotice {
            to: to.into(),
            event,
        });
        r
    }

    #[tokio::test]
    async fn sas_go_to_the_kernel_policies_to_spmd_and_only_acquires_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("spmd.sock");
        let (server, mut requests) = ControlServer::bind(&socket, "spmd").await.unwrap();
        let policies = Arc::new(Mutex::new(Vec::new()));
        let seen = policies.clone();
        tokio::spawn(async move {
            while let Some(req) = requests.recv().await {
                let reply = match req.request {
                    Request::Kernel { op, .. } => match *op {
                        KernelOp::Attach => KernelReply::Attached {
                            backend: "memory".into(),
                            carries_traffic: false,
                        },
                        KernelOp::AddPolicy { policy } => {
                            seen.lock().unwrap().push(policy);
                            KernelReply::Done
                        }
                        _ => KernelReply::Done,
                    },
                    _ => KernelReply::Done,
                };
                let _ = req
                    .reply
                    .send(ResponseResult::Ok(ResponseBody::Kernel(reply)));
            }
        });
        let spmd = SpmdKernel::connect(&socket, "iked").await.unwrap();
        let kernel = Arc::new(MemoryKernel::new());
        let split = SplitKernel::new(kernel.clone(), spmd);
        let mut events = split.take_events().unwrap();

        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let policy = PolicySpec {
            selector: Selector::ranges(
                (ip("192.0.2.1"), ip("192.0.2.1")),
                (ip("192.0.2.2"), ip("192.0.2.2")),
            ),
            direction: SaDirection::Outbound,
            action: crate::PolicyAction::Discard,
            tunnel: None,
        };
        split.add_policy(policy.clone()).await.unwrap();
        assert_eq!(*policies.lock().unwrap(), vec![policy]);
        assert!(
            kernel.list_policies().await.is_empty(),
            "not in the kernel backend"
        );

        let acquire = KernelEvent::Acquire {
            reqid: 1,
            src: ip("198.51.100.1"),
            dst: ip("203.0.113.1"),
            proto: 1,
        };
        server.publish(notice("iked", KernelEvent::Reset));
        server.publish(notice("kinkd", acquire.clone()));
        server.publish(notice("iked", acquire.clone()));
        let got = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
        assert_eq!(
            got.unwrap(),
            Some(acquire),
            "Reset and kinkd's ACQUIRE are not ours"
        );
    }
}
