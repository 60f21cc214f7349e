//! spmd's bookkeeping and its answers: which policies it installed (from
//! the configuration, or for a daemon), which daemon installed which SA,
//! and where each kernel event goes.

use std::collections::{BTreeSet, HashMap};
use std::time::{Instant, SystemTime};

use libracoon::config::Config;
use libracoon::ctl::io::ControlServer;
use libracoon::ctl::kernel::{KernelNotice, KernelOp, KernelReply};
use libracoon::ctl::proto::{
    CtlError, DaemonStatus, ErrorCode, EventRecord, PolicyStatus, Request, ResponseBody,
};
use pfkey::{Kernel, KernelError, KernelEvent, PolicyAction, PolicySpec, SaDirection, SaId};

use crate::journal::Journal;
use crate::plan::{self, Plan};

/// Who put a policy in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A `selector` block, with its remote.
    Config {
        /// The selector's name.
        selector: String,
        /// The remote negotiating its SAs.
        remote: Option<String>,
    },
    /// A key-exchange daemon's request.
    Daemon(String),
}

/// Everything spmd knows besides the kernel's own tables.
#[derive(Debug)]
pub struct State {
    config: Config,
    installed: Vec<(PolicySpec, Origin)>,
    sa_owner: HashMap<SaId, String>,
    attached: BTreeSet<String>,
    journal: Journal,
    started: Instant,
}

impl State {
    /// A state for `config`, nothing installed yet.
    pub fn new(config: Config, journal: Journal) -> Self {
        Self {
            config,
            installed: Vec::new(),
            sa_owner: HashMap::new(),
            attached: BTreeSet::new(),
            journal,
            started: Instant::now(),
        }
    }

    /// Removes what a crashed predecessor left (per the journal).
    pub async fn clean_up_leftovers(&self, kernel: &impl Kernel) {
        match self.journal.leftovers() {
            Ok(left) if left.is_empty() => {}
            Ok(left) => {
                let n = left.len();
                for p in left {
                    let _ = kernel.delete_policy(p.selector, p.direction).await;
                }
                tracing::warn!(
                    "removed {n} policies a previous spmd left behind ({})",
                    self.journal.path().display()
                );
                self.journal.clear();
            }
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Installs the plan's policies; a policy the backend refuses is
    /// logged and skipped, the others go in.
    pub async fn install(&mut self, kernel: &impl Kernel, plan: &Plan) {
        for p in &plan.policies {
            let origin = Origin::Config {
                selector: p.source.clone(),
                remote: p.remote.clone(),
            };
            self.add(kernel, p.spec.clone(), origin).await;
        }
        self.record();
    }

    async fn add(&mut self, kernel: &impl Kernel, spec: PolicySpec, origin: Origin) -> bool {
        match kernel.add_policy(spec.clone()).await {
            Ok(()) => {
                self.installed
                    .retain(|(p, _)| p.selector != spec.selector || p.direction != spec.direction);
                self.installed.push((spec, origin));
                true
            }
            Err(e) => {
                tracing::error!(
                    "{}: cannot install the policy: {e}",
                    describe(&spec, &origin)
                );
                false
            }
        }
    }

    async fn remove(&mut self, kernel: &impl Kernel, spec: &PolicySpec) {
        if let Err(e) = kernel
            .delete_policy(spec.selector.clone(), spec.direction)
            .await
        {
            tracing::warn!("removing a policy failed: {e}");
        }
        self.installed
            .retain(|(p, _)| p.selector != spec.selector || p.direction != spec.direction);
    }

    /// Removes every policy spmd installed (clean exit).
    pub async fn remove_all(&mut self, kernel: &impl Kernel) {
        let all: Vec<PolicySpec> = self.installed.iter().map(|(p, _)| p.clone()).collect();
        for p in &all {
            self.remove(kernel, p).await;
        }
        self.journal.clear();
        tracing::info!("removed {} policies", all.len());
    }

    fn record(&self) {
        let specs: Vec<PolicySpec> = self.installed.iter().map(|(p, _)| p.clone()).collect();
        if let Err(e) = self.journal.record(&specs) {
            tracing::error!(
                "cannot write {}: {e}; a crash now would leave policies behind",
                self.journal.path().display()
            );
        }
    }

    /// Applies a new configuration: policies that disappeared or changed
    /// go, new ones come, identical ones (and every SA) stay.
    ///
    /// # Errors
    /// The new configuration's plan fails; nothing was changed.
    pub async fn reload(&mut self, kernel: &impl Kernel, config: Config) -> Result<String, String> {
        let plan = plan::plan(&config)?;
        for n in &plan.notes {
            tracing::warn!("{n}");
        }
        // New and changed policies first: a backend replaces a policy with
        // the same selector and direction, so protected traffic never
        // meets a gap. Then the ones no longer configured.
        let (mut added, mut failed) = (0, 0);
        for n in &plan.policies {
            let origin = Origin::Config {
                selector: n.source.clone(),
                remote: n.remote.clone(),
            };
            if let Some(entry) = self.installed.iter_mut().find(|(p, _)| *p == n.spec) {
                // Same policy; the selector or remote name may have changed.
                entry.1 = origin;
            } else if self.add(kernel, n.spec.clone(), origin).await {
                added += 1;
            } else {
                failed += 1;
            }
        }
        let stale: Vec<PolicySpec> =
            self.installed
                .iter()
                .filter(|(p, o)| {
                    matches!(o, Origin::Config { .. })
                        && !plan.policies.iter().any(|n| {
                            n.spec.selector == p.selector && n.spec.direction == p.direction
                        })
                })
                .map(|(p, _)| p.clone())
                .collect();
        for p in &stale {
            self.remove(kernel, p).await;
        }
        let moved = moved_reqids(&self.config, &config);
        self.config = config;
        self.record();
        let kept = plan.policies.len() - added - failed;
        let mut msg = format!(
            "reloaded: {added} policies added, {} removed, {kept} unchanged",
            stale.len()
        );
        if failed > 0 {
            msg.push_str(&format!(
                "; {failed} refused by the kernel backend (see the log)"
            ));
        }
        if !moved.is_empty() {
            msg.push_str(&format!(
                "; the request IDs of remote {} changed (a remote block was added or moved): \
                 restart iked so its SAs match the new policies",
                moved.join(", ")
            ));
        }
        Ok(msg)
    }

    /// Answers one control request.
    pub async fn answer(
        &mut self,
        request: Request,
        kernel: &impl Kernel,
        control: &ControlServer,
        reload: impl AsyncFnOnce() -> Result<Config, String>,
    ) -> Result<ResponseBody, CtlError> {
        match request {
            Request::ShowPolicy => Ok(ResponseBody::Policies(self.policy_status())),
            Request::ShowStatus => Ok(ResponseBody::Status(self.status(kernel).await)),
            Request::Reload => {
                let config = reload()
                    .await
                    .map_err(|e| CtlError::new(ErrorCode::BadRequest, e))?;
                let msg = self
                    .reload(kernel, config)
                    .await
                    .map_err(|e| CtlError::new(ErrorCode::BadRequest, e))?;
                tracing::info!("{msg}");
                Ok(done(msg))
            }
            Request::Flush => {
                // Only the SAs installed through spmd: a kernel SAD may hold
                // SAs of daemons that install their own (iked with XFRM) and
                // of other software.
                let ids: Vec<SaId> = self.sa_owner.keys().copied().collect();
                let mut n = 0;
                for id in ids {
                    match kernel.delete_sa(id).await {
                        Ok(()) => n += 1,
                        Err(KernelError::NotFound(_)) => {}
                        Err(e) => return Err(kernel_error(e)),
                    }
                    self.sa_owner.remove(&id);
                }
                for daemon in &self.attached {
                    notify(control, daemon, KernelEvent::Reset, "SAs flushed".into());
                }
                tracing::info!("flushed {n} SAs");
                Ok(done(format!("flushed {n} SAs")))
            }
            Request::Kernel { from, op } => self.kernel_op(&from, *op, kernel).await,
            Request::ShowSa
            | Request::Initiate { .. }
            | Request::Terminate { .. }
            | Request::Rekey { .. } => Err(CtlError::new(
                ErrorCode::Unsupported,
                "spmd holds policies, not IKE SAs: ask iked (racoonctl talks to it for this command)",
            )),
            Request::Watch => Err(CtlError::new(
                ErrorCode::BadRequest,
                "watch is handled by the control server",
            )),
        }
    }

    async fn kernel_op(
        &mut self,
        from: &str,
        op: KernelOp,
        kernel: &impl Kernel,
    ) -> Result<ResponseBody, CtlError> {
        let reply = match op {
            KernelOp::Attach => {
                if self.attached.insert(from.to_owned()) {
                    tracing::info!("{from} attached");
                }
                KernelReply::Attached {
                    backend: kernel.name().to_owned(),
                    carries_traffic: kernel.carries_traffic(),
                }
            }
            KernelOp::AllocSpi { src, dst, reqid } => KernelReply::Spi {
                spi: kernel
                    .alloc_spi(src, dst, reqid)
                    .await
                    .map_err(kernel_error)?,
            },
            KernelOp::AddSa { sa } => {
                let id = sa.id;
                kernel.add_sa(sa).await.map_err(kernel_error)?;
                self.sa_owner.insert(id, from.to_owned());
                KernelReply::Done
            }
            KernelOp::UpdateSa { sa } => {
                kernel.update_sa(sa).await.map_err(kernel_error)?;
                KernelReply::Done
            }
            KernelOp::DeleteSa { id } => {
                self.sa_owner.remove(&id);
                kernel.delete_sa(id).await.map_err(kernel_error)?;
                KernelReply::Done
            }
            KernelOp::GetSa { id } => KernelReply::Sa {
                sa: kernel.get_sa(id).await.map_err(kernel_error)?,
            },
            KernelOp::ListSas => KernelReply::Sas {
                sas: kernel.list_sas().await,
            },
            KernelOp::AddPolicy { policy } => {
                let origin = Origin::Daemon(from.to_owned());
                kernel
                    .add_policy(policy.clone())
                    .await
                    .map_err(kernel_error)?;
                self.installed.retain(|(p, _)| {
                    p.selector != policy.selector || p.direction != policy.direction
                });
                self.installed.push((policy, origin));
                self.record();
                KernelReply::Done
            }
            KernelOp::DeletePolicy {
                selector,
                direction,
            } => {
                kernel
                    .delete_policy(selector.clone(), direction)
                    .await
                    .map_err(kernel_error)?;
                self.installed
                    .retain(|(p, _)| p.selector != selector || p.direction != direction);
                self.record();
                KernelReply::Done
            }
            KernelOp::ListPolicies => KernelReply::Policies {
                policies: kernel.list_policies().await,
            },
        };
        Ok(ResponseBody::Kernel(reply))
    }

    /// Sends a kernel event to the daemon it concerns.
    pub fn route_event(&mut self, event: KernelEvent, control: &ControlServer) {
        match &event {
            KernelEvent::Acquire {
                reqid, src, dst, ..
            } => {
                let Some((daemon, remote)) = self.acquire_target(*reqid) else {
                    tracing::warn!(
                        "ACQUIRE for {src} -> {dst} (reqid {reqid}): no policy of spmd has this reqid"
                    );
                    return;
                };
                if !self.attached.contains(&daemon) {
                    tracing::warn!(
                        "ACQUIRE for {src} -> {dst} (remote {remote}): {daemon} is not running; start it to negotiate"
                    );
                }
                let msg = format!(
                    "ACQUIRE for {src} -> {dst} (reqid {reqid}, remote {remote}) to {daemon}"
                );
                tracing::info!("{msg}");
                notify(control, &daemon, event, msg);
            }
            KernelEvent::Expire { id, hard } => {
                let owner = if *hard {
                    self.sa_owner.remove(id)
                } else {
                    self.sa_owner.get(id).cloned()
                };
                let kind = if *hard { "hard" } else { "soft" };
                let msg = format!(
                    "SA {:08x} to {} reached its {kind} lifetime",
                    id.spi, id.dst
                );
                tracing::info!("{msg}");
                match owner {
                    Some(daemon) => notify(control, &daemon, event, msg),
                    None => tracing::debug!("SA {:08x} has no known owner", id.spi),
                }
            }
            KernelEvent::Migrate { .. } | KernelEvent::Reset => {
                for daemon in self.attached.clone() {
                    notify(control, &daemon, event.clone(), format!("{event:?}"));
                }
            }
        }
    }

    fn acquire_target(&self, reqid: u32) -> Option<(String, String)> {
        self.installed
            .iter()
            .find_map(|(p, o)| match (p.action, o) {
                (PolicyAction::Protect { reqid: r, .. }, origin) if r == reqid => match origin {
                    Origin::Config {
                        remote: Some(remote),
                        ..
                    } => Some((
                        plan::kmp_daemon(&self.config, remote).to_owned(),
                        remote.clone(),
                    )),
                    Origin::Daemon(d) => Some((d.clone(), "dynamic".to_owned())),
                    Origin::Config { remote: None, .. } => None,
                },
                _ => None,
            })
    }

    fn policy_status(&self) -> Vec<PolicyStatus> {
        self.installed
            .iter()
            .map(|(p, o)| {
                let (source, remote) = match o {
                    Origin::Config { selector, remote } => (selector.clone(), remote.clone()),
                    Origin::Daemon(d) => (d.clone(), None),
                };
                let (action, mode, reqid) = match p.action {
                    PolicyAction::Protect { reqid, mode } => (
                        "protect",
                        Some(format!("{mode:?}").to_lowercase()),
                        Some(reqid),
                    ),
                    PolicyAction::Bypass => ("bypass", None, None),
                    PolicyAction::Discard => ("discard", None, None),
                };
                PolicyStatus {
                    source,
                    remote,
                    direction: match p.direction {
                        SaDirection::Outbound => "out",
                        SaDirection::Inbound => "in",
                    }
                    .into(),
                    src: range_text(p.selector.src, p.selector.src_port),
                    dst: range_text(p.selector.dst, p.selector.dst_port),
                    proto: p.selector.proto,
                    action: action.into(),
                    mode,
                    reqid,
                    tunnel: p.tunnel.map(|(l, r)| format!("{l} -> {r}")),
                }
            })
            .collect()
    }

    async fn status(&self, kernel: &impl Kernel) -> DaemonStatus {
        DaemonStatus {
            daemon: "spmd".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            kernel_backend: kernel.name().into(),
            carries_traffic: kernel.carries_traffic(),
            ike_sas: 0,
            half_open: 0,
            listen: self
                .attached
                .iter()
                .map(|d| format!("{d} attached"))
                .collect(),
            counters: std::collections::BTreeMap::new(),
        }
    }
}

/// Remotes present in both configurations whose default request ID moved.
fn moved_reqids(old: &Config, new: &Config) -> Vec<String> {
    new.remotes
        .iter()
        .filter(|r| {
            let before = old.default_reqid(&r.name);
            before.is_some() && before != new.default_reqid(&r.name)
        })
        .map(|r| r.name.clone())
        .collect()
}

fn notify(control: &ControlServer, daemon: &str, event: KernelEvent, message: String) {
    let kind = match event {
        KernelEvent::Acquire { .. } => "acquire",
        KernelEvent::Expire { hard: true, .. } => "hard_expire",
        KernelEvent::Expire { hard: false, .. } => "soft_expire",
        KernelEvent::Migrate { .. } => "migrate",
        KernelEvent::Reset => "reset",
    };
    let mut record = EventRecord::new(SystemTime::now(), kind, None, message);
    record.kernel = Some(KernelNotice {
        to: daemon.to_owned(),
        event,
    });
    control.publish(record);
}

/// `a/len` when the range is a prefix, `a-b` otherwise, `[port]` appended.
fn range_text(r: (std::net::IpAddr, std::net::IpAddr), port: u16) -> String {
    let text = prefix_of(r).unwrap_or_else(|| format!("{}-{}", r.0, r.1));
    if port == 0 {
        text
    } else {
        format!("{text}[{port}]")
    }
}

fn prefix_of((lo, hi): (std::net::IpAddr, std::net::IpAddr)) -> Option<String> {
    let (a, b, width) = match (lo, hi) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), 32)
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return None,
    };
    let span = b.checked_sub(a)?.checked_add(1);
    let host_bits = match span {
        None => 128,
        Some(s) if s.is_power_of_two() => s.trailing_zeros(),
        Some(_) => return None,
    };
    let mask = if host_bits == 128 {
        0
    } else {
        u128::MAX << host_bits
    };
    (a & !mask == 0).then(|| format!("{lo}/{}", width - host_bits))
}

fn describe(spec: &PolicySpec, origin: &Origin) -> String {
    match origin {
        Origin::Config { selector, .. } => format!("selector {selector}"),
        Origin::Daemon(d) => format!("{d}'s policy {:?}", spec.selector),
    }
}

fn done(message: String) -> ResponseBody {
    ResponseBody::Done { message }
}

fn kernel_error(e: KernelError) -> CtlError {
    let code = match e {
        KernelError::NotFound(_) => ErrorCode::NotFound,
        KernelError::Exists(_) => ErrorCode::Exists,
        KernelError::Unsupported { .. } => ErrorCode::Unsupported,
        _ => ErrorCode::Kernel,
    };
    CtlError::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_print_as_prefixes_where_they_are_one() {
        assert_eq!(
            range_text((ip("198.51.100.0"), ip("198.51.100.255")), 0),
            "198.51.100.0/24"
        );
        assert_eq!(
            range_text((ip("192.0.2.1"), ip("192.0.2.1")), 443),
            "192.0.2.1/32[443]"
        );
        assert_eq!(
            range_text((ip("192.0.2.1"), ip("192.0.2.5")), 0),
            "192.0.2.1-192.0.2.5"
        );
        assert_eq!(
            range_text((ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), 0),
            "::/0"
        );
        assert_eq!(
            range_text((ip("0.0.0.0"), ip("255.255.255.255")), 0),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn kernel_errors_keep_their_kind_on_the_wire() {
        assert_eq!(
            kernel_error(KernelError::NotFound(1)).code,
            ErrorCode::NotFound
        );
        assert_eq!(kernel_error(KernelError::Exists(1)).code, ErrorCode::Exists);
    }
}
