//! The tokio shell around the sans-IO core: sockets, the clock, the
//! kernel backend, signals, and one operator log line per event.
//!
//! This is the only module that reads the clock or the OS random source.

pub mod conf;
mod ctl;
mod dynamic;
mod handoff;
mod hooks;
pub mod policy;
mod report;
pub mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use libracoon::crypto::OsRandom;
use pfkey::Kernel;
use pfkey::memory::MemoryKernel;
use pfkey::remote::SpmdKernel;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use libracoon::ctl::io::ControlServer;
use libracoon::ctl::proto::EventRecord;

use crate::ikev2::endpoint::{Endpoint, SaTag};
use crate::ikev2::output::{Output, Path};

/// How long a stopping daemon waits for the peers to acknowledge its Deletes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Start-up options (racoon2's flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Configuration file.
    pub config: PathBuf,
    /// Peer addresses to initiate to at start (`-I`).
    pub initiate: Vec<std::net::IpAddr>,
    /// Where the pid file lives.
    pub run_dir: PathBuf,
    /// Where CHILD SAs go.
    pub kernel: KernelChoice,
    /// Group whose members may use the control socket (`--ctl-group`).
    pub ctl_group: Option<u32>,
}

/// The kernel backend (`--kernel`), as for every key-exchange daemon.
pub use pfkey::attach::KernelChoice;

/// The configuration, loaded and checked before the daemon forks, so
/// mistakes reach the operator's terminal.
pub struct Prepared {
    config: libracoon::config::Config,
    conf: conf::DaemonConfig,
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
            config: loaded.config,
            conf,
        })
    }
}

/// Runs iked until SIGTERM or SIGINT.
///
/// # Errors
/// Start-up failures (configuration, sockets, run directory), each naming
/// what to fix.
pub async fn run(opts: Options, prepared: Prepared) -> anyhow::Result<()> {
    let _pid = libracoon::daemon::PidFile::create(&opts.run_dir, "iked")
        .map_err(|e| anyhow::anyhow!(e))?;
    if opts.kernel == KernelChoice::Memory {
        tracing::warn!("kernel backend 'memory': SAs are recorded but carry no traffic");
        return serve(&opts, prepared, &MemoryKernel::new(), None, "memory").await;
    }
    // spmd decides where SAs live (it owns the policies they must match):
    // iked follows, and an explicit --kernel must agree with it.
    let socket = prepared.config.spmd_socket(&opts.run_dir);
    let spmd = pfkey::attach::connect_spmd(&socket, "iked")
        .await
        .map_err(anyhow::Error::msg)?;
    let backend = spmd.backend();
    opts.kernel
        .check_against("iked", &backend, &socket)
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
            // Only the userspace datapath needs ESP-in-UDP from us; a kernel
            // backend takes it off the socket itself (UDP_ENCAP).
            let handoff = (backend == "userspace").then(|| {
                handoff::EspHandoff::new(socket.with_file_name(pfkey::handoff::SOCKET_NAME))
            });
            let link = Some((handoff, spmd.generation()));
            let described = format!("{backend} via spmd");
            serve(&opts, prepared, spmd.as_ref(), link, &described).await
        }
    }
}

/// Kernel ESP: SAs from this process into `sas`, the rest through spmd.
/// SAs a crashed predecessor left with our request IDs go first: an old
/// outbound SA would satisfy the policy and swallow traffic under keys the
/// peer no longer has.
async fn run_split<K: Kernel + 'static>(
    opts: &Options,
    prepared: Prepared,
    sas: Arc<K>,
    spmd: Arc<SpmdKernel>,
    socket: &std::path::Path,
) -> anyhow::Result<()> {
    let reqids: Vec<u32> = prepared.conf.peers.iter().map(|p| p.child.reqid).collect();
    let stale = pfkey::attach::remove_stale_sas(sas.as_ref(), &reqids).await;
    if stale > 0 {
        tracing::warn!("removed {stale} SAs a previous iked left in the kernel");
    }
    let name = sas.name();
    tracing::info!(
        "kernel backend: {name} (SAs), spmd at {} (policies)",
        socket.display()
    );
    let kernel = pfkey::split::SplitKernel::new(sas, spmd.clone());
    let link = Some((None, spmd.generation()));
    serve(opts, prepared, &kernel, link, name).await
}

/// With spmd: the ESP-in-UDP hand-off (userspace datapath only) and spmd's
/// restart counter.
type SpmdLink = (
    Option<handoff::EspHandoff>,
    tokio::sync::watch::Receiver<u64>,
);

/// The event loop, for any kernel backend.
async fn serve<K: Kernel>(
    opts: &Options,
    prepared: Prepared,
    kernel: &K,
    spmd: Option<SpmdLink>,
    backend: &str,
) -> anyhow::Result<()> {
    let Prepared { config, conf } = prepared;
    let (tx, mut rx) = mpsc::channel(1024);
    let (handoff, mut generation) = match spmd {
        Some((h, g)) => (h, Some(g)),
        None => (None, None),
    };
    let kernel_esp = matches!(kernel.name(), "xfrm" | "pfkey");
    let sockets = Arc::new(
        udp::Sockets::bind(
            &conf.listen,
            &tx,
            handoff.as_ref().map(handoff::EspHandoff::sink),
            kernel_esp,
        )
        .await?,
    );
    if let Some(h) = &handoff {
        h.connect(&sockets);
    }
    let mut events = kernel.take_events();
    let socket = opts.run_dir.join("iked.sock");
    let (control, mut requests) = ControlServer::bind_for(&socket, "iked", opts.ctl_group)
        .await
        .with_context(|| format!("cannot open the control socket {}", socket.display()))?;
    let mut dynamic = dynamic::DynamicPolicies::from_config(&config);
    let mut endpoint = Endpoint::new(conf.peers, Box::new(OsRandom));
    let mut hooks = hooks::Hooks::new(&config);
    let started = Instant::now();
    for peer in &opts.initiate {
        initiate(&mut endpoint, &config, &conf.listen, *peer)?;
    }
    tracing::info!("iked started: listening on {:?}", conf.listen);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // racoon2 operators send HUP to reload; until iked reloads, say so
    // instead of dying (HUP's default action) with SAs in place.
    let mut hup = signal(SignalKind::hangup())?;
    libracoon::daemon::notify_ready();
    let mut stopping: Option<Instant> = None;
    // Set when the kernel backend dies under us: iked then stops, telling
    // its peers, and exits with an error so a supervisor can restart it.
    let mut fatal: Option<&str> = None;
    loop {
        drain(
            &mut endpoint,
            &sockets,
            kernel,
            &control,
            &mut dynamic,
            &mut hooks,
        )
        .await;
        if let Some(t) = stopping
            && (endpoint.sas().next().is_none() || Instant::now() >= t)
        {
            break;
        }
        let deadline = [endpoint.poll_timeout(), stopping]
            .into_iter()
            .flatten()
            .min();
        let sleep = deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            Some(msg) = rx.recv() => endpoint.handle_datagram(Instant::now(), msg.path, &msg.bytes),
            () = sleep_until(sleep) => endpoint.handle_timeout(Instant::now()),
            _ = term.recv(), if stopping.is_none() => stopping = Some(shut_down(&mut endpoint)),
            _ = int.recv(), if stopping.is_none() => stopping = Some(shut_down(&mut endpoint)),
            _ = hup.recv() => tracing::warn!("SIGHUP: iked does not reload its configuration yet (spmd reloads policies); restart iked to apply remote changes"),
            Ok(()) = restarted(&mut generation) => {
                // A new spmd: hand our port-4500 sockets to its datapath, and
                // give it the road warriors' policies it cannot know.
                if let Some(h) = &handoff {
                    h.connect(&sockets);
                }
                dynamic.reinstall(kernel).await;
            }
            ev = next_event(&mut events) => match ev {
                Some(ev) => policy::on_event(&mut endpoint, &config, &conf.listen, &ev),
                None => {
                    // The event stream ends only when the datapath is gone.
                    events = None;
                    tracing::error!("the kernel backend '{}' stopped; stopping iked", kernel.name());
                    fatal = Some("the kernel backend stopped (see the log)");
                    if stopping.is_none() {
                        stopping = Some(shut_down(&mut endpoint));
                    }
                }
            },
            Some(req) = requests.recv() => {
                let cx = ctl::Context {
                    started,
                    listen: &conf.listen,
                    config: &config,
                    backend,
                    sockets: &sockets,
                    handoff: handoff.as_ref(),
                };
                let _ = req.reply.send(ctl::answer(req.request, &mut endpoint, kernel, &cx).await);
            }
        }
    }
    hooks.finish().await;
    tracing::info!("iked stopped");
    match fatal {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    }
}

/// Starts an IKE SA to `peer` with the remote block whose `peers_ipaddr` it is.
fn initiate(
    endpoint: &mut Endpoint,
    config: &libracoon::config::Config,
    listen: &[SocketAddr],
    peer: std::net::IpAddr,
) -> anyhow::Result<()> {
    let Some(name) = endpoint
        .config_for(peer)
        .filter(|c| c.remote_addr == Some(peer))
        .map(|c| c.name.clone())
    else {
        bail!("-I {peer}: no remote block has peers_ipaddr {peer}");
    };
    let remote = conf::initiation_target(config, &name).context("remote has no peer address")?;
    start_negotiation(endpoint, listen, &name, remote)
        .map_err(|e| anyhow::anyhow!("-I {peer}: {e}"))
}

/// Starts an IKE SA under remote block `name` to `remote`, from our
/// listen address of the same family.
///
/// # Errors
/// A message for the operator when there is no such address or the core
/// refuses.
pub(crate) fn start_negotiation(
    endpoint: &mut Endpoint,
    listen: &[SocketAddr],
    name: &str,
    remote: SocketAddr,
) -> Result<(), String> {
    let local = listen
        .iter()
        .find(|l| l.is_ipv4() == remote.is_ipv4())
        .copied()
        .ok_or_else(|| format!("no listen address of {remote}'s family"))?;
    endpoint
        .initiate(Instant::now(), name, Path { local, remote })
        .map_err(|e| e.to_string())?;
    tracing::info!("initiating IKE SA with {remote} (remote {name})");
    Ok(())
}

/// Resolves when spmd's restart counter moves; never without spmd.
async fn restarted(
    generation: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match generation {
        Some(g) => g.changed().await,
        None => std::future::pending().await,
    }
}

/// The next kernel event, or never if the backend has no event stream.
async fn next_event(
    events: &mut Option<mpsc::UnboundedReceiver<pfkey::KernelEvent>>,
) -> Option<pfkey::KernelEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Deletes every IKE SA; returns when to give up waiting for answers.
fn shut_down(endpoint: &mut Endpoint) -> Instant {
    tracing::info!("stopping: deleting all IKE SAs");
    let now = Instant::now();
    let spis: Vec<u64> = endpoint
        .sas()
        .map(crate::ikev2::sa::IkeSa::local_spi)
        .collect();
    for spi in spis {
        endpoint.delete(now, spi);
    }
    now + SHUTDOWN_GRACE
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Carries out everything the core asked for, in order.
async fn drain(
    endpoint: &mut Endpoint,
    sockets: &udp::Sockets,
    kernel: &impl Kernel,
    control: &ControlServer,
    dynamic: &mut dynamic::DynamicPolicies,
    hooks: &mut hooks::Hooks,
) {
    while let Some((tag, out)) = endpoint.poll_output() {
        let mut hook = hooks.observe(&tag, &out, endpoint);
        match out {
            Output::Send { path, bytes } => sockets.send(path, &bytes).await,
            Output::NatKeepalive { path } => sockets.send_keepalive(path).await,
            Output::InstallChild(child) => {
                let specs = dynamic
                    .is_dynamic(&tag.name)
                    .then(|| (child.inbound.clone(), child.outbound.clone()));
                match install(&tag, *child, kernel).await {
                    Ok(r) => {
                        tell(control, &tag, r);
                        if let Some((i, o)) = specs {
                            dynamic.child_installed(&tag.name, &i, &o, kernel).await;
                        }
                    }
                    Err(r) => {
                        hook = None; // the CHILD SA never came up
                        tell(control, &tag, r);
                        endpoint.delete(Instant::now(), tag.spi);
                    }
                }
            }
            Output::DeleteChild { inbound, outbound } => {
                tell(control, &tag, remove(&tag, inbound, outbound, kernel).await);
                dynamic.child_deleted(outbound, kernel).await;
            }
            Output::Event(ev) => tell(control, &tag, report::describe(&tag, &ev)),
        }
        hooks.commit(hook);
    }
}

/// Logs a report and sends it to `racoonctl watch`.
fn tell(control: &ControlServer, tag: &SaTag, report: report::Report) {
    report.log();
    let sa = (tag.spi != 0).then(|| format!("{}[{:016x}]", tag.name, tag.spi));
    control.publish(EventRecord::new(
        std::time::SystemTime::now(),
        report.kind,
        sa,
        report.message,
    ));
}

/// Removes both SAs of a CHILD SA; reports what they carried.
async fn remove(
    tag: &SaTag,
    inbound: pfkey::SaId,
    outbound: pfkey::SaId,
    kernel: &impl Kernel,
) -> report::Report {
    let carried = async |id| {
        kernel.get_sa(id).await.map_or_else(
            |_| String::new(),
            |i| format!(" {} packets/{} bytes", i.counters.packets, i.counters.bytes),
        )
    };
    let (rx, tx) = (carried(inbound).await, carried(outbound).await);
    for id in [inbound, outbound] {
        match kernel.delete_sa(id).await {
            // Already gone: a hard lifetime expiry removed it.
            Ok(()) | Err(pfkey::KernelError::NotFound(_)) => {}
            Err(e) => tracing::warn!("{}: removing SA {:08x} failed: {e}", tag.name, id.spi),
        }
    }
    let msg = format!(
        "CHILD SA of {} deleted (SPIs in {:08x}{rx}, out {:08x}{tx})",
        tag.name, inbound.spi, outbound.spi
    );
    report::Report::info("child_deleted", msg)
}

/// Installs inbound first so the peer's first packet finds its SA.
///
/// # Errors
/// The report of a refusal: the caller deletes the IKE SA, which must not
/// look up when its traffic cannot flow.
async fn install(
    tag: &SaTag,
    child: crate::ikev2::output::ChildSa,
    kernel: &impl Kernel,
) -> Result<report::Report, report::Report> {
    let (spi_in, spi_out, mode) = (
        child.inbound.id.spi,
        child.outbound.id.spi,
        child.inbound.mode,
    );
    let encap = if child.outbound.encap.is_some() {
        "UDP-encapsulated "
    } else {
        ""
    };
    for sa in [child.inbound, child.outbound] {
        if let Err(e) = kernel.add_sa(sa).await {
            let msg = format!(
                "CHILD SA {}: kernel backend '{}' refused it: {e}; deleting the IKE SA",
                tag.name,
                kernel.name()
            );
            return Err(report::Report {
                level: report::Level::Error,
                kind: "child_failed",
                message: msg,
            });
        }
    }
    let traffic = if kernel.carries_traffic() {
        ""
    } else {
        " (recorded only: this backend carries no traffic)"
    };
    let msg = format!(
        "CHILD SA {} INSTALLED, {encap}{mode:?} ESP {} SPIs in {spi_in:08x} out {spi_out:08x}, {}{traffic}",
        tag.name, child.esp, child.ts
    );
    Ok(report::Report::info("child_installed", msg))
}
