//! The tokio shell: the kernel backend (hosting the userspace datapath
//! and its ESP-in-UDP hand-off when that is the backend), the control
//! socket, signals, and the policies' lifecycle (install at start, apply on
//! reload, remove at exit).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use libracoon::config::Config;
use libracoon::ctl::io::ControlServer;
use pfkey::Kernel;
use pfkey::handoff::{self, HandoffReceiver};
use pfkey::memory::MemoryKernel;
use pfkey::userspace::{UserspaceConfig, UserspaceKernel};
use tokio::signal::unix::{SignalKind, signal};

use crate::journal::Journal;
use crate::plan::{self, Plan};
use crate::state::State;

/// Start-up options (racoon2's flags plus racoon3's).
#[derive(Debug, Clone)]
pub struct Options {
    /// Configuration file (`-f`).
    pub config: PathBuf,
    /// Pid file, journal and sockets (`--run-dir`).
    pub run_dir: PathBuf,
    /// Which backend (`--kernel`).
    pub kernel: KernelChoice,
    /// TUN device of the userspace datapath (`--tun`).
    pub tun: String,
    /// Group whose members may use the control socket (`--ctl-group`).
    pub ctl_group: Option<u32>,
}

/// `--kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// XFRM where the kernel holds ESP states, else the userspace datapath.
    Auto,
    /// The userspace ESP datapath over TUN.
    Userspace,
    /// Records only, carries no traffic (tests).
    Memory,
    /// Linux XFRM netlink.
    Xfrm,
    /// PF_KEY v2.
    PfKey,
}

impl std::str::FromStr for KernelChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "userspace" => Ok(Self::Userspace),
            "memory" => Ok(Self::Memory),
            "xfrm" => Ok(Self::Xfrm),
            "pfkey" => Ok(Self::PfKey),
            other => Err(format!(
                "--kernel {other}: expected auto, xfrm, pfkey, userspace or memory"
            )),
        }
    }
}

/// The configuration and its plan, checked before the daemon detaches so
/// mistakes reach the operator's terminal.
#[derive(Debug)]
pub struct Prepared {
    config: Config,
    plan: Plan,
}

impl Prepared {
    /// Loads the file and plans the policies; logs warnings and notes.
    ///
    /// # Errors
    /// The first configuration error, with file:line:col or the block.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let config = load_config(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let plan = plan::plan(&config).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for n in &plan.notes {
            tracing::warn!("{n}");
        }
        Ok(Self { config, plan })
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, String> {
    let loaded = libracoon::config::load(path).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded.config)
}

/// Runs spmd until SIGTERM or SIGINT.
///
/// # Errors
/// Start-up failures naming what to fix; the backend dying under us.
pub async fn run(opts: Options, prepared: Prepared) -> anyhow::Result<()> {
    let _pid = libracoon::daemon::PidFile::create(&opts.run_dir, "spmd")
        .map_err(|e| anyhow::anyhow!(e))?;
    match opts.kernel {
        KernelChoice::Memory => {
            tracing::warn!(
                "kernel backend 'memory': policies and SAs are recorded but carry no traffic"
            );
            serve(&opts, prepared, &MemoryKernel::new()).await
        }
        KernelChoice::PfKey => {
            let kernel = pfkey::pfkeyv2::PfKeyKernel::open()
                .await
                .context("cannot open the PF_KEY socket")?;
            tracing::info!("kernel backend 'pfkey'");
            serve(&opts, prepared, kernel.as_ref()).await
        }
        KernelChoice::Auto if pfkey::xfrm::kernel_has_esp().await => {
            tracing::info!("the kernel holds ESP states: policies go into it over XFRM");
            serve_xfrm(&opts, prepared).await
        }
        KernelChoice::Xfrm => serve_xfrm(&opts, prepared).await,
        KernelChoice::Auto | KernelChoice::Userspace => {
            let cfg = UserspaceConfig {
                tun_name: opts.tun.clone(),
                mtu: 1400,
            };
            let kernel = UserspaceKernel::start(cfg).await.with_context(|| {
                format!(
                    "cannot start the userspace ESP datapath on TUN device {}",
                    opts.tun
                )
            })?;
            tracing::info!(
                "kernel backend 'userspace': ESP over TUN device {}",
                opts.tun
            );
            // Next to the control socket, where iked looks for it.
            let path = prepared
                .config
                .spmd_socket(&opts.run_dir)
                .with_file_name(handoff::SOCKET_NAME);
            let receiver = HandoffReceiver::bind(&path).with_context(|| {
                format!("cannot open the ESP hand-off socket {}", path.display())
            })?;
            let (a, e, d) = (kernel.clone(), kernel.clone(), kernel.clone());
            let handoff = tokio::spawn(receiver.run(
                move |local, sock, to_iked| attach(&a, local, sock, to_iked),
                move |local, remote, packet| e.handle_udp_esp(local, remote, packet),
                move |local, conn| {
                    tracing::info!("iked let go of {local}; the datapath closes its copy");
                    d.detach_nat_t_socket(local, conn);
                },
            ));
            let result = serve(&opts, prepared, kernel.as_ref()).await;
            handoff.abort();
            tracing::info!("datapath: {}", kernel.stats());
            result
        }
    }
}

/// Policies in the kernel over XFRM netlink.
async fn serve_xfrm(opts: &Options, prepared: Prepared) -> anyhow::Result<()> {
    let kernel = pfkey::xfrm::XfrmKernel::open().context("cannot open the XFRM netlink socket")?;
    tracing::info!("kernel backend 'xfrm'");
    serve(opts, prepared, kernel.as_ref()).await
}

/// Gives the datapath iked's port-4500 socket to send ESP-in-UDP from and
/// read it, IKE going back to iked over the hand-off connection; `false`
/// when the socket is unusable (iked then keeps reading it).
fn attach(
    kernel: &Arc<UserspaceKernel>,
    local: std::net::SocketAddr,
    sock: std::net::UdpSocket,
    to_iked: handoff::ToIked,
) -> bool {
    match sock
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UdpSocket::from_std(sock))
    {
        Ok(sock) => {
            tracing::info!("iked attached its ESP-in-UDP socket {local}; the datapath reads it");
            let conn = to_iked.connection();
            let sink: pfkey::userspace::NonEspSink = Arc::new(move |local, remote, datagram| {
                if let Err(e) = to_iked.send(local, remote, datagram) {
                    tracing::debug!("cannot pass a datagram from {remote} back to iked: {e}");
                }
            });
            kernel.attach_nat_t_socket(local, Arc::new(sock), sink, conn);
            true
        }
        Err(e) => {
            tracing::warn!("cannot use the socket iked attached for {local}: {e}");
            false
        }
    }
}

/// The event loop, for any backend.
async fn serve<K: Kernel>(opts: &Options, prepared: Prepared, kernel: &K) -> anyhow::Result<()> {
    let Prepared { config, plan } = prepared;
    let socket = config.spmd_socket(&opts.run_dir);
    let mut state = State::new(config, Journal::in_dir(&opts.run_dir));
    state.clean_up_leftovers(kernel).await;
    let mut events = kernel.take_events();
    let (control, mut requests) = ControlServer::bind_for(&socket, "spmd", opts.ctl_group)
        .await
        .with_context(|| format!("cannot open the control socket {}", socket.display()))?;
    state.install(kernel, &plan).await;
    tracing::info!(
        "spmd started: {} policies installed, control socket {}",
        plan.policies.len(),
        socket.display()
    );
    libracoon::daemon::notify_ready();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let config_path = opts.config.clone();
    let mut fatal = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match load_config(&config_path) {
                Ok(config) => match state.reload(kernel, config).await {
                    Ok(msg) => tracing::info!("SIGHUP: {msg}"),
                    Err(e) => tracing::error!("SIGHUP: reload refused, keeping the running configuration: {e}"),
                },
                Err(e) => tracing::error!("SIGHUP: reload refused, keeping the running configuration: {e}"),
            },
            ev = next_event(&mut events) => match ev {
                Some(ev) => state.route_event(ev, &control),
                None => {
                    tracing::error!("the kernel backend '{}' stopped; stopping spmd", kernel.name());
                    fatal = Some("the kernel backend stopped (see the log)");
                    break;
                }
            },
            Some(req) = requests.recv() => {
                let path = config_path.clone();
                let reload = async move || load_config(&path);
                let result = if matches!(req.request, libracoon::ctl::proto::Request::Kernel { .. })
                    && !req.privileged
                {
                    Err(libracoon::ctl::proto::CtlError::new(
                        libracoon::ctl::proto::ErrorCode::PermissionDenied,
                        "kernel operations are for the key-exchange daemons (root or spmd's user), not the control group",
                    ))
                } else {
                    state.answer(req.request, kernel, &control, reload).await
                };
                let _ = req.reply.send(result.into());
            }
        }
    }
    tracing::info!("stopping: removing spmd's policies");
    state.remove_all(kernel).await;
    drop(control);
    tracing::info!("spmd stopped");
    match fatal {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    }
}

async fn next_event(
    events: &mut Option<tokio::sync::mpsc::UnboundedReceiver<pfkey::KernelEvent>>,
) -> Option<pfkey::KernelEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
