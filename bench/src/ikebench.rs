//! In-memory IKEv2 benchmark: IKE_SA_INIT + IKE_AUTH + first CHILD SA with
//! PSK, Curve25519 and AES-GCM, both peers in this process on one thread.
//!
//! Prints handshakes per second, responder CPU time per handshake, bytes
//! held per established IKE SA with its CHILD SA (counted by a wrapping
//! global allocator), and the crypto-only ceiling measured in the same run:
//! X25519 key generation plus agreement for one side.
//!
//! Run: `cargo run --release -p racoon3-bench --bin ikebench -- [HANDSHAKES]`
//! (pin it with `taskset -c 1` for one-core figures).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use iked::ikev2::config::{
    ChildConfig, EspAlgorithms, Identity, IkeAlgorithms, Mode, PeerConfig, Retransmit,
};
use iked::ikev2::endpoint::Endpoint;
use iked::ikev2::output::{ChildSa, Output, Path};
use iked::ikev2::ts::TsRange;
use libracoon::crypto::{DhGroup, EncrAlg, OsRandom, PrfAlg};
use zeroize::Zeroizing;

/// Counts live heap bytes so memory per SA is measured, not estimated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates to the system allocator unchanged; only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let ceiling = x25519_ceiling(n);
    let run = handshakes(n);
    println!("handshakes:                        {n}");
    println!(
        "handshakes/s (both peers, 1 core):  {:.0}",
        n as f64 / run.total.as_secs_f64()
    );
    println!(
        "initiator CPU per handshake:        {:.1} us",
        per(run.initiator, n)
    );
    println!(
        "responder CPU per handshake:        {:.1} us",
        per(run.responder, n)
    );
    println!("bytes per IKE SA + CHILD SA (resp): {}", run.bytes_per_sa);
    println!(
        "X25519 keygen+agree per side:       {:.1} us  (crypto ceiling: {:.0} handshakes/s with both sides on one core)",
        per(ceiling, n),
        n as f64 / (2.0 * ceiling.as_secs_f64())
    );
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

struct Run {
    total: Duration,
    initiator: Duration,
    responder: Duration,
    bytes_per_sa: isize,
}

/// Runs `n` handshakes; the responder keeps every SA so memory can be counted.
fn handshakes(n: usize) -> Run {
    let a_addr: SocketAddr = "192.0.2.1:500".parse().expect("addr");
    let b_addr: SocketAddr = "192.0.2.2:500".parse().expect("addr");
    let mut responder = Endpoint::new(
        vec![config("to-a", "a.example", "b.example", a_addr)],
        Box::new(OsRandom),
    );
    let initiator_config = config("to-b", "b.example", "a.example", b_addr);
    let (mut t_i, mut t_r) = (Duration::ZERO, Duration::ZERO);
    let mut responder_kernel = Vec::with_capacity(n);
    let mut initiator_kernel = Vec::new();
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..n {
        // A fresh initiator per handshake, dropped at the end of the
        // iteration, so only the responder's state stays allocated.
        let mut initiator = Endpoint::new(vec![initiator_config.clone()], Box::new(OsRandom));
        let t = Instant::now();
        initiator_kernel.clear();
        initiator
            .initiate(
                t,
                "to-b",
                Path {
                    local: a_addr,
                    remote: b_addr,
                },
            )
            .expect("initiate");
        t_i += t.elapsed();
        let mut to_b = drain(&mut initiator, &mut initiator_kernel);
        while !to_b.is_empty() {
            let mut to_a = Vec::new();
            for (path, bytes) in to_b {
                let t = Instant::now();
                responder.handle_datagram(
                    t,
                    Path {
                        local: path.remote,
                        remote: path.local,
                    },
                    &bytes,
                );
                t_r += t.elapsed();
                to_a.extend(drain(&mut responder, &mut responder_kernel));
            }
            to_b = Vec::new();
            for (path, bytes) in to_a {
                let t = Instant::now();
                initiator.handle_datagram(
                    t,
                    Path {
                        local: path.remote,
                        remote: path.local,
                    },
                    &bytes,
                );
                t_i += t.elapsed();
                to_b.extend(drain(&mut initiator, &mut initiator_kernel));
            }
        }
    }
    let total = start.elapsed();
    let established = responder.sas().filter(|s| s.is_established()).count();
    assert_eq!(established, n, "every handshake must complete");
    assert_eq!(
        responder_kernel.len(),
        n,
        "every handshake installs a CHILD SA"
    );
    let bytes_per_sa = (LIVE.load(Ordering::Relaxed) - before) / n as isize;
    Run {
        total,
        initiator: t_i,
        responder: t_r,
        bytes_per_sa,
    }
}

/// Datagrams to deliver; CHILD SAs go to `kernel`, standing in for the
/// kernel's SA table so their memory is counted too.
#[allow(clippy::vec_box)] // boxed so each SA's allocation is counted, not the table's
fn drain(e: &mut Endpoint, kernel: &mut Vec<Box<ChildSa>>) -> Vec<(Path, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((_, o)) = e.poll_output() {
        match o {
            Output::Send { path, bytes } => out.push((path, bytes)),
            Output::InstallChild(c) => kernel.push(c),
            _ => {}
        }
    }
    out
}

fn x25519_ceiling(n: usize) -> Duration {
    let peer = DhGroup::Curve25519.generate(&mut OsRandom).expect("keygen");
    let peer_public = peer.public_key().to_vec();
    let start = Instant::now();
    for _ in 0..n {
        let s = DhGroup::Curve25519.generate(&mut OsRandom).expect("keygen");
        std::hint::black_box(s.public_key());
        std::hint::black_box(s.agree(&peer_public).expect("agree"));
    }
    start.elapsed()
}

fn config(name: &str, local: &str, remote: &str, peer: SocketAddr) -> PeerConfig {
    let any = TsRange::from_prefix("0.0.0.0".parse().expect("addr"), 0).expect("prefix");
    PeerConfig {
        name: name.into(),
        local_id: Identity::fqdn(local),
        remote_id: Some(Identity::fqdn(remote)),
        remote_addr: Some(peer.ip()),
        psk: Zeroizing::new(b"benchmark secret".to_vec()),
        ike: IkeAlgorithms {
            encr: vec![EncrAlg::AesGcm16_128],
            prf: vec![PrfAlg::HmacSha256],
            integ: vec![],
            dh: vec![DhGroup::Curve25519],
        },
        child: ChildConfig {
            local_ts: vec![any],
            remote_ts: vec![any],
            mode: Mode::Tunnel,
            esp: EspAlgorithms {
                encr: vec![EncrAlg::AesGcm16_128],
                integ: vec![],
            },
            reqid: 1,
            pfs: None,
            lifetime: Default::default(),
        },
        ike_lifetime: None,
        dpd_delay: None,
        retransmit: Retransmit::default(),
        nonce_len: 32,
        cookie_required: false,
        force_udp_encap: false,
    }
}
