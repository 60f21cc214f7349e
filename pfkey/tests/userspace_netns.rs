//! Two `UserspaceKernel`s in two network namespaces, joined by a veth pair,
//! carry `ping` both ways: plain ESP over IPv4 and IPv6 and ESP-in-UDP,
//! gateway tunnels between the loopback "LANs", transport mode and
//! host-to-host tunnels between the veth addresses themselves (which
//! relies on the sockets' `BYPASS_MARK`); a trap policy raises ACQUIRE;
//! losing the TUN device fails closed (no cleartext leaves); bulk TCP
//! (IPv4, IPv6, ESP-in-UDP) crosses the offloading TUN devices intact, GSO
//! split and GRO coalesced, with SA counters in inner packets.
//!
//! ```text
//! netns A                                     netns B
//! lo 198.51.100.1/32, 2001:db8:a::1/128       lo 203.0.113.1/32, 2001:db8:b::1/128
//! r3va 192.0.2.1/24, 2001:db8::1/64  <-----> r3vb 192.0.2.2/24, 2001:db8::2/64
//! TUN r3esp0 (datapath A)                     TUN r3esp0 (datapath B)
//! ```
//!
//! Each kernel runs on its own thread, which `setns`es into its namespace
//! before building a tokio runtime, so the TUN device, sockets and `ip`
//! child processes all live there. The test plays iked: it installs
//! matching SA pairs with the same keys and, for NAT-T, owns the port-4500
//! sockets and attaches them: the datapath reads them and passes IKE back.
//!
//! Needs root, `ip` and `ping`; `#[ignore]`d so `cargo test` stays
//! hermetic (run with `cargo nextest run -p pfkey --run-ignored all`).

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use pfkey::userspace::{
    BYPASS_MARK, DatapathStats, DropReason, Lifetime, UserspaceConfig, UserspaceKernel, mark_socket,
};
use pfkey::{
    EspAuth, EspEncr, IpsecMode, Kernel, KernelError, KernelEvent, PolicyAction, PolicySpec,
    SaDirection, SaId, SaSpec, Selector, UdpEncap,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: String) -> Self {
        if std::path::Path::new("/run/netns").join(&name).exists() {
            // Left by a crashed run of a process with the same PID.
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
        run(&["ip", "netns", "add", &name]);
        let ns = Self(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut argv = vec!["ip", "-n", &self.0];
        argv.extend_from_slice(args);
        run(&argv)
    }

    fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip netns exec runs")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e} (needs root and iproute2)"));
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The two-host lab of the module docs; `tag` keeps the namespace names
/// of tests running in one process apart.
fn lab(tag: &str) -> (Netns, Netns) {
    let pid = std::process::id();
    let a = Netns::create(format!("r3pk{pid}{tag}a"));
    let b = Netns::create(format!("r3pk{pid}{tag}b"));
    run(&[
        "ip", "link", "add", "r3va", "netns", &a.0, "type", "veth", "peer", "name", "r3vb",
        "netns", &b.0,
    ]);
    for (ns, dev, v4, v6, lan4, lan6) in [
        (
            &a,
            "r3va",
            "192.0.2.1/24",
            "2001:db8::1/64",
            "198.51.100.1/32",
            "2001:db8:a::1/128",
        ),
        (
            &b,
            "r3vb",
            "192.0.2.2/24",
            "2001:db8::2/64",
            "203.0.113.1/32",
            "2001:db8:b::1/128",
        ),
    ] {
        ns.ip(&["addr", "add", v4, "dev", dev]);
        ns.ip(&["addr", "add", v6, "dev", dev, "nodad"]);
        ns.ip(&["addr", "add", lan4, "dev", "lo"]);
        ns.ip(&["addr", "add", lan6, "dev", "lo", "nodad"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    (a, b)
}

/// Requests from the test thread to a host thread.
enum Req {
    Add(Box<SaSpec>, oneshot::Sender<Result<(), KernelError>>),
    Delete(SaId, oneshot::Sender<Result<(), KernelError>>),
    AddPolicy(Box<PolicySpec>, oneshot::Sender<Result<(), KernelError>>),
    SetLifetime(SaId, Lifetime, oneshot::Sender<Result<(), KernelError>>),
    /// Send a datagram from the port-4500 socket (as iked sends IKE).
    SendNatT(SocketAddr, Vec<u8>, oneshot::Sender<()>),
    DeletePolicy(Box<PolicySpec>, oneshot::Sender<Result<(), KernelError>>),
    Stats(oneshot::Sender<DatapathStats>),
}

/// A `UserspaceKernel` on a thread inside a namespace, with a port-4500
/// socket the way iked would own it.
struct Host {
    tx: Option<mpsc::UnboundedSender<Req>>,
    /// The kernel's event stream (`take_events`), forwarded.
    events: std_mpsc::Receiver<KernelEvent>,
    /// IKE datagrams (behind the non-ESP marker) read on port 4500.
    ike: std_mpsc::Receiver<Vec<u8>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Host {
    fn start(ns: &Netns, nat_t: SocketAddr) -> Self {
        let path = format!("/run/netns/{}", ns.0);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let (ev_tx, events) = std_mpsc::channel();
        let (ike_tx, ike) = std_mpsc::channel();
        let thread = thread::spawn(move || {
            let fd = File::open(&path).expect("netns file");
            setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(nat_t, rx, ready_tx, (ev_tx, ike_tx)));
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("host thread starts")
            .expect("datapath starts");
        Self {
            tx: Some(tx),
            events,
            ike,
            thread: Some(thread),
        }
    }

    fn call<T>(&self, req: impl FnOnce(oneshot::Sender<T>) -> Req) -> T {
        let (tx, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .expect("running")
            .send(req(tx))
            .expect("host alive");
        rx.blocking_recv().expect("host answers")
    }

    fn add(&self, sa: SaSpec) -> Result<(), KernelError> {
        self.call(|tx| Req::Add(Box::new(sa), tx))
    }

    fn delete(&self, id: SaId) -> Result<(), KernelError> {
        self.call(|tx| Req::Delete(id, tx))
    }

    fn add_policy(&self, p: &PolicySpec) -> Result<(), KernelError> {
        self.call(|tx| Req::AddPolicy(Box::new(p.clone()), tx))
    }

    fn delete_policy(&self, p: &PolicySpec) -> Result<(), KernelError> {
        self.call(|tx| Req::DeletePolicy(Box::new(p.clone()), tx))
    }

    fn stats(&self) -> DatapathStats {
        self.call(Req::Stats)
    }

    fn set_lifetime(&self, id: SaId, lt: Lifetime) -> Result<(), KernelError> {
        self.call(|tx| Req::SetLifetime(id, lt, tx))
    }

    fn send_nat_t(&self, to: &str, data: &[u8]) {
        let to = SocketAddr::new(ip(to), 4500);
        self.call(|tx| Req::SendNatT(to, data.to_vec(), tx));
    }

    /// The events raised so far.
    fn drain_events(&self) -> Vec<KernelEvent> {
        self.events.try_iter().collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    nat_t: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Req>,
    ready: std_mpsc::Sender<Result<(), String>>,
    (events, ike): (std_mpsc::Sender<KernelEvent>, std_mpsc::Sender<Vec<u8>>),
) {
    let cfg = UserspaceConfig {
        tun_name: "r3esp0".into(),
        mtu: 1400,
    };
    let kernel = match UserspaceKernel::start(cfg).await {
        Ok(k) => k,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let sock = Arc::new(UdpSocket::bind(nat_t).await.expect("bind 4500"));
    // IKE comes back from the datapath, which reads the socket itself.
    let ike = std::sync::Mutex::new(ike);
    let to_iked: pfkey::userspace::NonEspSink = Arc::new(move |_local, _remote, datagram| {
        if let Some(msg) = datagram.strip_prefix(&[0, 0, 0, 0]) {
            let _ = ike.lock().unwrap().send(msg.to_vec());
        }
    });
    kernel.attach_nat_t_socket(nat_t, sock.clone(), to_iked, 1);
    let mut stream = kernel.take_events().expect("first take");
    assert!(kernel.take_events().is_none(), "the stream is taken once");
    let forward = tokio::spawn(async move {
        while let Some(ev) = stream.recv().await {
            let _ = events.send(ev);
        }
    });
    let _ = ready.send(Ok(()));
    while let Some(req) = rx.recv().await {
        match req {
            Req::Add(sa, reply) => {
                let _ = reply.send(kernel.add_sa(*sa).await);
            }
            Req::Delete(id, reply) => {
                let _ = reply.send(kernel.delete_sa(id).await);
            }
            Req::AddPolicy(p, reply) => {
                let _ = reply.send(kernel.add_policy(*p).await);
            }
            Req::DeletePolicy(p, reply) => {
                let _ = reply.send(kernel.delete_policy(p.selector, p.direction).await);
            }
            Req::SetLifetime(id, lt, reply) => {
                let _ = reply.send(kernel.set_lifetime(id, lt).await);
            }
            Req::SendNatT(to, data, reply) => {
                sock.send_to(&data, to).await.expect("send from 4500");
                let _ = reply.send(());
            }
            Req::Stats(reply) => {
                let _ = reply.send(kernel.stats());
            }
        }
    }
    forward.abort();
    let _ = forward.await;
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn range(lo: &str, hi: &str) -> (IpAddr, IpAddr) {
    (ip(lo), ip(hi))
}

/// One direction's SA: `from` -> `to` (outer), protecting `src_lan` ->
/// `dst_lan`.
#[allow(clippy::too_many_arguments)]
fn sa(
    direction: SaDirection,
    spi: u32,
    from: &str,
    to: &str,
    lans: ((IpAddr, IpAddr), (IpAddr, IpAddr)),
    suite: Suite,
    encap: Option<UdpEncap>,
) -> SaSpec {
    let (encr, auth, ek, ak) = suite.keys(spi);
    SaSpec {
        id: SaId { dst: ip(to), spi },
        src: ip(from),
        direction,
        mode: IpsecMode::Tunnel,
        encr,
        encr_key: Zeroizing::new(ek),
        auth,
        auth_key: Zeroizing::new(ak),
        encap,
        selectors: vec![Selector {
            src: lans.0,
            dst: lans.1,
            proto: 0,
            src_port: 0,
            dst_port: 0,
        }],
        reqid: spi,
        esn: false,
        replay_window: 0,
        lifetime: Default::default(),
    }
}

#[derive(Clone, Copy)]
enum Suite {
    Gcm128,
    CbcSha256,
    ChaCha,
}

impl Suite {
    fn keys(self, spi: u32) -> (EspEncr, Option<EspAuth>, Vec<u8>, Vec<u8>) {
        let bytes = |n: usize| {
            (0..n)
                .map(|i| (spi as usize * 7 + i) as u8)
                .collect::<Vec<_>>()
        };
        match self {
            Self::Gcm128 => (
                EspEncr {
                    id: 20,
                    key_bits: 128,
                },
                None,
                bytes(20),
                Vec::new(),
            ),
            Self::CbcSha256 => (
                EspEncr {
                    id: 12,
                    key_bits: 256,
                },
                Some(EspAuth { id: 12 }),
                bytes(32),
                bytes(32),
            ),
            Self::ChaCha => (
                EspEncr {
                    id: 28,
                    key_bits: 256,
                },
                None,
                bytes(36),
                Vec::new(),
            ),
        }
    }
}

/// The four SAs of one child SA pair: A's outbound/inbound and B's mirror.
struct Pair {
    a: [SaSpec; 2],
    b: [SaSpec; 2],
}

fn pair(
    spis: (u32, u32),
    outer: (&str, &str),
    lans: ((IpAddr, IpAddr), (IpAddr, IpAddr)),
    suite: Suite,
    encap: Option<UdpEncap>,
) -> Pair {
    let (a_out, b_out) = spis;
    let (oa, ob) = outer;
    let (la, lb) = lans;
    use SaDirection::{Inbound, Outbound};
    Pair {
        a: [
            sa(Outbound, a_out, oa, ob, (la, lb), suite, encap),
            sa(Inbound, b_out, ob, oa, (lb, la), suite, encap),
        ],
        b: [
            sa(Outbound, b_out, ob, oa, (lb, la), suite, encap),
            sa(Inbound, a_out, oa, ob, (la, lb), suite, encap),
        ],
    }
}

fn install(a: &Host, b: &Host, p: &Pair) {
    for s in &p.a {
        a.add(s.clone()).expect("A installs");
    }
    for s in &p.b {
        b.add(s.clone()).expect("B installs");
    }
}

fn remove(a: &Host, b: &Host, p: &Pair) {
    for s in &p.a {
        a.delete(s.id).expect("A deletes");
    }
    for s in &p.b {
        b.delete(s.id).expect("B deletes");
    }
}

fn ping(ns: &Netns, v6: bool, from: &str, to: &str) {
    let mut argv = vec!["ping"];
    if v6 {
        argv.push("-6");
    }
    argv.extend(["-c", "3", "-i", "0.2", "-W", "2", "-I", from, to]);
    let out = ns.exec(&argv);
    assert!(
        out.status.success(),
        "{argv:?} in {} failed:\n{}{}",
        ns.0,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `Udp: OutDatagrams` of the namespace (/proc/net/snmp).
fn udp_out_datagrams(ns: &Netns) -> u64 {
    let out = ns.exec(&["cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().expect("header"), udp.next().expect("values"));
    let col = names
        .split_whitespace()
        .position(|n| n == "OutDatagrams")
        .expect("OutDatagrams column");
    values
        .split_whitespace()
        .nth(col)
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

/// Both directions' pings went through every SA of `p`, and nothing was
/// dropped as forged, replayed or unknown.
fn check_counters(a: &Host, b: &Host, p: &Pair) {
    let (sa, sb) = (a.stats(), b.stats());
    for (stats, specs) in [(&sa, &p.a), (&sb, &p.b)] {
        for s in specs {
            let line = stats.sa(s.id).expect("SA listed");
            assert!(line.packets >= 6, "{stats}");
            assert!(line.bytes >= 6 * 84, "{stats}");
        }
        for r in [
            DropReason::Integrity,
            DropReason::Replay,
            DropReason::BadSpi,
        ] {
            assert_eq!(stats.dropped(r), 0, "{stats}");
        }
    }
}

#[test]
#[ignore = "needs root: creates network namespaces, TUN devices and raw sockets"]
fn ping_crosses_two_userspace_datapaths_plain_and_udp_encapsulated() {
    let (na, nb) = lab("p");
    let a = Host::start(&na, "192.0.2.1:4500".parse().expect("addr"));
    let b = Host::start(&nb, "192.0.2.2:4500".parse().expect("addr"));
    let lans4 = (
        range("198.51.100.0", "198.51.100.255"),
        range("203.0.113.0", "203.0.113.255"),
    );

    // 1. Plain ESP (IP protocol 50), AES-GCM-16-128.
    let plain = pair(
        (0x1001, 0x2001),
        ("192.0.2.1", "192.0.2.2"),
        lans4,
        Suite::Gcm128,
        None,
    );
    install(&a, &b, &plain);
    let routes = na.ip(&["route", "show", "table", "3948"]);
    assert!(routes.contains("203.0.113.0/24 dev r3esp0"), "{routes}");
    assert!(routes.contains("src 198.51.100.1"), "{routes}");
    ping(&na, false, "198.51.100.1", "203.0.113.1");
    ping(&nb, false, "203.0.113.1", "198.51.100.1");
    check_counters(&a, &b, &plain);
    eprintln!("plain ESP, A:\n{}\nB:\n{}", a.stats(), b.stats());
    remove(&a, &b, &plain);
    assert_eq!(na.ip(&["route", "show", "table", "3948"]), "");

    // 2. ESP-in-UDP (RFC 3948) through the test's port-4500 sockets,
    //    AES-CBC-256 + HMAC-SHA2-256-128.
    let nat_t = Some(UdpEncap {
        sport: 4500,
        dport: 4500,
    });
    let udp = pair(
        (0x1002, 0x2002),
        ("192.0.2.1", "192.0.2.2"),
        lans4,
        Suite::CbcSha256,
        nat_t,
    );
    install(&a, &b, &udp);
    let udp_out = udp_out_datagrams(&na);
    ping(&na, false, "198.51.100.1", "203.0.113.1");
    ping(&nb, false, "203.0.113.1", "198.51.100.1");
    check_counters(&a, &b, &udp);
    // The ESP left A as UDP datagrams (6: three requests, three replies).
    assert!(udp_out_datagrams(&na) >= udp_out + 6);
    eprintln!("ESP-in-UDP, A:\n{}\nB:\n{}", a.stats(), b.stats());
    remove(&a, &b, &udp);

    // 3. IPv6 inside and outside, plain ESP, ChaCha20-Poly1305.
    let lans6 = (
        range("2001:db8:a::", "2001:db8:a::ffff"),
        range("2001:db8:b::", "2001:db8:b::ffff"),
    );
    let v6 = pair(
        (0x1003, 0x2003),
        ("2001:db8::1", "2001:db8::2"),
        lans6,
        Suite::ChaCha,
        None,
    );
    install(&a, &b, &v6);
    ping(&na, true, "2001:db8:a::1", "2001:db8:b::1");
    ping(&nb, true, "2001:db8:b::1", "2001:db8:a::1");
    check_counters(&a, &b, &v6);
    eprintln!("IPv6, A:\n{}\nB:\n{}", a.stats(), b.stats());
    remove(&a, &b, &v6);

    // With the SAs gone, so are the routes: nothing carries the traffic.
    let out = na.exec(&[
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "-I",
        "198.51.100.1",
        "203.0.113.1",
    ]);
    assert!(!out.status.success(), "no route without an SA");

    drop((a, b));
    // The routing rule leaves with the kernel object.
    let rules = na.ip(&["rule", "show"]);
    assert!(!rules.contains("3948"), "{rules}");
}

/// `ping` that is expected to fail (its packets are dropped).
fn ping_fails(ns: &Netns, from: &str, to: &str) {
    let out = ns.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", from, to]);
    assert!(!out.status.success(), "ping {from} -> {to} got through");
}

#[test]
#[ignore = "needs root: creates network namespaces, TUN devices and raw sockets"]
fn trap_policy_raises_one_acquire_and_traffic_flows_once_sas_are_in() {
    let (na, nb) = lab("t");
    let a = Host::start(&na, "192.0.2.1:4500".parse().expect("addr"));
    let b = Host::start(&nb, "192.0.2.2:4500".parse().expect("addr"));
    let lans4 = (
        range("198.51.100.0", "198.51.100.255"),
        range("203.0.113.0", "203.0.113.255"),
    );
    let sas = pair(
        (0x1005, 0x2005),
        ("192.0.2.1", "192.0.2.2"),
        lans4,
        Suite::Gcm128,
        None,
    );
    let reqid = sas.a[0].reqid;
    let policy = PolicySpec {
        selector: Selector {
            src: lans4.0,
            dst: lans4.1,
            proto: 0,
            src_port: 0,
            dst_port: 0,
        },
        direction: SaDirection::Outbound,
        action: PolicyAction::Protect {
            reqid,
            mode: IpsecMode::Tunnel,
        },
        tunnel: Some((ip("192.0.2.1"), ip("192.0.2.2"))),
    };

    // 1. Only the policy: its destination is routed into the TUN device
    //    at once, and three pings within a second raise one ACQUIRE.
    a.add_policy(&policy).expect("policy installs");
    let routes = na.ip(&["route", "show", "table", "3948"]);
    assert!(routes.contains("203.0.113.0/24 dev r3esp0"), "{routes}");
    assert!(routes.contains("src 198.51.100.1"), "{routes}");
    ping_fails(&na, "198.51.100.1", "203.0.113.1");
    let acquire = KernelEvent::Acquire {
        reqid,
        src: ip("198.51.100.1"),
        dst: ip("203.0.113.1"),
        proto: 1,
    };
    assert_eq!(a.drain_events(), std::slice::from_ref(&acquire));
    // One drop per echo request (the TUN device's own IPv6 router
    // solicitations, covered by no policy, count as `no-sa`).
    assert_eq!(a.stats().dropped(DropReason::Acquire), 3, "{}", a.stats());

    // 2. The key exchange "completes": pings pass, no further ACQUIRE;
    //    a soft lifetime crossed arrives on the same stream as an Expire.
    install(&a, &b, &sas);
    let soft = Lifetime {
        soft_packets: Some(4),
        ..Lifetime::default()
    };
    a.set_lifetime(sas.a[0].id, soft).expect("SA installed");
    ping(&na, false, "198.51.100.1", "203.0.113.1");
    ping(&nb, false, "203.0.113.1", "198.51.100.1");
    check_counters(&a, &b, &sas);
    let expire = KernelEvent::Expire {
        id: sas.a[0].id,
        hard: false,
    };
    assert_eq!(a.drain_events(), [expire]);

    // 3. The SAs go, the policy (and its route) stays: the next packet
    //    asks for new SAs at once.
    remove(&a, &b, &sas);
    let routes = na.ip(&["route", "show", "table", "3948"]);
    assert!(routes.contains("203.0.113.0/24 dev r3esp0"), "{routes}");
    ping_fails(&na, "198.51.100.1", "203.0.113.1");
    assert_eq!(a.drain_events(), [acquire]);

    // 4. Without the policy the route is gone too.
    a.delete_policy(&policy).expect("policy removed");
    assert_eq!(na.ip(&["route", "show", "table", "3948"]), "");
    assert!(a.delete_policy(&policy).is_err(), "already gone");
    eprintln!("trap policy, A:\n{}", a.stats());
}

/// Every SA of `p` switched to `mode`.
fn with_mode(mut p: Pair, mode: IpsecMode) -> Pair {
    for s in p.a.iter_mut().chain(p.b.iter_mut()) {
        s.mode = mode;
    }
    p
}

/// Runs `f` on a thread inside `ns` (sockets it opens live there).
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.0);
    thread::spawn(move || {
        let fd = File::open(&path).expect("netns file");
        setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// Packets sent so far by the outbound SA of `p` on A.
fn out_packets(a: &Host, p: &Pair) -> u64 {
    a.stats().sa(p.a[0].id).expect("SA listed").packets
}

/// A UDP datagram from 192.0.2.1 to 192.0.2.2:5001, from a socket marked
/// with `BYPASS_MARK` or not; returns what B received.
fn udp_probe(na: &Netns, nb: &Netns, marked: bool) -> Vec<u8> {
    let (bound_tx, bound_rx) = std_mpsc::channel();
    let receiver = {
        let path = format!("/run/netns/{}", nb.0);
        thread::spawn(move || {
            let fd = File::open(&path).expect("netns file");
            setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = std::net::UdpSocket::bind("192.0.2.2:5001").expect("bind");
            sock.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            bound_tx.send(()).expect("test waits");
            let mut buf = [0u8; 64];
            let n = sock.recv(&mut buf).expect("the probe arrives");
            buf[..n].to_vec()
        })
    };
    bound_rx.recv().expect("receiver bound");
    in_netns(na, move || {
        let sock = std::net::UdpSocket::bind("192.0.2.1:0").expect("bind");
        if marked {
            mark_socket(&sock).expect("SO_MARK");
        }
        let msg: &[u8] = if marked { b"marked" } else { b"plain" };
        sock.send_to(msg, "192.0.2.2:5001").expect("send");
    });
    receiver.join().expect("receiver")
}

#[test]
#[ignore = "needs root: creates network namespaces, TUN devices and raw sockets"]
fn transport_mode_and_host_to_host_tunnels_between_the_veth_addresses() {
    let (na, nb) = lab("h");
    let a = Host::start(&na, "192.0.2.1:4500".parse().expect("addr"));
    let b = Host::start(&nb, "192.0.2.2:4500".parse().expect("addr"));
    let rules = na.ip(&["rule", "show"]);
    assert!(
        rules.contains(&format!("not from all fwmark {BYPASS_MARK:#x} lookup 3948")),
        "{rules}"
    );
    let hosts4 = (
        range("192.0.2.1", "192.0.2.1"),
        range("192.0.2.2", "192.0.2.2"),
    );
    let hosts6 = (
        range("2001:db8::1", "2001:db8::1"),
        range("2001:db8::2", "2001:db8::2"),
    );
    let outer4 = ("192.0.2.1", "192.0.2.2");

    // 1. Transport mode, IPv4, plain ESP: the peer itself is routed into
    //    the TUN device, the marked raw ESP socket is not.
    let t4 = with_mode(
        pair((0x1011, 0x2011), outer4, hosts4, Suite::Gcm128, None),
        IpsecMode::Transport,
    );
    install(&a, &b, &t4);
    let routes = na.ip(&["route", "show", "table", "3948"]);
    assert!(routes.contains("192.0.2.2 dev r3esp0"), "{routes}");
    assert!(routes.contains("src 192.0.2.1"), "{routes}");
    ping(&na, false, "192.0.2.1", "192.0.2.2");
    ping(&nb, false, "192.0.2.2", "192.0.2.1");
    check_counters(&a, &b, &t4);
    eprintln!("transport IPv4, A:\n{}\nB:\n{}", a.stats(), b.stats());
    remove(&a, &b, &t4);

    // 2. Transport mode, IPv6, plain ESP.
    let t6 = with_mode(
        pair(
            (0x1012, 0x2012),
            ("2001:db8::1", "2001:db8::2"),
            hosts6,
            Suite::ChaCha,
            None,
        ),
        IpsecMode::Transport,
    );
    install(&a, &b, &t6);
    ping(&na, true, "2001:db8::1", "2001:db8::2");
    ping(&nb, true, "2001:db8::2", "2001:db8::1");
    check_counters(&a, &b, &t6);
    eprintln!("transport IPv6, A:\n{}\nB:\n{}", a.stats(), b.stats());
    remove(&a, &b, &t6);

    // 3. Transport mode over ESP-in-UDP is refused: the NAT-OA checksum
    //    fix-up of RFC 3948 §3.1.2 is not implemented.
    let nat_t = Some(UdpEncap {
        sport: 4500,
        dport: 4500,
    });
    let tu = with_mode(
        pair((0x1013, 0x2013), outer4, hosts4, Suite::CbcSha256, nat_t),
        IpsecMode::Transport,
    );
    for s in &tu.a {
        match a.add(s.clone()) {
            Err(KernelError::Unsupported { what, .. }) => {
                assert!(what.contains("NAT-OA"), "{what}");
            }
            other => panic!("transport mode over UDP: {other:?}"),
        }
    }
    assert_eq!(na.ip(&["route", "show", "table", "3948"]), "");

    // 4. A host-to-host tunnel (tunnel mode, selectors = the outer
    //    addresses).
    let h2h = pair((0x1014, 0x2014), outer4, hosts4, Suite::CbcSha256, None);
    install(&a, &b, &h2h);
    ping(&na, false, "192.0.2.1", "192.0.2.2");
    ping(&nb, false, "192.0.2.2", "192.0.2.1");
    check_counters(&a, &b, &h2h);
    eprintln!("host-to-host tunnel, A:\n{}\nB:\n{}", a.stats(), b.stats());

    // 5. Which traffic to the peer bypasses the SA: an unmarked UDP socket
    //    goes through it (one more ESP packet), a marked one leaves
    //    through the veth unprotected, and so does IKE from the attached
    //    port-4500 socket.
    let before = out_packets(&a, &h2h);
    assert_eq!(udp_probe(&na, &nb, false), b"plain");
    assert_eq!(out_packets(&a, &h2h), before + 1, "unmarked: through ESP");
    assert_eq!(udp_probe(&na, &nb, true), b"marked");
    assert_eq!(out_packets(&a, &h2h), before + 1, "marked: around ESP");
    a.send_nat_t("192.0.2.2", b"\0\0\0\0IKE_SA_INIT");
    let got = b
        .ike
        .recv_timeout(Duration::from_secs(2))
        .expect("IKE reaches B's port 4500");
    assert_eq!(got, b"IKE_SA_INIT");
    assert_eq!(out_packets(&a, &h2h), before + 1, "IKE: around ESP");
    remove(&a, &b, &h2h);
    assert_eq!(na.ip(&["route", "show", "table", "3948"]), "");
}

/// `Icmp: InEchos` of the namespace (/proc/net/snmp): echo requests that
/// reached it.
fn in_echos(ns: &Netns) -> u64 {
    let out = ns.exec(&["cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().expect("header"), icmp.next().expect("values"));
    let col = names
        .split_whitespace()
        .position(|n| n == "InEchos")
        .expect("InEchos column");
    values
        .split_whitespace()
        .nth(col)
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

#[test]
#[ignore = "needs root: creates network namespaces, TUN devices and raw sockets"]
fn losing_the_tun_device_fails_closed_and_ends_the_event_stream() {
    let (na, nb) = lab("k");
    let a = Host::start(&na, "192.0.2.1:4500".parse().expect("addr"));
    let b = Host::start(&nb, "192.0.2.2:4500".parse().expect("addr"));
    let lans4 = (
        range("198.51.100.0", "198.51.100.255"),
        range("203.0.113.0", "203.0.113.255"),
    );
    // A cleartext path exists in `main`: B's LAN via the veth.
    na.ip(&["route", "add", "203.0.113.0/24", "via", "192.0.2.2"]);
    nb.ip(&["route", "add", "198.51.100.0/24", "via", "192.0.2.1"]);
    let sas = pair(
        (0x1021, 0x2021),
        ("192.0.2.1", "192.0.2.2"),
        lans4,
        Suite::Gcm128,
        None,
    );
    install(&a, &b, &sas);
    let routes = na.ip(&["route", "show", "table", "3948"]);
    assert!(routes.contains("203.0.113.0/24 dev r3esp0"), "{routes}");
    assert!(
        routes.contains("blackhole 203.0.113.0/24 metric 4294967295"),
        "{routes}"
    );
    ping(&na, false, "198.51.100.1", "203.0.113.1");

    // The TUN device goes away under the running datapath.
    na.ip(&["link", "del", "r3esp0"]);
    match a.events.recv_timeout(Duration::from_secs(5)) {
        Err(std_mpsc::RecvTimeoutError::Disconnected) => {}
        other => panic!("the event stream should end: {other:?}"),
    }
    assert!(a.delete(sas.a[0].id).is_err(), "the datapath is gone");
    let routes = na.ip(&["route", "show", "table", "3948"]);
    assert!(!routes.contains("r3esp0"), "{routes}");
    assert!(routes.contains("blackhole 203.0.113.0/24"), "{routes}");

    // Protected traffic meets the blackhole, not the veth.
    let echos = in_echos(&nb);
    ping_fails(&na, "198.51.100.1", "203.0.113.1");
    assert_eq!(in_echos(&nb), echos, "echo requests left in cleartext");

    // The check can see a leak: without the rule, the same requests go out
    // of the veth in cleartext (B's replies still go into B's SA, so the
    // ping itself fails).
    na.ip(&["rule", "del", "pref", "3948"]);
    let _ = na.exec(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        "198.51.100.1",
        "203.0.113.1",
    ]);
    assert!(in_echos(&nb) >= echos + 3, "the leak check sees nothing");
}

/// Bytes of the bulk TCP transfer: many GSO super-packets each way.
const BULK: usize = 8 << 20;

/// Sends [`BULK`] bytes of a pattern over TCP from `from` (in `na`) to
/// `to`:`port` (in `nb`) and checks that all of them arrive intact.
fn tcp_bulk(na: &Netns, nb: &Netns, from: &str, to: &str, port: u16) {
    let (bound_tx, bound_rx) = std_mpsc::channel();
    let listen = SocketAddr::new(ip(to), port);
    let receiver = {
        let path = format!("/run/netns/{}", nb.0);
        thread::spawn(move || {
            let fd = File::open(&path).expect("netns file");
            setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
            let l = std::net::TcpListener::bind(listen).expect("bind");
            bound_tx.send(()).expect("test waits");
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut got = Vec::with_capacity(BULK);
            std::io::Read::read_to_end(&mut c, &mut got).expect("the transfer completes");
            got
        })
    };
    bound_rx.recv().expect("receiver bound");
    let from = SocketAddr::new(ip(from), 0);
    in_netns(na, move || {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(from),
            socket2::Type::STREAM,
            None,
        )
        .expect("socket");
        sock.bind(&from.into()).expect("bind");
        sock.connect_timeout(&listen.into(), Duration::from_secs(5))
            .expect("connect through the tunnel");
        let mut c = std::net::TcpStream::from(sock);
        let data: Vec<u8> = (0..BULK).map(|i| (i % 251) as u8).collect();
        std::io::Write::write_all(&mut c, &data).expect("send");
    });
    let got = receiver.join().expect("receiver");
    assert_eq!(got.len(), BULK);
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "the stream arrives intact"
    );
}

#[test]
#[ignore = "needs root: creates network namespaces, TUN devices and raw sockets"]
fn bulk_tcp_crosses_the_offloading_tun_intact_and_counts_inner_packets() {
    let (na, nb) = lab("g");
    let a = Host::start(&na, "192.0.2.1:4500".parse().expect("addr"));
    let b = Host::start(&nb, "192.0.2.2:4500".parse().expect("addr"));
    let cases = [
        (
            (0x1011, 0x2011),
            ("192.0.2.1", "192.0.2.2"),
            (
                range("198.51.100.0", "198.51.100.255"),
                range("203.0.113.0", "203.0.113.255"),
            ),
            ("198.51.100.1", "203.0.113.1"),
            None,
        ),
        (
            (0x1012, 0x2012),
            ("2001:db8::1", "2001:db8::2"),
            (
                range("2001:db8:a::", "2001:db8:a::ffff"),
                range("2001:db8:b::", "2001:db8:b::ffff"),
            ),
            ("2001:db8:a::1", "2001:db8:b::1"),
            None,
        ),
        (
            (0x1013, 0x2013),
            ("192.0.2.1", "192.0.2.2"),
            (
                range("198.51.100.0", "198.51.100.255"),
                range("203.0.113.0", "203.0.113.255"),
            ),
            ("198.51.100.1", "203.0.113.1"),
            Some(UdpEncap {
                sport: 4500,
                dport: 4500,
            }),
        ),
    ];
    for (spis, outer, lans, (from, to), encap) in cases {
        let p = pair(spis, outer, lans, Suite::Gcm128, encap);
        install(&a, &b, &p);
        tcp_bulk(&na, &nb, from, to, 5201);
        tcp_bulk(&nb, &na, to, from, 5202);
        // Counted per inner packet (at most the 1400-byte MTU), not per
        // GSO super-packet read from the TUN device.
        for (host, s) in [(&a, &p.a[0]), (&b, &p.b[0])] {
            let stats = host.stats();
            let line = stats.sa(s.id).expect("SA listed");
            assert!(line.packets >= (BULK / 1400) as u64, "{stats}");
            for r in [
                DropReason::Integrity,
                DropReason::Replay,
                DropReason::BadSpi,
            ] {
                assert_eq!(stats.dropped(r), 0, "{stats}");
            }
        }
        eprintln!(
            "bulk TCP {from} <-> {to}, A:\n{}\nB:\n{}",
            a.stats(),
            b.stats()
        );
        remove(&a, &b, &p);
    }
}

#[test]
#[ignore = "needs root: creates network namespaces, TUN devices and raw sockets"]
fn esp_packets_too_big_for_the_outer_link_leave_fragmented() {
    let (na, nb) = lab("f");
    // The outer link is narrower than the tunnel's 1400-byte MTU allows
    // for: the kernel, which writes the outer header, fragments the ESP
    // packets.
    na.ip(&["link", "set", "r3va", "mtu", "1280"]);
    nb.ip(&["link", "set", "r3vb", "mtu", "1280"]);
    let a = Host::start(&na, "192.0.2.1:4500".parse().expect("addr"));
    let b = Host::start(&nb, "192.0.2.2:4500".parse().expect("addr"));
    let plain = pair(
        (0x1011, 0x2011),
        ("192.0.2.1", "192.0.2.2"),
        (
            range("198.51.100.0", "198.51.100.255"),
            range("203.0.113.0", "203.0.113.255"),
        ),
        Suite::Gcm128,
        None,
    );
    install(&a, &b, &plain);
    let argv = [
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        "-M",
        "dont",
        "-s",
        "1300",
        "-I",
        "198.51.100.1",
        "203.0.113.1",
    ];
    let out = na.exec(&argv);
    assert!(
        out.status.success(),
        "{argv:?} failed:\n{}{}\nA:\n{}\nB:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        a.stats(),
        b.stats()
    );
    // Three requests and three replies of 1328 inner bytes, each way.
    for (host, specs) in [(&a, &plain.a), (&b, &plain.b)] {
        let stats = host.stats();
        for s in specs {
            let line = stats.sa(s.id).expect("SA listed");
            assert_eq!((line.packets, line.bytes), (3, 3 * 1328), "{stats}");
        }
        assert_eq!(stats.dropped(DropReason::Integrity), 0, "{stats}");
    }
    remove(&a, &b, &plain);
    // ESP in UDP: the kernel refuses a UDP GSO send of datagrams bigger
    // than the path MTU (EMSGSIZE); the datapath sends the run one datagram
    // each instead, the kernel fragments them, and bulk TCP arrives
    // intact.
    let udp = pair(
        (0x1013, 0x2013),
        ("192.0.2.1", "192.0.2.2"),
        (
            range("198.51.100.0", "198.51.100.255"),
            range("203.0.113.0", "203.0.113.255"),
        ),
        Suite::Gcm128,
        Some(UdpEncap {
            sport: 4500,
            dport: 4500,
        }),
    );
    install(&a, &b, &udp);
    tcp_bulk(&na, &nb, "198.51.100.1", "203.0.113.1", 5203);
    // The data leaves A's outbound SA and enters B's inbound one.
    for (host, specs) in [(&a, &udp.a), (&b, &udp.b)] {
        let stats = host.stats();
        let packets: u64 = specs
            .iter()
            .map(|s| stats.sa(s.id).expect("SA listed").packets)
            .sum();
        assert!(packets >= (BULK / 1400) as u64, "{stats}");
        assert_eq!(stats.dropped(DropReason::Integrity), 0, "{stats}");
        assert_eq!(stats.dropped(DropReason::SendFailed), 0, "{stats}");
    }
}
