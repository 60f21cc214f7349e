//! Fuzz target bodies (STYLE.md §5): `fuzz/fuzz_targets/esp_open.rs` calls
//! them, and a stable test replays the captured packets through them.
//!
//! **NO SECURITY: fixed, public keys; fuzzing and tests only.**

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use libracoon::crypto::SeededRandom;
use zeroize::Zeroizing;

use super::esp::{EspOptions, EspSa};
use super::sad::{Sad, SadEntry};
use crate::{EspAuth, EspEncr, IpsecMode, SaDirection, SaId, SaSpec, Selector};

/// The strongSwan capture's SA 0x7b371abe (AES-GCM-16-128), so the captured
/// packets are valid seeds.
const SEED_SPI: u32 = 0x7b37_1abe;
const SEED_KEY: [u8; 20] = [
    0xe8, 0x6c, 0x23, 0x20, 0x8b, 0x51, 0x86, 0xe8, 0x19, 0x3b, 0x6f, 0xcc, 0x74, 0xfb, 0xe0, 0x54,
    0x80, 0xe5, 0xb8, 0xda,
];

/// Fuzzes [`EspSa::open`] and [`Sad::decapsulate`].
///
/// The first byte selects the transform (low 2 bits), ESN (bit 2), the
/// input kind (bit 3) and the IPsec mode (bit 4, transport if set). Input
/// kind 0 opens the rest as an ESP packet; 1 first encrypts the rest, as
/// is, as the body of an authentic packet, so trailer and inner packet
/// parsing (or, in transport mode, header rebuilding) see arbitrary
/// plaintext. Must never panic.
pub fn esp_open(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut spec = spec(sel & 3);
    if sel & 16 != 0 {
        spec.mode = IpsecMode::Transport;
    }
    let esn = sel & 4 != 0;
    let mut packet = rest.to_vec();
    if sel & 8 != 0 {
        let mut tx = sa(&spec, esn);
        packet = tx.seal_body_for_fuzzing(rest);
    }
    let mut rx = sa(&spec, esn);
    if let Ok(opened) = rx.open(&mut packet.clone()) {
        assert!(opened.payload.start >= 8 && opened.payload.end <= packet.len());
    }
    let mut sad = Sad::new(Default::default());
    let entry = SadEntry::new(
        &spec,
        EspOptions { esn },
        &mut SeededRandom::new(1),
        Instant::now(),
    )
    .expect("fixed spec is supported");
    sad.insert(entry).expect("empty SAD");
    if let Ok(inner) = sad.decapsulate(&mut packet) {
        assert!(inner.payload.end <= packet.len());
        assert!(inner.len() <= 65_535 + 40);
    }
}

fn sa(spec: &SaSpec, esn: bool) -> EspSa {
    EspSa::new(spec, EspOptions { esn }, &mut SeededRandom::new(1))
        .expect("fixed spec is supported")
}

/// AES-GCM-16-128 with the capture's key, ChaCha20-Poly1305, and
/// AES-CBC-128 with HMAC-SHA1-96 or HMAC-SHA2-512-256; selectors cover
/// every IPv4 and IPv6 packet (the first one's start excludes
/// 0.0.0.0, so both outcomes of the check are reachable).
fn spec(transform: u8) -> SaSpec {
    let (encr, auth, encr_key, auth_key) = match transform {
        0 => ((20, 128), None, SEED_KEY.to_vec(), Vec::new()),
        1 => ((28, 256), None, vec![0x28; 36], Vec::new()),
        2 => ((12, 128), Some(2), vec![0x12; 16], vec![0x02; 20]),
        _ => ((12, 128), Some(14), vec![0x12; 16], vec![0x14; 64]),
    };
    let v4 = (
        IpAddr::V4(Ipv4Addr::new(0, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::BROADCAST),
    );
    let v6 = (
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::from(u128::MAX)),
    );
    SaSpec {
        id: SaId {
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            spi: SEED_SPI,
        },
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        direction: SaDirection::Inbound,
        mode: IpsecMode::Tunnel,
        encr: EspEncr {
            id: encr.0,
            key_bits: encr.1,
        },
        encr_key: Zeroizing::new(encr_key),
        auth: auth.map(|id| EspAuth { id }),
        auth_key: Zeroizing::new(auth_key),
        encap: None,
        selectors: vec![
            Selector {
                src: v4,
                dst: v4,
                proto: 0,
                src_port: 0,
                dst_port: 0,
            },
            Selector {
                src: v6,
                dst: v6,
                proto: 0,
                src_port: 0,
                dst_port: 0,
            },
        ],
        reqid: 1,
        esn: false,
        replay_window: 0,
        lifetime: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: [&[u8]; 3] = [
        include_bytes!("../../testdata/esp/strongswan-gcm128-7b371abe-seq1.esp.bin"),
        include_bytes!("../../testdata/esp/strongswan-gcm128-7b371abe-seq2.esp.bin"),
        include_bytes!("../../testdata/esp/strongswan-gcm128-7b371abe-seq1.inner.bin"),
    ];

    #[test]
    fn captured_packets_replay_through_the_fuzz_body() {
        for seed in SEEDS {
            for sel in 0..32u8 {
                let mut data = vec![sel];
                data.extend_from_slice(seed);
                esp_open(&data);
                for cut in [0, 1, 7, 8, 9, 20, 40] {
                    esp_open(&data[..cut.min(data.len())]);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bodies_and_garbage_do_not_panic() {
        // A small deterministic sweep standing in for the fuzzer on stable.
        let mut rng = 0x1234_5678_u64;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            esp_open(&data);
        }
    }
}
