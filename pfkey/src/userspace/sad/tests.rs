//! SAD pipeline tests: tunnel-mode round trips, the strongSwan capture
//! through the inbound checks, every drop reason the core detects,
//! lifetimes and rekey precedence.

use std::net::{IpAddr, Ipv4Addr};

use libracoon::crypto::SeededRandom;

use super::*;
use crate::userspace::esp::tests::spec;

const ICMP: &[u8] =
    include_bytes!("../../../testdata/esp/strongswan-gcm128-7b371abe-seq1.inner.bin");
const CAPTURED: &[u8] =
    include_bytes!("../../../testdata/esp/strongswan-gcm128-7b371abe-seq1.esp.bin");
const KEY: &str = "e86c23208b5186e8193b6fcc74fbe05480e5b8da";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// 198.51.100.0/24 -> 203.0.113.0/24, any protocol.
fn lan_selector() -> Selector {
    Selector {
        src: (ip("198.51.100.0"), ip("198.51.100.255")),
        dst: (ip("203.0.113.0"), ip("203.0.113.255")),
        proto: 0,
        src_port: 0,
        dst_port: 0,
    }
}

/// The SA of the capture's first packets (192.0.2.1 -> 192.0.2.2).
fn gcm_spec(spi: u32, direction: SaDirection) -> SaSpec {
    let mut s = spec(
        spi,
        (20, 128),
        None,
        hex::decode(KEY).expect("hex"),
        Vec::new(),
    );
    s.direction = direction;
    s.selectors = vec![lan_selector()];
    s
}

fn entry(spec: &SaSpec, now: Instant) -> SadEntry {
    SadEntry::new(spec, EspOptions::default(), &mut SeededRandom::new(3), now).expect("entry")
}

fn sad() -> Sad {
    Sad::new(Arc::default())
}

/// Host A with the outbound SA, host B with the matching inbound SA.
fn pair(now: Instant) -> (Sad, Sad) {
    let (mut a, mut b) = (sad(), sad());
    a.insert(entry(&gcm_spec(0x7b37_1abe, SaDirection::Outbound), now))
        .expect("insert");
    b.insert(entry(&gcm_spec(0x7b37_1abe, SaDirection::Inbound), now))
        .expect("insert");
    (a, b)
}

fn outbound_id() -> SaId {
    SaId {
        dst: ip("192.0.2.2"),
        spi: 0x7b37_1abe,
    }
}

#[test]
fn tunnel_round_trip_through_spd_and_inbound_check() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    let mut out = [0u8; 256];
    let tx = a
        .encapsulate(Instant::now(), ICMP, &mut out)
        .expect("covered by the SA");
    assert_eq!(
        (tx.src, tx.dst, tx.encap),
        (ip("192.0.2.1"), ip("192.0.2.2"), None)
    );
    let range = b.decapsulate(&mut out[..tx.len]).expect("opens").payload;
    assert_eq!(&out[range], ICMP);
    let (sa_a, sa_b) = (a.stats().sas, b.stats().sas);
    assert_eq!((sa_a[0].packets, sa_a[0].bytes), (1, 84));
    assert_eq!((sa_b[0].packets, sa_b[0].bytes), (1, 84));
}

#[test]
fn strongswan_packet_passes_the_inbound_selector_check() {
    let mut b = sad();
    b.insert(entry(
        &gcm_spec(0x7b37_1abe, SaDirection::Inbound),
        Instant::now(),
    ))
    .expect("insert");
    let mut pkt = CAPTURED.to_vec();
    let range = b.decapsulate(&mut pkt).expect("opens").payload;
    assert_eq!(&pkt[range], ICMP);
}

#[test]
fn packet_outside_the_sa_selectors_is_dropped_after_decryption() {
    let mut b = sad();
    let mut spec = gcm_spec(0x7b37_1abe, SaDirection::Inbound);
    spec.selectors[0].dst = (ip("203.0.113.2"), ip("203.0.113.2"));
    b.insert(entry(&spec, Instant::now())).expect("insert");
    assert_eq!(
        b.decapsulate(&mut CAPTURED.to_vec()),
        Err(DropReason::SelectorMismatch)
    );
    assert_eq!(b.stats().dropped(DropReason::SelectorMismatch), 1);
    assert_eq!(b.stats().sas[0].packets, 0);
}

#[test]
fn unknown_spi_short_packets_and_replays_are_counted() {
    let (_, mut b) = pair(Instant::now());
    let mut unknown = CAPTURED.to_vec();
    unknown[3] ^= 1;
    assert_eq!(b.decapsulate(&mut unknown), Err(DropReason::BadSpi));
    assert_eq!(b.decapsulate(&mut [0, 0, 0]), Err(DropReason::Malformed));
    assert_eq!(
        b.decapsulate(&mut CAPTURED[..30].to_vec()),
        Err(DropReason::Malformed)
    );
    assert!(b.decapsulate(&mut CAPTURED.to_vec()).is_ok());
    assert_eq!(
        b.decapsulate(&mut CAPTURED.to_vec()),
        Err(DropReason::Replay)
    );
    let mut forged = CAPTURED.to_vec();
    forged[30] ^= 1;
    forged[7] = 9;
    assert_eq!(b.decapsulate(&mut forged), Err(DropReason::Integrity));
    let s = b.stats();
    for r in [
        DropReason::BadSpi,
        DropReason::Replay,
        DropReason::Integrity,
    ] {
        assert_eq!(s.dropped(r), 1, "{r}");
    }
    assert_eq!(s.dropped(DropReason::Malformed), 2);
}

#[test]
fn outbound_traffic_without_sa_or_not_ip_is_dropped() {
    let (mut a, _) = pair(Instant::now());
    let mut reverse = ICMP.to_vec();
    reverse[12..16].copy_from_slice(&[203, 0, 113, 1]);
    reverse[16..20].copy_from_slice(&[198, 51, 100, 1]);
    let mut out = [0u8; 256];
    assert_eq!(
        a.encapsulate(Instant::now(), &reverse, &mut out),
        Err(DropReason::NoSa)
    );
    assert_eq!(
        a.encapsulate(Instant::now(), &[0x00; 40], &mut out),
        Err(DropReason::Malformed)
    );
    assert_eq!(
        a.encapsulate(Instant::now(), ICMP, &mut out[..100]),
        Err(DropReason::Oversize)
    );
    let s = a.stats();
    assert_eq!(
        (
            s.dropped(DropReason::NoSa),
            s.dropped(DropReason::Malformed)
        ),
        (1, 1)
    );
}

#[test]
fn dummy_packets_and_wrong_next_header_are_dropped() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    let tx = a.outbound.get_mut(&outbound_id()).expect("installed");
    let mut out = [0u8; 256];
    let n = tx
        .esp
        .seal(&[1, 2, 3], NEXT_HEADER_NONE, &mut out)
        .expect("seals");
    assert_eq!(b.decapsulate(&mut out[..n]), Err(DropReason::Dummy));
    let n = tx
        .esp
        .seal(ICMP, NEXT_HEADER_IPV6, &mut out)
        .expect("seals");
    assert_eq!(b.decapsulate(&mut out[..n]), Err(DropReason::Malformed));
    let n = tx.esp.seal(ICMP, 6, &mut out).expect("seals");
    assert_eq!(b.decapsulate(&mut out[..n]), Err(DropReason::Malformed));
}

#[test]
fn tfc_padding_after_the_inner_packet_is_trimmed() {
    let (mut a, mut b) = pair(Instant::now());
    let tx = a.outbound.get_mut(&outbound_id()).expect("installed");
    let mut padded = ICMP.to_vec();
    padded.extend_from_slice(&[0; 33]);
    let mut out = [0u8; 256];
    let n = tx
        .esp
        .seal(&padded, NEXT_HEADER_IPV4, &mut out)
        .expect("seals");
    let range = b.decapsulate(&mut out[..n]).expect("opens").payload;
    assert_eq!(&out[range], ICMP);
}

#[test]
fn volume_lifetimes_fire_soft_then_hard_and_hard_deletes_the_sa() {
    let now = Instant::now();
    let (mut a, _) = pair(now);
    let limits = Lifetime {
        soft_packets: Some(2),
        hard_packets: Some(3),
        soft_bytes: Some(10_000),
        ..Lifetime::default()
    };
    assert!(a.set_lifetime(outbound_id(), limits));
    let mut out = [0u8; 256];
    let mut events = Vec::new();
    for _ in 0..4 {
        let _ = a.encapsulate(Instant::now(), ICMP, &mut out);
        events.extend(std::iter::from_fn(|| a.poll_expiry()));
    }
    let hard: Vec<bool> = events.iter().map(|e| e.hard).collect();
    assert_eq!(hard, [false, true]);
    assert!(events.iter().all(|e| e.id == outbound_id() && e.reqid == 1));
    // The third packet was the last; the SA is gone, the fourth finds none.
    let s = a.stats();
    assert!(s.sas.is_empty(), "{s}");
    assert_eq!(s.dropped(DropReason::NoSa), 1);
    assert!(!a.contains(outbound_id()));
    assert!(a.outbound_by_reqid(1).is_none());
}

#[test]
fn byte_lifetime_counts_inner_bytes() {
    let (mut a, _) = pair(Instant::now());
    let limits = Lifetime {
        hard_bytes: Some(2 * 84),
        ..Lifetime::default()
    };
    a.set_lifetime(outbound_id(), limits);
    let mut out = [0u8; 256];
    assert!(a.encapsulate(Instant::now(), ICMP, &mut out).is_ok());
    assert_eq!(a.poll_expiry(), None);
    assert!(a.encapsulate(Instant::now(), ICMP, &mut out).is_ok());
    assert_eq!(a.poll_expiry().map(|e| e.hard), Some(true));
    assert_eq!(
        a.encapsulate(Instant::now(), ICMP, &mut out),
        Err(DropReason::NoSa)
    );
}

#[test]
fn time_lifetimes_fire_on_timeout_only_once() {
    let t0 = Instant::now();
    let (_, mut b) = pair(t0);
    let id = SaId {
        dst: ip("192.0.2.2"),
        spi: 0x7b37_1abe,
    };
    let limits = Lifetime {
        soft_time: Some(Duration::from_secs(5)),
        hard_time: Some(Duration::from_secs(20)),
        ..Lifetime::default()
    };
    assert!(b.set_lifetime(id, limits));
    b.handle_timeout(t0 + Duration::from_secs(4));
    assert_eq!(b.poll_expiry(), None);
    b.handle_timeout(t0 + Duration::from_secs(5));
    b.handle_timeout(t0 + Duration::from_secs(6));
    assert_eq!(b.poll_expiry().map(|e| e.hard), Some(false));
    assert_eq!(b.poll_expiry(), None);
    b.handle_timeout(t0 + Duration::from_secs(21));
    assert_eq!(b.poll_expiry().map(|e| e.hard), Some(true));
    assert!(!b.contains(id), "a hard expiry deletes the SA");
    assert_eq!(
        b.decapsulate(&mut CAPTURED.to_vec()),
        Err(DropReason::BadSpi)
    );
}

#[test]
fn exhausted_sequence_numbers_expire_the_sa() {
    let (mut a, _) = pair(Instant::now());
    let tx = a.outbound.get_mut(&outbound_id()).expect("installed");
    tx.esp.set_last_seq(u64::from(u32::MAX));
    let mut out = [0u8; 256];
    assert_eq!(
        a.encapsulate(Instant::now(), ICMP, &mut out),
        Err(DropReason::SeqExhausted)
    );
    assert_eq!(a.poll_expiry().map(|e| e.hard), Some(true));
    assert_eq!(
        a.encapsulate(Instant::now(), ICMP, &mut out),
        Err(DropReason::NoSa)
    );
}

#[test]
fn without_esn_a_soft_expiry_comes_2_pow_24_packets_before_exhaustion() {
    let (mut a, _) = pair(Instant::now());
    let tx = a.outbound.get_mut(&outbound_id()).expect("installed");
    tx.esp.set_last_seq(SEQ_SOFT_LIMIT - 1);
    let mut out = [0u8; 256];
    // Sequence number SEQ_SOFT_LIMIT itself: not past it yet.
    assert!(a.encapsulate(Instant::now(), ICMP, &mut out).is_ok());
    assert_eq!(a.poll_expiry(), None);
    assert!(a.encapsulate(Instant::now(), ICMP, &mut out).is_ok());
    let soft = a.poll_expiry().expect("soft expiry past the limit");
    assert_eq!((soft.id, soft.hard), (outbound_id(), false));
    // Once only, and the SA keeps sealing.
    assert!(a.encapsulate(Instant::now(), ICMP, &mut out).is_ok());
    assert_eq!(a.poll_expiry(), None);
    assert_eq!(SEQ_SOFT_LIMIT, 0xfeff_ffff);
}

#[test]
fn with_esn_the_32_bit_mark_raises_no_soft_expiry() {
    let mut a = sad();
    let spec = gcm_spec(0x7b37_1abe, SaDirection::Outbound);
    let esn = EspOptions { esn: true };
    let mut e =
        SadEntry::new(&spec, esn, &mut SeededRandom::new(3), Instant::now()).expect("entry");
    e.esp.set_last_seq(u64::from(u32::MAX) - 1);
    a.insert(e).expect("insert");
    let mut out = [0u8; 256];
    for _ in 0..3 {
        assert!(a.encapsulate(Instant::now(), ICMP, &mut out).is_ok());
    }
    assert_eq!(a.poll_expiry(), None);
}

#[test]
fn rekeyed_outbound_sa_takes_over_and_deleting_it_falls_back() {
    let now = Instant::now();
    let (mut a, _) = pair(now);
    let mut newer = gcm_spec(0x0bad_cafe, SaDirection::Outbound);
    newer.encap = Some(UdpEncap {
        sport: 4500,
        dport: 4500,
    });
    a.insert(entry(&newer, now)).expect("insert");
    let mut out = [0u8; 256];
    let tx = a
        .encapsulate(Instant::now(), ICMP, &mut out)
        .expect("covered");
    assert_eq!(EspHeader::new_unchecked(&out[..]).spi(), 0x0bad_cafe);
    assert_eq!(tx.encap.map(|e| e.dport), Some(4500));
    assert!(a.remove(newer.id).is_some());
    a.encapsulate(Instant::now(), ICMP, &mut out)
        .expect("covered");
    assert_eq!(EspHeader::new_unchecked(&out[..]).spi(), 0x7b37_1abe);
}

#[test]
fn duplicates_are_refused_and_inbound_spis_are_unique() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    let out = gcm_spec(0x7b37_1abe, SaDirection::Outbound);
    assert_eq!(a.insert(entry(&out, now)), Err(Exists(0x7b37_1abe)));
    let mut other_dst = gcm_spec(0x7b37_1abe, SaDirection::Inbound);
    other_dst.id.dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    assert_eq!(b.insert(entry(&other_dst, now)), Err(Exists(0x7b37_1abe)));
    // Removing with the wrong destination leaves the inbound SA alone.
    assert!(b.remove(other_dst.id).is_none());
    let id = gcm_spec(0x7b37_1abe, SaDirection::Inbound).id;
    assert!(b.contains(id));
    assert!(b.inbound(0x7b37_1abe).is_some());
    assert!(b.remove(id).is_some());
    assert!(!b.contains(id));
    assert!(a.outbound(outbound_id()).is_some());
    assert_eq!(
        a.outbound_by_reqid(1).map(SadEntry::id),
        Some(outbound_id())
    );
}

fn outbound_policy(action: PolicyAction) -> PolicySpec {
    PolicySpec {
        selector: lan_selector(),
        direction: SaDirection::Outbound,
        action,
        tunnel: None,
    }
}

#[test]
fn protect_policy_without_sa_acquires_once_and_drops_until_the_sa_comes() {
    let t0 = Instant::now();
    let mut a = sad();
    a.insert_policy(outbound_policy(PolicyAction::Protect {
        reqid: 1,
        mode: IpsecMode::Tunnel,
    }));
    let mut out = [0u8; 256];
    for ms in [0, 200, 400, 2900] {
        let now = t0 + Duration::from_millis(ms);
        assert_eq!(a.encapsulate(now, ICMP, &mut out), Err(DropReason::Acquire));
    }
    let ev = a.poll_acquire().expect("one ACQUIRE");
    assert!(
        matches!(
            ev,
            KernelEvent::Acquire {
                reqid: 1,
                proto: 1,
                ..
            }
        ),
        "{ev:?}"
    );
    assert_eq!(a.poll_acquire(), None, "no storm");
    assert_eq!(a.stats().dropped(DropReason::Acquire), 4);
    // The SA arrives (gcm_spec has reqid 1): packets pass.
    a.insert(entry(&gcm_spec(0x7b37_1abe, SaDirection::Outbound), t0))
        .expect("insert");
    assert!(
        a.encapsulate(t0 + Duration::from_secs(3), ICMP, &mut out)
            .is_ok()
    );
    assert_eq!(a.poll_acquire(), None);
    // Deleted again: the next packet acquires at once.
    assert!(a.remove(outbound_id()).is_some());
    let later = t0 + Duration::from_millis(3100);
    assert_eq!(
        a.encapsulate(later, ICMP, &mut out),
        Err(DropReason::Acquire)
    );
    assert!(a.poll_acquire().is_some());
}

#[test]
fn discard_and_bypass_policies_drop_tun_traffic_even_with_an_sa() {
    let now = Instant::now();
    let (mut a, _) = pair(now);
    let mut out = [0u8; 256];
    a.insert_policy(outbound_policy(PolicyAction::Discard));
    assert_eq!(a.encapsulate(now, ICMP, &mut out), Err(DropReason::Discard));
    a.insert_policy(outbound_policy(PolicyAction::Bypass));
    assert_eq!(a.encapsulate(now, ICMP, &mut out), Err(DropReason::Bypass));
    assert!(
        a.remove_policy(&lan_selector(), SaDirection::Outbound)
            .is_some()
    );
    assert!(a.encapsulate(now, ICMP, &mut out).is_ok());
    assert_eq!(a.poll_acquire(), None);
    let s = a.stats();
    assert_eq!(
        (
            s.dropped(DropReason::Discard),
            s.dropped(DropReason::Bypass)
        ),
        (1, 1)
    );
}

/// A transport-mode SA between the hosts 192.0.2.1 and 192.0.2.2 (or
/// their IPv6 twins), selectors = the two addresses.
fn transport_spec(direction: SaDirection, v6: bool) -> SaSpec {
    let mut s = gcm_spec(0x0c0f_fee0, direction);
    s.mode = IpsecMode::Transport;
    let (a, b) = if v6 {
        (ip("2001:db8::1"), ip("2001:db8::2"))
    } else {
        (ip("192.0.2.1"), ip("192.0.2.2"))
    };
    s.src = a;
    s.id.dst = b;
    s.selectors = vec![Selector {
        src: (a, a),
        dst: (b, b),
        proto: 0,
        src_port: 0,
        dst_port: 0,
    }];
    s
}

/// The capture's ICMP echo request, readdressed 192.0.2.1 -> 192.0.2.2
/// (the header checksum is not fixed: nothing on the path reads it).
fn host_icmp() -> Vec<u8> {
    let mut p = ICMP.to_vec();
    p[12..16].copy_from_slice(&[192, 0, 2, 1]);
    p[16..20].copy_from_slice(&[192, 0, 2, 2]);
    p
}

#[test]
fn transport_mode_seals_the_payload_only_and_the_receiver_rebuilds_the_header() {
    let now = Instant::now();
    let (mut a, mut b) = (sad(), sad());
    a.insert(entry(&transport_spec(SaDirection::Outbound, false), now))
        .expect("insert");
    b.insert(entry(&transport_spec(SaDirection::Inbound, false), now))
        .expect("insert");
    let packet = host_icmp();
    let mut out = [0u8; 256];
    let tx = a.encapsulate(now, &packet, &mut out).expect("covered");
    assert_eq!((tx.src, tx.dst), (ip("192.0.2.1"), ip("192.0.2.2")));
    // GCM: 8 header + 8 IV + (64 payload + 2 trailer, padded to 4) + 16 ICV;
    // tunnel mode would have sealed all 84 bytes.
    assert_eq!(tx.len, 8 + 8 + 68 + 16);
    let inner = b.decapsulate(&mut out[..tx.len]).expect("opens");
    assert_eq!(inner.len(), 84);
    let mut rebuilt = inner.header().to_vec();
    rebuilt.extend_from_slice(&out[inner.payload]);
    assert_eq!(&rebuilt[20..], &packet[20..], "payload intact");
    let h = InnerHeader::parse(&rebuilt).expect("a valid IPv4 header");
    assert_eq!(
        (h.src, h.dst, h.proto, h.len),
        (ip("192.0.2.1"), ip("192.0.2.2"), 1, 84)
    );
    assert_eq!(b.stats().sas[0].bytes, 84);
}

#[test]
fn transport_mode_works_for_ipv6_with_the_protocol_as_next_header() {
    let now = Instant::now();
    let (mut a, mut b) = (sad(), sad());
    a.insert(entry(&transport_spec(SaDirection::Outbound, true), now))
        .expect("insert");
    b.insert(entry(&transport_spec(SaDirection::Inbound, true), now))
        .expect("insert");
    let mut packet = vec![0u8; 40 + 16];
    packet[0] = 0x60;
    packet[4..6].copy_from_slice(&16u16.to_be_bytes());
    packet[6] = 58;
    packet[7] = 64;
    packet[8..24].copy_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .expect("v6")
            .octets(),
    );
    packet[24..40].copy_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .expect("v6")
            .octets(),
    );
    packet[40..].copy_from_slice(&[0x80; 16]);
    let mut out = [0u8; 256];
    let tx = a.encapsulate(now, &packet, &mut out).expect("covered");
    let inner = b.decapsulate(&mut out[..tx.len]).expect("opens");
    let mut rebuilt = inner.header().to_vec();
    rebuilt.extend_from_slice(&out[inner.payload]);
    // Hop Limit 64 as sent; traffic class and flow label are 0 here too.
    assert_eq!(rebuilt, packet);
}

#[test]
fn transport_mode_refuses_packets_not_between_its_endpoints() {
    let now = Instant::now();
    let mut a = sad();
    let mut s = transport_spec(SaDirection::Outbound, false);
    // A (misconfigured) transport SA with subnet selectors.
    s.selectors[0].dst = (ip("192.0.2.0"), ip("192.0.2.255"));
    a.insert(entry(&s, now)).expect("insert");
    let mut packet = host_icmp();
    packet[16..20].copy_from_slice(&[192, 0, 2, 9]);
    let mut out = [0u8; 256];
    assert_eq!(
        a.encapsulate(now, &packet, &mut out),
        Err(DropReason::TransportAddress)
    );
}

#[test]
fn inbound_transport_packets_outside_the_selectors_are_dropped() {
    let now = Instant::now();
    let (mut a, mut b) = (sad(), sad());
    a.insert(entry(&transport_spec(SaDirection::Outbound, false), now))
        .expect("insert");
    let mut rx = transport_spec(SaDirection::Inbound, false);
    rx.selectors[0].proto = 6;
    b.insert(entry(&rx, now)).expect("insert");
    let mut out = [0u8; 256];
    let tx = a.encapsulate(now, &host_icmp(), &mut out).expect("covered");
    assert_eq!(
        b.decapsulate(&mut out[..tx.len]),
        Err(DropReason::SelectorMismatch)
    );
}

#[test]
fn a_hard_packet_limit_deletes_the_sa_and_the_next_packet_acquires() {
    let t0 = Instant::now();
    let (mut a, _) = pair(t0);
    let protect = PolicyAction::Protect {
        reqid: 1,
        mode: IpsecMode::Tunnel,
    };
    a.insert_policy(outbound_policy(protect));
    let limits = Lifetime {
        hard_packets: Some(2),
        ..Lifetime::default()
    };
    assert!(a.set_lifetime(outbound_id(), limits));
    let mut out = [0u8; 256];
    assert!(a.encapsulate(t0, ICMP, &mut out).is_ok());
    assert!(a.encapsulate(t0, ICMP, &mut out).is_ok(), "the last packet");
    assert_eq!(
        a.poll_expiry().map(|e| (e.id, e.hard)),
        Some((outbound_id(), true))
    );
    assert!(a.outbound(outbound_id()).is_none(), "gone from the SAD");
    assert_eq!(
        a.encapsulate(t0, ICMP, &mut out),
        Err(DropReason::Acquire),
        "not `expired`"
    );
    assert!(
        matches!(
            a.poll_acquire(),
            Some(KernelEvent::Acquire { reqid: 1, .. })
        ),
        "the policy asks for a new SA"
    );
    assert_eq!(a.stats().dropped(DropReason::Expired), 0);
}

#[test]
fn transport_mode_drops_ipv4_fragments() {
    let now = Instant::now();
    let mut a = sad();
    a.insert(entry(&transport_spec(SaDirection::Outbound, false), now))
        .expect("insert");
    let mut out = [0u8; 256];
    let whole = host_icmp();
    assert!(a.encapsulate(now, &whole, &mut out).is_ok());
    for flags in [[0x20, 0x00], [0x00, 0x10], [0x20, 0x10]] {
        let mut frag = whole.clone();
        frag[6..8].copy_from_slice(&flags);
        assert_eq!(
            a.encapsulate(now, &frag, &mut out),
            Err(DropReason::Fragment),
            "{flags:x?}"
        );
    }
    let s = a.stats();
    assert_eq!((s.dropped(DropReason::Fragment), s.sas[0].packets), (3, 1));
}

#[test]
fn tunnel_mode_still_carries_ipv4_fragments() {
    let (mut a, mut b) = pair(Instant::now());
    let mut frag = ICMP.to_vec();
    frag[6..8].copy_from_slice(&[0x20, 0x00]);
    let mut out = [0u8; 256];
    let tx = a
        .encapsulate(Instant::now(), &frag, &mut out)
        .expect("sealed");
    let range = b.decapsulate(&mut out[..tx.len]).expect("opens").payload;
    assert_eq!(&out[range], &frag[..]);
}

#[test]
fn the_policy_reqid_chooses_among_sas_covering_the_packet() {
    let t0 = Instant::now();
    let mut a = sad();
    // Reqid 1 protects the whole LANs, reqid 2 the single host pair; the
    // newest SA (reqid 2, the broader selectors) covers both.
    let host = Selector {
        src: (ip("198.51.100.1"), ip("198.51.100.1")),
        dst: (ip("203.0.113.1"), ip("203.0.113.1")),
        proto: 0,
        src_port: 0,
        dst_port: 0,
    };
    let protect = |reqid| PolicyAction::Protect {
        reqid,
        mode: IpsecMode::Tunnel,
    };
    a.insert_policy(outbound_policy(protect(1)));
    a.insert_policy(PolicySpec {
        selector: host,
        ..outbound_policy(protect(2))
    });
    let mut two = gcm_spec(0x0000_0222, SaDirection::Outbound);
    two.reqid = 2;
    a.insert(entry(&two, t0)).expect("insert");
    let mut out = [0u8; 256];
    // ICMP (198.51.100.1 -> 203.0.113.1) falls under the host policy.
    a.encapsulate(t0, ICMP, &mut out).expect("reqid 2 seals it");
    assert_eq!(EspHeader::new_unchecked(&out[..]).spi(), 0x0000_0222);
    // Another LAN host falls under reqid 1: the reqid-2 SA covers it but
    // must not carry it, so reqid 1 is acquired.
    let mut other = ICMP.to_vec();
    other[15] = 9;
    assert_eq!(
        a.encapsulate(t0, &other, &mut out),
        Err(DropReason::Acquire)
    );
    assert!(matches!(
        a.poll_acquire(),
        Some(KernelEvent::Acquire { reqid: 1, .. })
    ));
    // Reqid 1's SA arrives, and is now the newest.
    a.insert(entry(&gcm_spec(0x7b37_1abe, SaDirection::Outbound), t0))
        .expect("insert");
    a.encapsulate(t0, &other, &mut out)
        .expect("reqid 1 seals it");
    assert_eq!(EspHeader::new_unchecked(&out[..]).spi(), 0x7b37_1abe);
    // The newer reqid-1 SA covers the host pair too, yet reqid 2 keeps it.
    a.encapsulate(t0, ICMP, &mut out).expect("reqid 2 seals it");
    assert_eq!(EspHeader::new_unchecked(&out[..]).spi(), 0x0000_0222);
}

#[test]
fn sealing_in_place_matches_sealing_a_copy_in_both_modes() {
    let now = Instant::now();
    for (spec, packet) in [
        (gcm_spec(0x7b37_1abe, SaDirection::Outbound), ICMP.to_vec()),
        (transport_spec(SaDirection::Outbound, false), host_icmp()),
    ] {
        let (mut copy, mut in_place) = (sad(), sad());
        copy.insert(entry(&spec, now)).expect("insert");
        in_place.insert(entry(&spec, now)).expect("insert");
        let mut out = [0u8; 256];
        let tx = copy.encapsulate(now, &packet, &mut out).expect("covered");
        let mut buf = [0u8; 300];
        buf[64..64 + packet.len()].copy_from_slice(&packet);
        let (at, tx2) = in_place
            .encapsulate_in_place(now, &mut buf, 64..64 + packet.len())
            .expect("covered");
        assert_eq!(tx2, tx, "{:?}", spec.mode);
        assert_eq!(&buf[at], &out[..tx.len], "{:?}", spec.mode);
        assert_eq!(in_place.stats().sas[0].bytes, 84, "inner bytes counted");
    }
}

#[test]
fn sealing_in_place_without_room_is_counted_oversize() {
    let now = Instant::now();
    let (mut a, _) = pair(now);
    let mut buf = [0u8; 120];
    buf[..ICMP.len()].copy_from_slice(ICMP);
    // No room in front for the ESP header and IV.
    assert_eq!(
        a.encapsulate_in_place(now, &mut buf, 0..ICMP.len()),
        Err(DropReason::Oversize)
    );
    let drops = a.stats().drops;
    assert!(drops.contains(&(DropReason::Oversize, 1)), "{drops:?}");
}
