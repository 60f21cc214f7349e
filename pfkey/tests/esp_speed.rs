//! A quick per-packet cost check of `EspSa::seal`/`open` (not a benchmark
//! suite: `bench/` is the place for criterion). Prints nanoseconds per
//! packet for each transform at 84 and 1400 bytes; asserts only that every
//! packet round-trips.
//!
//! `cargo test --release -p pfkey --test esp_speed -- --ignored --nocapture`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use libracoon::crypto::SeededRandom;
use pfkey::userspace::{EspOptions, EspSa};
use pfkey::{EspAuth, EspEncr, IpsecMode, SaDirection, SaId, SaSpec};
use zeroize::Zeroizing;

fn spec(encr: (u16, u16), auth: Option<(u16, usize)>, key_len: usize) -> SaSpec {
    SaSpec {
        id: SaId {
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            spi: 0x1234,
        },
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        direction: SaDirection::Outbound,
        mode: IpsecMode::Tunnel,
        encr: EspEncr {
            id: encr.0,
            key_bits: encr.1,
        },
        encr_key: Zeroizing::new(vec![7; key_len]),
        auth: auth.map(|(id, _)| EspAuth { id }),
        auth_key: Zeroizing::new(vec![9; auth.map_or(0, |(_, n)| n)]),
        encap: None,
        selectors: Vec::new(),
        reqid: 1,
        esn: false,
        replay_window: 0,
        lifetime: Default::default(),
    }
}

#[test]
#[ignore = "timing run; use --release --nocapture"]
fn seal_and_open_cost_per_packet() {
    let iterations = if cfg!(debug_assertions) {
        2_000
    } else {
        200_000
    };
    let suites = [
        ("AES_GCM_16-128", spec((20, 128), None, 20)),
        ("AES_GCM_16-256", spec((20, 256), None, 36)),
        ("CHACHA20_POLY1305", spec((28, 256), None, 36)),
        (
            "AES_CBC-128/HMAC_SHA1_96",
            spec((12, 128), Some((2, 20)), 16),
        ),
        (
            "AES_CBC-128/HMAC_SHA2_256_128",
            spec((12, 128), Some((12, 32)), 16),
        ),
        (
            "AES_CBC-256/HMAC_SHA2_512_256",
            spec((12, 256), Some((14, 64)), 32),
        ),
    ];
    for (name, spec) in suites {
        for len in [84usize, 1400] {
            let mk =
                || EspSa::new(&spec, EspOptions::default(), &mut SeededRandom::new(1)).expect("sa");
            let (mut tx, mut rx) = (mk(), mk());
            let inner = vec![0x45u8; len];
            let mut out = vec![0u8; 1600];
            let mut copy = vec![0u8; 1600];
            let (mut seal_ns, mut open_ns) = (0u128, 0u128);
            for _ in 0..iterations {
                let t = Instant::now();
                let n = tx.seal(&inner, 4, &mut out).expect("seal");
                seal_ns += t.elapsed().as_nanos();
                copy[..n].copy_from_slice(&out[..n]);
                let t = Instant::now();
                let opened = rx.open(&mut copy[..n]).expect("open");
                open_ns += t.elapsed().as_nanos();
                assert_eq!(opened.payload.len(), len);
            }
            let per = |ns: u128| ns / iterations as u128;
            eprintln!(
                "{name:<30} {len:>5} B: seal {:>6} ns, open {:>6} ns",
                per(seal_ns),
                per(open_ns)
            );
        }
    }
}
