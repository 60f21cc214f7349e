//! The tokio shell around the sans-IO KINK core ([`crate::proto`]): UDP
//! sockets, the clock, the kernel backend, the KDC, the control socket and
//! signals, with one operator log line per event.
//!
//! This is the only module that reads the clock or the OS random source.
//! Kerberos: the core's backend lives here on the event loop and only
//! computes; KDC calls run on the blocking pool (`kdc`); both backends
//! share one credential cache (see `kdc.rs`).

pub mod conf;
mod ctl;
mod kdc;
mod report;
pub mod udp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use libracoon::crypto::OsRandom;
use libracoon::ctl::io::ControlServer;
use libracoon::ctl::proto::EventRecord;
use pfkey::memory::MemoryKernel;
use pfkey::remote::SpmdKernel;
use pfkey::{Kernel, KernelError, KernelEvent};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::krb5::{Kerberos as _, Krb5Config, MitKerberos};
use crate::proto::{Engine, Output};

/// How long a stopping daemon waits for its peers to acknowledge DELETEs.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Start-up options (racoon2's flags, as iked's).
#[derive(Debug, Clone)]
pub struct Options {
    /// Configuration file.
    pub config: PathBuf,
    /// Where the pid file and the control socket live.
    pub run_dir: PathBuf,
    /// Where SAs go.
    pub kernel: KernelChoice,
    /// Group whose members may use the control socket (`--ctl-group`).
    pub ctl_group: Option<u32>,
}

/// The kernel backend (`--kernel`), as for every key-exchange daemon.
pub use pfkey::attach::KernelChoice;

/// The configuration, loaded and checked before the daemon forks, so
/// mistakes reach the operator's terminal.
pub struct Prepared {
    conf: conf::DaemonConfig,
    config: libracoon::config::Config,
}

impl Prepared {
    /// Loads and translates the configuration file; logs its warnings.
    ///
    /// # Errors
    /// The first configuration error, with file:line:col or the remote block.
    pub fn load(opts: &Options) -> anyhow::Result<Self> {
        let loaded = libracoon::config::load(&opts.config).map_err(|e| anyhow::anyhow!("{e}"))?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let conf =
            conf::translate(&loaded.config).with_context(|| opts.config.display().to_string())?;
        for n in &conf.notes {
            tracing::warn!("{n}");
        }
        Ok(Self {
            conf,
            config: loaded.config,
        })
    }

    /// The translated configuration.
    pub fn daemon_config(&self) -> &conf::DaemonConfig {
        &self.conf
    }
}

/// Runs kinkd until SIGTERM or SIGINT.
///
/// # Errors
/// Start-up failures (sockets, run directory, spmd, Kerberos set-up), each
/// naming what to fix.
pub async fn run(opts: Options, prepared: Prepared) -> anyhow::Result<()> {
    let _pid = libracoon::daemon::PidFile::create(&opts.run_dir, "kinkd")
        .map_err(|e| anyhow::anyhow!(e))?;
    if opts.kernel == KernelChoice::Memory {
        tracing::warn!("kernel backend 'memory': SAs are recorded but carry no traffic");
        let kernel = MemoryKernel::new();
        return serve(&opts, prepared, &kernel, udp::Bypass::None, "memory").await;
    }
    // spmd owns the policies our SAs must match, and routes the ACQUIREs
    // of KINK remotes to "kinkd": follow its backend.
    let socket = prepared.config.spmd_socket(&opts.run_dir);
    let spmd = pfkey::attach::connect_spmd(&socket, "kinkd")
        .await
        .map_err(anyhow::Error::msg)?;
    let backend = spmd.backend();
    opts.kernel
        .check_against("kinkd", &backend, &socket)
        .map_err(anyhow::Error::msg)?;
    match backend.as_str() {
        "xfrm" => {
            let xfrm =
                pfkey::xfrm::XfrmKernel::open().context("cannot open the XFRM netlink socket")?;
            run_split(&opts, prepared, xfrm, spmd, &socket).await
        }
        "pfkey" => {
            let sas = pfkey::pfkeyv2::PfKeyKernel::open()
                .await
                .context("cannot open the PF_KEY socket")?;
            run_split(&opts, prepared, sas, spmd, &socket).await
        }
        _ => {
            tracing::info!("kernel backend: spmd ({backend}) at {}", socket.display());
            let bypass = if backend == "userspace" {
                udp::Bypass::Userspace
            } else {
                udp::Bypass::None
            };
            let described = format!("{backend} via spmd");
            serve(&opts, prepared, spmd.as_ref(), bypass, &described).await
        }
    }
}

/// Kernel ESP: SAs from this process into `sas`, policies and ACQUIREs
/// through spmd. SAs a crashed predecessor left with our request IDs go
/// first (an old outbound SA would swallow traffic under dead keys).
async fn run_split<K: Kernel + 'static>(
    opts: &Options,
    prepared: Prepared,
    sas: Arc<K>,
    spmd: Arc<SpmdKernel>,
    socket: &Path,
) -> anyhow::Result<()> {
    let reqids: Vec<u32> = prepared.conf.peers.iter().map(|p| p.reqid).collect();
    let stale = pfkey::attach::remove_stale_sas(sas.as_ref(), &reqids).await;
    if stale > 0 {
        tracing::warn!("removed {stale} SAs a previous kinkd left in the kernel");
    }
    let name = sas.name();
    tracing::info!(
        "kernel backend: {name} (SAs), spmd at {} (policies)",
        socket.display()
    );
    let kernel = pfkey::split::SplitKernel::new(sas, spmd);
    serve(opts, prepared, &kernel, udp::Bypass::Kernel, name).await
}

/// The credential cache both backends share: `KRB5CCNAME` when set (the
/// operator chose), else a private `MEMORY:` cache of this process.
pub fn ccache_name(env: Option<String>, pid: u32) -> String {
    env.filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("MEMORY:kinkd-{pid}"))
}

/// The two backends: the core's (local crypto) and the fetcher (KDC).
fn kerberos(principal: &str) -> anyhow::Result<(MitKerberos, MitKerberos)> {
    let ccache = ccache_name(std::env::var("KRB5CCNAME").ok(), std::process::id());
    // KRB5_CONFIG and KRB5_KTNAME are read by the library itself.
    let config = Krb5Config {
        principal: principal.to_owned(),
        config_file: None,
        keytab: None,
        ccache: Some(ccache.clone()),
    };
    let open = || {
        MitKerberos::new(&config).with_context(|| {
            format!(
                "cannot set up Kerberos for {principal} (credential cache {ccache}; check \
                 krb5.conf's default_realm, KRB5_CONFIG, KRB5_KTNAME)"
            )
        })
    };
    let engine = open()?;
    let fetcher = open()?;
    tracing::info!(
        "Kerberos: principal {}, credential cache {ccache}",
        crate::krb5::Kerberos::principal(&engine)
    );
    Ok((engine, fetcher))
}

/// Unix seconds now, as KINK's EPOCH.
fn epoch() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// The event loop, for any kernel backend.
async fn serve<K: Kernel>(
    opts: &Options,
    prepared: Prepared,
    kernel: &K,
    bypass: udp::Bypass,
    backend: &str,
) -> anyhow::Result<()> {
    let Prepared { mut conf, .. } = prepared;
    let (mut krb, fetcher) = kerberos(&conf.principal)?;
    for peer in &mut conf.peers {
        peer.principal = krb.canonical_name(&peer.principal).with_context(|| {
            format!(
                "remote {}: peers_principal \"{}\" is not a Kerberos principal name",
                peer.name, peer.principal
            )
        })?;
    }
    let (tx, mut rx) = mpsc::channel(1024);
    let sockets = udp::Sockets::bind(&conf.listen, &tx, bypass).await?;
    let mut events = kernel.take_events();
    let socket = opts.run_dir.join("kinkd.sock");
    let (control, mut requests) = ControlServer::bind_for(&socket, "kinkd", opts.ctl_group)
        .await
        .with_context(|| format!("cannot open the control socket {}", socket.display()))?;
    let (ktx, mut krx) = mpsc::channel(64);
    let kdc = kdc::Kdc::new(fetcher, ktx);
    let tgt_task = tokio::spawn(kdc.clone().keep_tgt());
    let mut engine = Engine::new(conf.peers, epoch(), Box::new(OsRandom));
    let started = Instant::now();
    tracing::info!("kinkd started: listening on {:?}", conf.listen);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // racoon2 operators send HUP to reload; say that we do not rather than
    // die (HUP's default action) with SAs in place.
    let mut hup = signal(SignalKind::hangup())?;
    libracoon::daemon::notify_ready();
    let mut stopping: Option<Instant> = None;
    let mut fatal: Option<&str> = None;
    loop {
        drain(&mut engine, &mut krb, &sockets, kernel, &control, &kdc).await;
        if let Some(t) = stopping
            && (!engine.busy() || Instant::now() >= t)
        {
            break;
        }
        let deadline = [engine.poll_timeout(), stopping]
            .into_iter()
            .flatten()
            .min();
        let sleep = deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            Some(msg) = rx.recv() => engine.handle_datagram(Instant::now(), &mut krb, msg.from, &msg.bytes),
            () = sleep_until(sleep) => engine.handle_timeout(Instant::now(), &mut krb),
            Some(ev) = krx.recv() => match ev {
                kdc::KdcEvent::Tgt(info) => {
                    // The core's backend needs the TGT for user-to-user.
                    match krb.load_tgt() {
                        Ok(_) => tracing::info!("TGT {} loaded into the protocol core's backend", info.server),
                        Err(e) => tracing::warn!("the new TGT ({}) is not in the shared credential cache: {e}; user-to-user (GETTGT) fails until the next renewal", info.server),
                    }
                }
                kdc::KdcEvent::Ticket { peer, kind, result } => {
                    if let Err(e) = &result {
                        tracing::error!("cannot get a {kind:?} ticket for {peer} from the KDC: {e}");
                    }
                    engine.ticket_ready(Instant::now(), &mut krb, &peer, kind, result);
                }
            },
            _ = term.recv(), if stopping.is_none() => stopping = Some(shut_down(&mut engine, &mut krb)),
            _ = int.recv(), if stopping.is_none() => stopping = Some(shut_down(&mut engine, &mut krb)),
            _ = hup.recv() => tracing::warn!("SIGHUP: kinkd does not reload its configuration yet (spmd reloads policies); restart kinkd to apply remote changes"),
            ev = next_event(&mut events) => match ev {
                Some(ev) => on_kernel_event(&mut engine, &mut krb, ev),
                None => {
                    events = None;
                    tracing::error!("the kernel backend '{}' stopped; stopping kinkd", kernel.name());
                    fatal = Some("the kernel backend stopped (see the log)");
                    if stopping.is_none() {
                        stopping = Some(shut_down(&mut engine, &mut krb));
                    }
                }
            },
            Some(req) = requests.recv() => {
                let cx = ctl::Context {
                    started,
                    listen: &conf.listen,
                    backend,
                    carries_traffic: kernel.carries_traffic(),
                    overflow: sockets.dropped.load(std::sync::atomic::Ordering::Relaxed),
                };
                let _ = req.reply.send(ctl::answer(req.request, &mut engine, &mut krb, &cx));
            }
        }
    }
    tgt_task.abort();
    drop(control);
    tracing::info!("kinkd stopped");
    match fatal {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    }
}

/// What the kernel tells us.
fn on_kernel_event(engine: &mut Engine, krb: &mut MitKerberos, ev: KernelEvent) {
    let now = Instant::now();
    match ev {
        KernelEvent::Acquire {
            reqid, src, dst, ..
        } => {
            tracing::debug!("ACQUIRE reqid {reqid} ({src} -> {dst})");
            if let Err(e) = engine.acquire(now, krb, reqid) {
                tracing::warn!("ACQUIRE for {src} -> {dst} ignored: {e}");
            }
        }
        KernelEvent::Expire { id, hard } => engine.on_expire(now, krb, id, hard),
        KernelEvent::Migrate { .. } => {
            tracing::debug!("MIGRATE ignored: kinkd does not move SAs");
        }
        KernelEvent::Reset => {
            // The core has no hook for this: forget every pair (telling the
            // peers), and traffic renegotiates through fresh ACQUIREs.
            tracing::warn!(
                "the kernel backend lost every SA (spmd restarted?): deleting all KINK SA pairs; traffic renegotiates on demand"
            );
            let n = engine.delete(now, krb, "all");
            tracing::info!("deleted {n} KINK SA pair(s) after the reset");
        }
    }
}

/// Deletes every SA pair; returns when to give up waiting for the peers.
fn shut_down(engine: &mut Engine, krb: &mut MitKerberos) -> Instant {
    tracing::info!("stopping: deleting all KINK SA pairs");
    let now = Instant::now();
    engine.shutdown(now, krb);
    now + SHUTDOWN_GRACE
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The next kernel event, or never if the backend has no event stream.
async fn next_event(
    events: &mut Option<mpsc::UnboundedReceiver<KernelEvent>>,
) -> Option<KernelEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Carries out everything the core asked for, in order.
async fn drain(
    engine: &mut Engine,
    krb: &mut MitKerberos,
    sockets: &udp::Sockets,
    kernel: &impl Kernel,
    control: &ControlServer,
    kdc: &kdc::Kdc,
) {
    while let Some(out) = engine.poll_output() {
        match out {
            Output::Send { to, bytes } => {
                let local = engine
                    .peers()
                    .iter()
                    .find(|p| p.address == to)
                    .map(|p| p.local);
                sockets.send(local, to, &bytes).await;
            }
            Output::FetchTicket {
                peer,
                kind,
                peer_tgt,
            } => kdc.fetch(peer, kind, peer_tgt),
            Output::InstallSa(sa) => {
                let id = sa.id;
                if let Some(r) = install(*sa, kernel).await {
                    tell(control, &r);
                    engine.install_failed(Instant::now(), krb, id);
                }
            }
            Output::DeleteSa(id) => match kernel.delete_sa(id).await {
                // Already gone: a hard expiry removed it.
                Ok(()) | Err(KernelError::NotFound(_)) => {}
                Err(e) => tracing::warn!("removing SA {:08x} failed: {e}", id.spi),
            },
            Output::Event(ev) => tell(control, &report::describe(&ev)),
        }
    }
}

/// Installs an SA (replacing one with the same id); a report on failure.
async fn install(sa: pfkey::SaSpec, kernel: &impl Kernel) -> Option<report::Report> {
    let (spi, dir) = (sa.id.spi, sa.direction);
    let result = match kernel.add_sa(sa.clone()).await {
        Err(KernelError::Exists(_)) => kernel.update_sa(sa).await,
        other => other,
    };
    match result {
        Ok(()) => {
            tracing::debug!("installed {dir:?} SA {spi:08x}");
            None
        }
        Err(e) => Some(report::Report {
            level: report::Level::Error,
            kind: "sa_install_failed",
            peer: None,
            message: format!(
                "kernel backend '{}' refused {dir:?} SA {spi:08x}: {e}",
                kernel.name()
            ),
        }),
    }
}

/// Logs a report and sends it to `racoonctl watch`.
fn tell(control: &ControlServer, report: &report::Report) {
    report.log();
    control.publish(EventRecord::new(
        SystemTime::now(),
        report.kind,
        report.peer.clone(),
        report.message.clone(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ccache_follows_krb5ccname_else_is_private() {
        assert_eq!(ccache_name(None, 42), "MEMORY:kinkd-42");
        assert_eq!(ccache_name(Some(String::new()), 42), "MEMORY:kinkd-42");
        assert_eq!(
            ccache_name(Some("FILE:/tmp/kinkd.cc".into()), 42),
            "FILE:/tmp/kinkd.cc"
        );
    }

    #[tokio::test]
    async fn failed_installs_are_reported_and_replacements_update() {
        let kernel = MemoryKernel::new();
        let sa = pfkey::SaSpec {
            id: pfkey::SaId {
                dst: "192.0.2.2".parse().unwrap(),
                spi: 0x1234,
            },
            src: "192.0.2.1".parse().unwrap(),
            direction: pfkey::SaDirection::Outbound,
            mode: pfkey::IpsecMode::Tunnel,
            encr: pfkey::EspEncr {
                id: 20,
                key_bits: 128,
            },
            encr_key: vec![0; 20].into(),
            auth: None,
            auth_key: Vec::new().into(),
            encap: None,
            selectors: Vec::new(),
            reqid: 1,
            esn: false,
            replay_window: 0,
            lifetime: pfkey::Lifetime::default(),
        };
        assert!(install(sa.clone(), &kernel).await.is_none());
        let mut again = sa.clone();
        again.reqid = 2;
        assert!(
            install(again, &kernel).await.is_none(),
            "an existing SA is updated"
        );
        assert_eq!(kernel.get_sa(sa.id).await.unwrap().reqid, 2);
    }
}
