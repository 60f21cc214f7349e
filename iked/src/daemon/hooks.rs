//! racoon2's hook scripts (`script { phase1_up "PATH"; ... };` in a
//! remote's `ikev2` block), run on SA events without ever blocking the
//! event loop.
//!
//! The driver shows every output of the core to [`Hooks::observe`] before
//! carrying it out, and hands the result to [`Hooks::commit`] once it has
//! (or drops it when installing a CHILD SA failed). `observe` decides which
//! event happened and builds racoon2's environment for it; `commit`
//! updates what the hooks remember (established IKE SAs, live CHILD SAs)
//! and starts the script as its own tokio task: stdin is `/dev/null`,
//! every stdout/stderr line goes to the log prefixed with the event and
//! the script, a script still running after [`SCRIPT_TIMEOUT`] is killed
//! with its process group, and the exit status is logged (non-zero: a
//! warning). The variables are listed in `docs/hook-scripts.md`.
//!
//! What the core's outputs mean here:
//! - `IkeEstablished`: `phase1_up`; the environment is kept for the
//!   matching `phase1_down`.
//! - `IkeRekeyed`: `phase1_rekey`, with the new SA's SPI; the old SA's
//!   later close is then not a `phase1_down` (as in racoon2).
//! - `IkeClosed` of an SA that `phase1_up` saw: `phase1_down`. A
//!   negotiation that fails before IKE_AUTH completes runs nothing.
//! - `InstallChild`, once the kernel took it: `phase2_up`, or
//!   `phase2_rekey` when the IKE SA already has a live CHILD SA, which that
//!   one replaces (the core has one CHILD SA per IKE SA and says nothing
//!   else about rekeys).
//! - `DeleteChild` of a CHILD SA that was not replaced by a rekey:
//!   `phase2_down`, with the environment of its `phase2_up`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libracoon::config::{Config, HookEvent, Kmp, Remote, Scripts};
use pfkey::{IpsecMode, SaId};
use tokio::task::JoinSet;

use crate::ikev2::endpoint::{Endpoint, SaTag};
use crate::ikev2::output::{ChildSa, Event, Output};

mod run;

use self::run::Run;
#[cfg(test)]
use self::run::{Outcome, SCRIPT_PATH};

/// How long a script may run before it is killed.
pub(crate) const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A script's environment, in the order racoon2 builds it.
pub(crate) type Env = Vec<(&'static str, String)>;

/// The scripts of every remote and what they need to remember.
pub(crate) struct Hooks {
    remotes: HashMap<String, RemoteHooks>,
    /// Established IKE SAs of hooked remotes, by our SPI: `phase1_up`'s
    /// environment, for `phase1_down` and `phase1_rekey`.
    ike: HashMap<u64, Env>,
    /// Installed CHILD SAs of hooked remotes, by inbound SA.
    children: HashMap<SaId, LiveChild>,
    tasks: JoinSet<()>,
    timeout: Duration,
}

/// One remote's scripts.
struct RemoteHooks {
    scripts: Scripts,
    /// The selector its CHILD SA is negotiated from (`SELECTOR_INDEX`).
    selector_index: Option<String>,
}

impl RemoteHooks {
    fn new(config: &Config, remote: &Remote) -> Self {
        if remote.ikev2.scripts.migration.is_some() {
            tracing::warn!(
                "remote {}: the migration script is never run (iked does not act on MIGRATE)",
                remote.name
            );
        }
        let selector_index =
            super::conf::child_selector(config, remote).map(|(s, _)| s.name.clone());
        Self {
            scripts: remote.ikev2.scripts.clone(),
            selector_index,
        }
    }
}

struct LiveChild {
    ike_spi: u64,
    env: Env,
    /// Replaced by a rekey: its removal is not a `phase2_down`.
    superseded: bool,
}

/// What one output means for the hooks; see [`Hooks::commit`].
#[must_use]
pub(crate) struct Pending {
    change: Change,
    run: Option<Run>,
}

/// What the hooks remember once the output is carried out.
enum Change {
    IkeUp {
        spi: u64,
        env: Env,
    },
    IkeRekeyed {
        old: u64,
        new: u64,
        env: Env,
    },
    IkeDown {
        spi: u64,
    },
    ChildUp {
        inbound: SaId,
        ike_spi: u64,
        env: Env,
        replaces: Option<SaId>,
    },
    ChildDown {
        inbound: SaId,
    },
}

/// What an output changes and which event's script (if any) it runs.
struct Planned {
    change: Change,
    event: Option<HookEvent>,
    env: Env,
}

impl Planned {
    fn run(change: Change, event: HookEvent, env: Env) -> Self {
        Self {
            change,
            event: Some(event),
            env,
        }
    }
}

/// `phase1_up`.
fn ike_up(tag: &SaTag, local: Option<SocketAddr>) -> Planned {
    let env = ike_env(tag, local, tag.spi);
    let change = Change::IkeUp {
        spi: tag.spi,
        env: env.clone(),
    };
    Planned::run(change, HookEvent::Phase1Up, env)
}

impl Hooks {
    /// The scripts of every IKEv2 remote that has any.
    pub(crate) fn new(config: &Config) -> Self {
        let remotes = config
            .remotes
            .iter()
            .filter(|r| r.acceptable_kmp.is_empty() || r.acceptable_kmp.contains(&Kmp::Ikev2))
            .filter(|r| !r.ikev2.scripts.is_empty())
            .map(|r| (r.name.clone(), RemoteHooks::new(config, r)))
            .collect();
        Self {
            remotes,
            ike: HashMap::new(),
            children: HashMap::new(),
            tasks: JoinSet::new(),
            timeout: SCRIPT_TIMEOUT,
        }
    }

    /// What `out` of the SA `tag` means for the hooks, if anything. Call
    /// before carrying `out` out; pass the result to [`Self::commit`].
    pub(crate) fn observe(
        &self,
        tag: &SaTag,
        out: &Output,
        endpoint: &Endpoint,
    ) -> Option<Pending> {
        if !self.remotes.contains_key(&tag.name) {
            return None;
        }
        let local = match out {
            Output::Event(Event::IkeEstablished { .. }) => endpoint
                .sas()
                .find(|s| s.local_spi() == tag.spi)
                .map(|s| s.path().local),
            _ => None,
        };
        self.plan(tag, out, local)
    }

    /// Remembers what `pending` changed and starts its script. `None` (an
    /// output that needs no hook, or a CHILD SA the kernel refused) does
    /// nothing.
    pub(crate) fn commit(&mut self, pending: Option<Pending>) {
        let Some(p) = pending else { return };
        self.apply(p.change);
        if let Some(run) = p.run {
            while self.tasks.try_join_next().is_some() {}
            self.tasks.spawn(run.execute(self.timeout));
        }
    }

    /// Waits for the scripts still running (each ends by its timeout), so
    /// the `*_down` scripts of a stopping daemon are not cut short.
    pub(crate) async fn finish(&mut self) {
        while self.tasks.try_join_next().is_some() {}
        if !self.tasks.is_empty() {
            tracing::info!("waiting for {} hook script(s) to finish", self.tasks.len());
        }
        while self.tasks.join_next().await.is_some() {}
    }

    /// `observe` with the SA's local address (only `IkeEstablished`
    /// needs it) already looked up.
    fn plan(&self, tag: &SaTag, out: &Output, local: Option<SocketAddr>) -> Option<Pending> {
        let remote = self.remotes.get(&tag.name)?;
        let planned = match out {
            Output::Event(Event::IkeEstablished { .. }) => Some(ike_up(tag, local)),
            Output::Event(Event::IkeRekeyed { new_spi }) => Some(self.ike_rekeyed(tag, *new_spi)),
            Output::Event(Event::IkeClosed(_)) => self.ike_down(tag),
            Output::InstallChild(child) => Some(self.child_up(tag, child, remote)),
            Output::DeleteChild { inbound, .. } => self.child_down(inbound),
            _ => None,
        }?;
        let run = planned.event.and_then(|event| {
            let script = remote.scripts.get(event)?.to_path_buf();
            Some(Run {
                event,
                script,
                env: planned.env,
            })
        });
        Some(Pending {
            change: planned.change,
            run,
        })
    }

    /// `phase1_rekey`: the old SA's variables with the new SPI.
    fn ike_rekeyed(&self, tag: &SaTag, new_spi: u64) -> Planned {
        let mut env = self
            .ike
            .get(&tag.spi)
            .cloned()
            .unwrap_or_else(|| ike_env(tag, None, tag.spi));
        set(&mut env, "IKE_SPI", spi64(new_spi));
        let change = Change::IkeRekeyed {
            old: tag.spi,
            new: new_spi,
            env: env.clone(),
        };
        Planned::run(change, HookEvent::Phase1Rekey, env)
    }

    /// `phase1_down`, for an SA that `phase1_up` saw.
    fn ike_down(&self, tag: &SaTag) -> Option<Planned> {
        let env = self.ike.get(&tag.spi)?.clone();
        let change = Change::IkeDown { spi: tag.spi };
        Some(Planned::run(change, HookEvent::Phase1Down, env))
    }

    /// `phase2_up`, or `phase2_rekey` if the IKE SA has a live CHILD SA.
    fn child_up(&self, tag: &SaTag, child: &ChildSa, remote: &RemoteHooks) -> Planned {
        let env = child_env(tag, child, remote.selector_index.as_deref());
        let replaces = self
            .children
            .iter()
            .find(|(_, c)| c.ike_spi == tag.spi && !c.superseded)
            .map(|(id, _)| *id);
        let event = if replaces.is_some() {
            HookEvent::Phase2Rekey
        } else {
            HookEvent::Phase2Up
        };
        let change = Change::ChildUp {
            inbound: child.inbound.id,
            ike_spi: tag.spi,
            env: env.clone(),
            replaces,
        };
        Planned::run(change, event, env)
    }

    /// `phase2_down` with `phase2_up`'s variables, unless a rekey replaced
    /// the CHILD SA.
    fn child_down(&self, inbound: &SaId) -> Option<Planned> {
        let live = self.children.get(inbound)?;
        let change = Change::ChildDown { inbound: *inbound };
        Some(if live.superseded {
            Planned {
                change,
                event: None,
                env: Env::new(),
            }
        } else {
            Planned::run(change, HookEvent::Phase2Down, live.env.clone())
        })
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::IkeUp { spi, env } => {
                self.ike.insert(spi, env);
            }
            Change::IkeRekeyed { old, new, env } => {
                self.ike.remove(&old);
                self.ike.insert(new, env);
                for c in self.children.values_mut().filter(|c| c.ike_spi == old) {
                    c.ike_spi = new;
                }
            }
            Change::IkeDown { spi } => {
                // The core removes the CHILD SAs (DeleteChild) first.
                self.ike.remove(&spi);
                self.children.retain(|_, c| c.ike_spi != spi);
            }
            Change::ChildUp {
                inbound,
                ike_spi,
                env,
                replaces,
            } => {
                if let Some(old) = replaces.and_then(|id| self.children.get_mut(&id)) {
                    old.superseded = true;
                }
                let live = LiveChild {
                    ike_spi,
                    env,
                    superseded: false,
                };
                self.children.insert(inbound, live);
            }
            Change::ChildDown { inbound } => {
                self.children.remove(&inbound);
            }
        }
    }
}

/// `phase1_*`: racoon2's `LOCAL_ADDR`, `LOCAL_PORT`, `REMOTE_ADDR`,
/// `REMOTE_PORT` (the IKE SA's current path), then racoon3's
/// `REMOTE_INDEX` and `IKE_SPI`. `local` is unknown only if the SA was
/// already gone when its establishment was reported.
pub(crate) fn ike_env(tag: &SaTag, local: Option<SocketAddr>, spi: u64) -> Env {
    let mut env = Env::new();
    if let Some(l) = local {
        env.push(("LOCAL_ADDR", l.ip().to_string()));
        env.push(("LOCAL_PORT", l.port().to_string()));
    }
    env.push(("REMOTE_ADDR", tag.peer.ip().to_string()));
    env.push(("REMOTE_PORT", tag.peer.port().to_string()));
    env.push(("REMOTE_INDEX", tag.name.clone()));
    env.push(("IKE_SPI", spi64(spi)));
    env
}

/// `phase2_*`: racoon2's variables for a CHILD SA (the configuration
/// payload ones empty: racoon3 does not negotiate them), then racoon3's
/// `REMOTE_INDEX`, `IKE_SPI`, `SPI_IN`, `SPI_OUT`.
pub(crate) fn child_env(tag: &SaTag, child: &ChildSa, selector_index: Option<&str>) -> Env {
    let out = &child.outbound;
    let mut env: Env = vec![
        ("LOCAL_ADDR", out.src.to_string()),
        ("REMOTE_ADDR", out.id.dst.to_string()),
    ];
    if let Some(s) = selector_index {
        env.push(("SELECTOR_INDEX", s.to_owned()));
    }
    let mode = match out.mode {
        IpsecMode::Transport => "transport",
        IpsecMode::Tunnel => "tunnel",
    };
    env.push(("IPSEC_MODE", mode.to_owned()));
    // Outbound selectors run local -> remote; racoon2 reports the first.
    if let Some(sel) = out.selectors.first() {
        let (laddr, llen) = covering_prefix(sel.src.0, sel.src.1);
        let (raddr, rlen) = covering_prefix(sel.dst.0, sel.dst.1);
        env.push(("LOCAL_NET_ADDR", laddr.to_string()));
        env.push(("LOCAL_NET_PREFIXLEN", llen.to_string()));
        env.push(("LOCAL_NET_PORT", sel.src_port.to_string()));
        env.push(("REMOTE_NET_ADDR", raddr.to_string()));
        env.push(("REMOTE_NET_PREFIXLEN", rlen.to_string()));
        env.push(("REMOTE_NET_PORT", sel.dst_port.to_string()));
        let proto = match sel.proto {
            0 => "any".to_owned(),
            n => n.to_string(),
        };
        env.push(("UPPER_LAYER_PROTOCOL", proto));
    }
    for name in [
        "INTERNAL_ADDR4",
        "INTERNAL_DNS4",
        "INTERNAL_WINS4",
        "INTERNAL_DHCP4",
        "INTERNAL_ADDR6",
        "INTERNAL_DNS6",
        "INTERNAL_DHCP6",
        "APPLICATION_VERSION",
    ] {
        env.push((name, String::new()));
    }
    env.push(("REMOTE_INDEX", tag.name.clone()));
    env.push(("IKE_SPI", spi64(tag.spi)));
    env.push(("SPI_IN", format!("{:08x}", child.inbound.id.spi)));
    env.push(("SPI_OUT", format!("{:08x}", out.id.spi)));
    env
}

/// racoon2 passes an address and a prefix length; a traffic selector is a
/// range. A range that is a prefix gives exactly that prefix; any other
/// gives the smallest prefix covering it.
pub(crate) fn covering_prefix(start: IpAddr, end: IpAddr) -> (IpAddr, u8) {
    match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            let (s, e) = (u32::from(s), u32::from(e));
            let len = (s ^ e).leading_zeros();
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            (IpAddr::V4((s & mask).into()), len as u8)
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            let (s, e) = (u128::from(s), u128::from(e));
            let len = (s ^ e).leading_zeros();
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            (IpAddr::V6((s & mask).into()), len as u8)
        }
        // Mixed families cannot come from the core; say "everything".
        (s, _) => (s, 0),
    }
}

fn spi64(spi: u64) -> String {
    format!("{spi:016x}")
}

fn set(env: &mut Env, name: &'static str, value: String) {
    match env.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

#[cfg(test)]
mod tests;
