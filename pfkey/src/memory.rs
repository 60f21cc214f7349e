//! A backend that keeps SAs in a table and carries no traffic.
//!
//! Used by tests and by iked when no datapath is available; it reports
//! `carries_traffic() == false` so nothing claims protection it lacks.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use std::net::IpAddr;

use crate::{
    Counters, Kernel, KernelError, KernelEvent, PolicySpec, SaDirection, SaId, SaInfo, SaSpec,
    Selector,
};

/// In-memory SA table.
#[derive(Debug)]
pub struct MemoryKernel {
    sas: Mutex<BTreeMap<SaId, SaSpec>>,
    policies: Mutex<Vec<PolicySpec>>,
    next_spi: Mutex<u32>,
    /// Kept so the event stream stays open; this backend never raises events.
    _events: mpsc::UnboundedSender<KernelEvent>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<KernelEvent>>>,
}

impl Default for MemoryKernel {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            sas: Mutex::default(),
            policies: Mutex::default(),
            next_spi: Mutex::new(0x100),
            _events: tx,
            receiver: Mutex::new(Some(rx)),
        }
    }
}

impl MemoryKernel {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of one installed SA, keys included, for tests.
    pub fn get(&self, id: SaId) -> Option<SaSpec> {
        self.table().get(&id).cloned()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<SaId, SaSpec>> {
        // A poisoned lock only means another thread panicked mid-insert;
        // the map itself is still consistent.
        self.sas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Kernel for MemoryKernel {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn carries_traffic(&self) -> bool {
        false
    }

    async fn add_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        let mut table = self.table();
        if table.contains_key(&sa.id) {
            return Err(KernelError::Exists(sa.id.spi));
        }
        table.insert(sa.id, sa);
        Ok(())
    }

    /// Hands out SPIs in order from 0x100, skipping installed ones: the
    /// memory backend has no randomness of its own, and tests like
    /// predictable SPIs.
    async fn alloc_spi(&self, _src: IpAddr, dst: IpAddr, _reqid: u32) -> Result<u32, KernelError> {
        let table = self.table();
        let mut next = lock(&self.next_spi);
        loop {
            let spi = (*next).max(0x100);
            *next = spi.wrapping_add(1);
            if !table.contains_key(&SaId { dst, spi }) {
                return Ok(spi);
            }
        }
    }

    async fn update_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        let mut table = self.table();
        match table.get_mut(&sa.id) {
            Some(old) => {
                *old = sa;
                Ok(())
            }
            None => Err(KernelError::NotFound(sa.id.spi)),
        }
    }

    async fn get_sa(&self, id: SaId) -> Result<SaInfo, KernelError> {
        let table = self.table();
        let sa = table.get(&id).ok_or(KernelError::NotFound(id.spi))?;
        Ok(SaInfo {
            id,
            src: sa.src,
            direction: sa.direction,
            mode: sa.mode,
            reqid: sa.reqid,
            encap: sa.encap,
            counters: Counters::default(),
        })
    }

    async fn flush_sas(&self) -> Result<(), KernelError> {
        self.table().clear();
        Ok(())
    }

    async fn list_policies(&self) -> Vec<PolicySpec> {
        lock(&self.policies).clone()
    }

    async fn flush_policies(&self) -> Result<(), KernelError> {
        lock(&self.policies).clear();
        Ok(())
    }

    async fn delete_sa(&self, id: SaId) -> Result<(), KernelError> {
        self.table()
            .remove(&id)
            .map(|_| ())
            .ok_or(KernelError::NotFound(id.spi))
    }

    async fn list_sas(&self) -> Vec<SaId> {
        self.table().keys().copied().collect()
    }

    async fn add_policy(&self, policy: PolicySpec) -> Result<(), KernelError> {
        let mut policies = lock(&self.policies);
        policies.retain(|p| p.selector != policy.selector || p.direction != policy.direction);
        policies.push(policy);
        Ok(())
    }

    async fn delete_policy(
        &self,
        selector: Selector,
        direction: SaDirection,
    ) -> Result<(), KernelError> {
        let mut policies = lock(&self.policies);
        let before = policies.len();
        policies.retain(|p| p.selector != selector || p.direction != direction);
        if policies.len() == before {
            return Err(KernelError::Unsupported {
                backend: "memory",
                what: "no such policy".into(),
            });
        }
        Ok(())
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<KernelEvent>> {
        lock(&self.receiver).take()
    }
}

/// A poisoned lock only means another thread panicked mid-update; the
/// tables themselves stay consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use zeroize::Zeroizing;

    use super::*;
    use crate::{EspEncr, IpsecMode, SaDirection};

    pub(crate) fn spec(spi: u32) -> SaSpec {
        SaSpec {
            id: SaId {
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
                spi,
            },
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            direction: SaDirection::Outbound,
            mode: IpsecMode::Tunnel,
            encr: EspEncr {
                id: 20,
                key_bits: 128,
            },
            encr_key: Zeroizing::new(vec![0; 20]),
            auth: None,
            auth_key: Zeroizing::new(Vec::new()),
            encap: None,
            selectors: Vec::new(),
            reqid: 1,
            esn: false,
            replay_window: 0,
            lifetime: Default::default(),
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn duplicate_spi_is_refused_and_delete_of_missing_sa_fails() {
        let k = MemoryKernel::new();
        block_on(async {
            k.add_sa(spec(7)).await.expect("first add");
            assert_eq!(k.add_sa(spec(7)).await, Err(KernelError::Exists(7)));
            assert_eq!(k.list_sas().await.len(), 1);
            let id = spec(7).id;
            k.delete_sa(id).await.expect("delete");
            assert_eq!(k.delete_sa(id).await, Err(KernelError::NotFound(7)));
        });
    }
}
