//! Codec tests: hand-built messages in the RFC 2367 / KAME / Linux layouts
//! (`linux/pfkeyv2.h`, `net/key/af_key.c`), round trips, and garbage.
//!
//! The golden byte strings were written field by field from those struct
//! layouts, not produced by our encoder. Host-order fields are
//! little-endian in them, so those tests run on little-endian hosts only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use zeroize::Zeroizing;

use super::convert;
use super::ext::*;
use super::fuzzing::pfkey_msg;
use super::msg::{Message, MsgType, SaType};
use super::wire::DecodeError;
use crate::{
    EspAuth, EspEncr, IpsecMode, KernelEvent, Lifetime, PolicyAction, PolicySpec, SaDirection,
    SaId, SaSpec, Selector, UdpEncap,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn bytes(hex_lines: &[&str]) -> Vec<u8> {
    let joined: String = hex_lines.iter().map(|l| l.replace(' ', "")).collect();
    hex::decode(joined).unwrap()
}

fn outbound_sa() -> SaSpec {
    SaSpec {
        id: SaId {
            dst: ip("192.0.2.2"),
            spi: 0x1234_5678,
        },
        src: ip("192.0.2.1"),
        direction: SaDirection::Outbound,
        mode: IpsecMode::Tunnel,
        encr: EspEncr {
            id: 12,
            key_bits: 128,
        },
        encr_key: Zeroizing::new(vec![0x11; 16]),
        auth: Some(EspAuth { id: 12 }),
        auth_key: Zeroizing::new(vec![0x22; 32]),
        encap: Some(UdpEncap {
            sport: 4500,
            dport: 4500,
        }),
        selectors: Vec::new(),
        reqid: 7,
        esn: false,
        replay_window: 0,
        lifetime: Lifetime {
            hard_time: Some(Duration::from_secs(3600)),
            soft_time: Some(Duration::from_secs(3000)),
            ..Lifetime::default()
        },
    }
}

/// `setkey -c`: `add 192.0.2.1 192.0.2.2 esp 0x12345678 -m tunnel -u 7
/// -E aes-cbc 0x11.. -A hmac-sha256 0x22..` with NAT-T ports and
/// lifetimes, in `pfkey_send_x1`'s order (ipsec-tools libipsec/pfkey.c).
/// One field differs from setkey's: `sadb_sa_state` is MATURE, as RFC 2367
/// §2.3.1 requires of ADD, where KAME sends LARVAL (Linux ignores it).
#[cfg(target_endian = "little")]
const ADD: &[&str] = &[
    "02 03 00 03  1f 00 00 00  01 00 00 80  d2 04 00 00", // sadb_msg: v2, ADD, errno 0, ESP, len 31, seq 0x80000001, pid 1234
    "02 00 01 00  12 34 56 78  20 01 05 0c  00 00 00 00", // SA: spi (network order), replay 32, MATURE, SHA2-256 (5), AES-CBC (12)
    "02 00 13 00  02 00 00 00  00 00 00 00  07 00 00 00", // X_SA2: tunnel, sequence 0, reqid 7
    "03 00 05 00  ff 20 00 00",                           // ADDRESS_SRC: proto any (255), /32
    "02 00 00 00  c0 00 02 01  00 00 00 00  00 00 00 00", //   sockaddr_in AF_INET, port 0, 192.0.2.1
    "03 00 06 00  ff 20 00 00",                           // ADDRESS_DST
    "02 00 00 00  c0 00 02 02  00 00 00 00  00 00 00 00", //   192.0.2.2
    "03 00 09 00  80 00 00 00",                           // KEY_ENCRYPT: 128 bits
    "11 11 11 11  11 11 11 11  11 11 11 11  11 11 11 11",
    "05 00 08 00  00 01 00 00", // KEY_AUTH: 256 bits
    "22 22 22 22  22 22 22 22  22 22 22 22  22 22 22 22",
    "22 22 22 22  22 22 22 22  22 22 22 22  22 22 22 22",
    "04 00 03 00  00 00 00 00", // LIFETIME_HARD: no packet limit
    "00 00 00 00  00 00 00 00  10 0e 00 00  00 00 00 00", //   no byte limit, 3600 s after add
    "00 00 00 00  00 00 00 00", //   no use-time limit
    "04 00 04 00  00 00 00 00", // LIFETIME_SOFT
    "00 00 00 00  00 00 00 00  b8 0b 00 00  00 00 00 00", //   3000 s
    "00 00 00 00  00 00 00 00",
    "01 00 14 00  02 00 00 00", // X_NAT_T_TYPE: UDP_ENCAP_ESPINUDP
    "01 00 15 00  11 94 00 00", // X_NAT_T_SPORT 4500 (network order)
    "01 00 16 00  11 94 00 00", // X_NAT_T_DPORT 4500
];

#[test]
#[cfg(target_endian = "little")]
fn an_add_is_the_kame_layout_byte_for_byte() {
    let mut msg = convert::sa_message(MsgType::Add, &outbound_sa()).unwrap();
    msg.header.seq = 0x8000_0001;
    msg.header.pid = 1234;
    assert_eq!(hex::encode(msg.emit().unwrap()), hex::encode(bytes(ADD)));
    assert_eq!(Message::parse(&bytes(ADD)).unwrap(), msg);
}

/// `setkey -c`: `spdadd 198.51.100.0/24 203.0.113.0/24 any -P out ipsec
/// esp/tunnel/192.0.2.1-192.0.2.2/unique:7;` (setkey also sends an
/// all-zero LIFETIME_HARD, which Linux reads as "no limit", as here).
#[cfg(target_endian = "little")]
const SPDADD: &[&str] = &[
    "02 0e 00 00  10 00 00 00  02 00 00 80  d2 04 00 00", // sadb_msg: X_SPDADD, UNSPEC, len 16
    "03 00 05 00  ff 18 00 00",                           // ADDRESS_SRC: any protocol, /24
    "02 00 00 00  c6 33 64 00  00 00 00 00  00 00 00 00", //   198.51.100.0, port 0
    "03 00 06 00  ff 18 00 00",                           // ADDRESS_DST: /24
    "02 00 00 00  cb 00 71 00  00 00 00 00  00 00 00 00", //   203.0.113.0
    "08 00 12 00  02 00 02 00  00 00 00 00  80 fe ff 7f", // X_POLICY: IPSEC, out, id 0, priority 0x80000000 - 48*8
    "30 00 32 00  02 03 00 00  07 00 00 00  00 00 00 00", //   ipsecrequest: 48 bytes, ESP, tunnel, unique, reqid 7
    "02 00 00 00  c0 00 02 01  00 00 00 00  00 00 00 00", //   tunnel source 192.0.2.1
    "02 00 00 00  c0 00 02 02  00 00 00 00  00 00 00 00", //   tunnel destination 192.0.2.2
];

fn outbound_policy() -> PolicySpec {
    PolicySpec {
        selector: Selector::ranges(
            (ip("198.51.100.0"), ip("198.51.100.255")),
            (ip("203.0.113.0"), ip("203.0.113.255")),
        ),
        direction: SaDirection::Outbound,
        action: PolicyAction::Protect {
            reqid: 7,
            mode: IpsecMode::Tunnel,
        },
        tunnel: Some((ip("192.0.2.1"), ip("192.0.2.2"))),
    }
}

#[test]
#[cfg(target_endian = "little")]
fn an_spdadd_is_the_kame_layout_byte_for_byte() {
    let msgs = convert::policy_messages(MsgType::XSpdAdd, &outbound_policy()).unwrap();
    assert_eq!(msgs.len(), 1);
    let mut msg = msgs[0].0.clone();
    msg.header.seq = 0x8000_0002;
    msg.header.pid = 1234;
    assert_eq!(hex::encode(msg.emit().unwrap()), hex::encode(bytes(SPDADD)));
    let parsed = Message::parse(&bytes(SPDADD)).unwrap();
    assert_eq!(parsed, msg);
    let (spec, dir) = convert::policy_spec(&parsed).unwrap();
    assert_eq!((spec, dir), (outbound_policy(), PolicyDir::Outbound));
}

/// An ACQUIRE as Linux `pfkey_send_acquire` builds it: SA endpoints,
/// X_POLICY naming the policy (index 0x1a1, out), a proposal with one
/// AES-CBC + SHA2-256 combination.
#[cfg(target_endian = "little")]
const ACQUIRE: &[&str] = &[
    "02 06 00 03  14 00 00 00  05 00 00 00  00 00 00 00", // ACQUIRE, ESP, len 20, seq 5, pid 0
    "03 00 05 00  00 20 00 00",
    "02 00 00 00  c0 00 02 01  00 00 00 00  00 00 00 00",
    "03 00 06 00  00 20 00 00",
    "02 00 00 00  c0 00 02 02  00 00 00 00  00 00 00 00",
    "02 00 12 00  02 00 02 00  a1 01 00 00  00 00 00 00", // X_POLICY: IPSEC, out, index 0x1a1
    "0a 00 0d 00  20 00 00 00",                           // PROPOSAL: replay 32, one comb
    "05 0c 00 00  00 01 00 01  80 00 00 01  00 00 00 00", //   auth 5, encrypt 12, bits 256/256, 128/256
    "00 00 00 00  00 00 00 00",                           //   allocations
    "00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00", //   bytes
    "40 19 01 00  00 00 00 00  80 51 01 00  00 00 00 00", //   addtime soft 20 h, hard 24 h
    "70 62 00 00  00 00 00 00  80 70 00 00  00 00 00 00", //   usetime soft 7 h, hard 8 h
];

#[test]
#[cfg(target_endian = "little")]
fn a_linux_acquire_names_its_policy_and_proposal() {
    let msg = Message::parse(&bytes(ACQUIRE)).unwrap();
    assert_eq!(msg.header.msg_type, MsgType::Acquire);
    assert_eq!(
        convert::acquire_parts(&msg),
        Some((0x1a1, ip("192.0.2.1"), ip("192.0.2.2")))
    );
    let prop = msg.proposal().unwrap();
    assert_eq!(prop.replay, 32);
    assert_eq!(prop.combs.len(), 1);
    let c = prop.combs[0];
    assert_eq!((c.auth, c.encrypt, c.encrypt_maxbits), (5, 12, 256));
    assert_eq!((c.soft_addtime, c.hard_usetime), (72_000, 28_800));
}

fn sa_reply(msg_type: MsgType, lifetime: LifetimeKind) -> Message {
    Message::new(msg_type, SaType::Esp, 0, 0)
        .with(Extension::Sa(SaExt {
            spi: 0xc0ff_ee00,
            replay: 32,
            state: 1,
            auth: 5,
            encrypt: 12,
            flags: 0,
        }))
        .with(Extension::Lifetime(lifetime, LifetimeExt::default()))
        .with(Extension::Lifetime(
            LifetimeKind::Current,
            LifetimeExt {
                allocations: 3,
                bytes: 300,
                addtime: 1_700_000_000,
                usetime: 0,
            },
        ))
        .with(Extension::Address(
            AddressKind::Src,
            addr("[2001:db8::1]:0", 128),
        ))
        .with(Extension::Address(
            AddressKind::Dst,
            addr("[2001:db8::2]:0", 128),
        ))
        .with(Extension::Sa2(Sa2Ext {
            mode: Mode::Transport,
            sequence: 0,
            reqid: 9,
        }))
}

fn addr(s: &str, prefixlen: u8) -> AddressExt {
    AddressExt {
        proto: 0,
        prefixlen,
        addr: sock(s),
    }
}

#[test]
fn expire_is_hard_exactly_when_the_hard_lifetime_is_present() {
    let id = SaId {
        dst: ip("2001:db8::2"),
        spi: 0xc0ff_ee00,
    };
    for (kind, hard) in [(LifetimeKind::Hard, true), (LifetimeKind::Soft, false)] {
        let wire = sa_reply(MsgType::Expire, kind).emit().unwrap();
        let msg = Message::parse(&wire).unwrap();
        assert_eq!(
            convert::expire_event(&msg),
            Some(KernelEvent::Expire { id, hard })
        );
    }
}

#[test]
fn a_larval_sa_expiring_raises_nothing() {
    let mut msg = sa_reply(MsgType::Expire, LifetimeKind::Hard);
    msg.extensions[0] = Extension::Sa(SaExt {
        spi: 0x1000,
        ..SaExt::default()
    });
    assert_eq!(convert::expire_event(&msg), None);
    assert!(!convert::is_installed_sa(&msg));
}

#[test]
fn a_get_reply_gives_counters_mode_and_reqid() {
    let wire = sa_reply(MsgType::Get, LifetimeKind::Hard).emit().unwrap();
    let info = convert::sa_info(&Message::parse(&wire).unwrap(), SaDirection::Inbound).unwrap();
    assert_eq!((info.counters.packets, info.counters.bytes), (3, 300));
    assert_eq!((info.mode, info.reqid), (IpsecMode::Transport, 9));
    assert_eq!(info.src, ip("2001:db8::1"));
    assert_eq!(info.encap, None);
}

/// SADB_X_MIGRATE as Linux `pfkey_send_migrate` builds it: KMADDRESS,
/// the selector, X_POLICY with an (old, new) ipsecrequest pair.
fn migrate() -> Message {
    let rq = |s: &str, d: &str| IpsecRequest {
        proto: 50,
        mode: Mode::Tunnel,
        level: Level::Unique,
        reqid: 7,
        endpoints: Some((sock(s), sock(d))),
    };
    Message::new(MsgType::XMigrate, SaType::Esp, 0, 0)
        .with(Extension::KmAddress(KmAddress {
            local: sock("192.0.2.10:0"),
            remote: sock("192.0.2.2:0"),
        }))
        .with(Extension::Address(
            AddressKind::Src,
            addr("198.51.100.0:0", 24),
        ))
        .with(Extension::Address(
            AddressKind::Dst,
            addr("203.0.113.0:0", 24),
        ))
        .with(Extension::Policy(PolicyExt {
            policy_type: PolicyType::Ipsec,
            dir: PolicyDir::Outbound,
            id: 0,
            priority: 0,
            requests: vec![
                rq("192.0.2.1:0", "192.0.2.2:0"),
                rq("192.0.2.10:0", "192.0.2.2:0"),
            ],
        }))
}

#[test]
fn a_migrate_moves_the_outbound_policy_endpoints() {
    let msg = Message::parse(&migrate().emit().unwrap()).unwrap();
    assert_eq!(msg.kmaddress().unwrap().local, sock("192.0.2.10:0"));
    let Some(KernelEvent::Migrate {
        selector,
        direction,
        old,
        new,
    }) = convert::migrate_event(&msg)
    else {
        panic!("no migrate event");
    };
    assert_eq!(direction, SaDirection::Outbound);
    assert_eq!(selector.dst, (ip("203.0.113.0"), ip("203.0.113.255")));
    assert_eq!(old, (ip("192.0.2.1"), ip("192.0.2.2")));
    assert_eq!(new, (ip("192.0.2.10"), ip("192.0.2.2")));
}

/// Every extension kind, IPv6 where addresses appear.
fn everything() -> Message {
    Message::new(MsgType::Register, SaType::Esp, 42, 7)
        .with(sa_reply(MsgType::Add, LifetimeKind::Soft).extensions[0].clone())
        .with(Extension::Lifetime(
            LifetimeKind::Hard,
            LifetimeExt {
                allocations: 1,
                bytes: 2,
                addtime: 3,
                usetime: 4,
            },
        ))
        .with(Extension::Address(
            AddressKind::Src,
            AddressExt {
                proto: 6,
                prefixlen: 64,
                addr: SocketAddr::V6(std::net::SocketAddrV6::new(
                    "2001:db8::".parse().unwrap(),
                    443,
                    0x12345,
                    3,
                )),
            },
        ))
        .with(Extension::Address(
            AddressKind::NatTOa,
            addr("192.0.2.9:0", 32),
        ))
        .with(Extension::Key(
            KeyKind::Encrypt,
            KeyExt {
                bits: 160,
                key: Zeroizing::new(vec![7; 20]),
            },
        ))
        .with(Extension::SpiRange(SpiRange {
            min: 0x100,
            max: 0x200,
        }))
        .with(Extension::Proposal(Proposal {
            replay: 4,
            combs: vec![Comb {
                auth: 3,
                encrypt: 12,
                hard_bytes: 9,
                ..Comb::default()
            }],
        }))
        .with(Extension::Supported {
            encrypt: true,
            algs: vec![Alg {
                id: 12,
                ivlen: 16,
                minbits: 128,
                maxbits: 256,
            }],
        })
        .with(Extension::Supported {
            encrypt: false,
            algs: vec![],
        })
        .with(migrate().extensions[3].clone())
        .with(Extension::Sa2(Sa2Ext {
            mode: Mode::Unknown(9),
            sequence: 5,
            reqid: 6,
        }))
        .with(Extension::NatTType(2))
        .with(Extension::NatTPort {
            dst: false,
            port: 1,
        })
        .with(Extension::KmAddress(KmAddress {
            local: sock("[2001:db8::1]:0"),
            remote: sock("[2001:db8::2]:0"),
        }))
        .with(Extension::Unknown(24, vec![1, 2, 3, 4]))
}

#[test]
fn every_extension_round_trips() {
    let msg = everything();
    let wire = msg.emit().unwrap();
    assert_eq!(wire.len() % 8, 0);
    assert_eq!(Message::parse(&wire).unwrap(), msg);
    pfkey_msg(&wire);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let wire = everything().emit().unwrap();
    for cut in 0..wire.len() {
        assert!(Message::parse(&wire[..cut]).is_err(), "cut at {cut}");
        pfkey_msg(&wire[..cut]);
    }
}

#[test]
fn header_length_version_and_duplicates_are_checked() {
    let mut wire = everything().emit().unwrap();
    wire.push(0);
    assert!(matches!(
        Message::parse(&wire),
        Err(DecodeError::BadLength("sadb_msg", _))
    ));
    wire.pop();
    wire[0] = 1;
    assert_eq!(Message::parse(&wire), Err(DecodeError::Version(1)));
    let dup = Message::new(MsgType::Get, SaType::Esp, 1, 1)
        .with(Extension::NatTType(2))
        .with(Extension::NatTType(2));
    assert_eq!(
        Message::parse(&dup.emit().unwrap()),
        Err(DecodeError::Duplicate(20))
    );
    // A zero-length extension would loop forever in a careless parser.
    let mut zero = Message::new(MsgType::Get, SaType::Esp, 1, 1)
        .with(Extension::NatTType(2))
        .emit()
        .unwrap();
    zero[16] = 0;
    assert!(matches!(
        Message::parse(&zero),
        Err(DecodeError::BadLength("sadb_ext", 0))
    ));
}

#[test]
fn bit_flips_and_garbage_never_panic() {
    let mut seeds = vec![everything().emit().unwrap(), migrate().emit().unwrap()];
    #[cfg(target_endian = "little")]
    seeds.extend([bytes(ADD), bytes(SPDADD), bytes(ACQUIRE)]);
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for seed in &seeds {
        for _ in 0..2000 {
            let mut m = seed.clone();
            for _ in 0..=(next() % 4) {
                let i = (next() as usize) % m.len();
                m[i] ^= 1 << (next() % 8);
            }
            pfkey_msg(&m);
        }
    }
    for len in 0..400 {
        let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if m.len() >= 16 {
            m[0] = 2;
            m[4..6].copy_from_slice(&u16::try_from(len / 8).unwrap().to_ne_bytes());
        }
        pfkey_msg(&m);
    }
}

#[test]
fn an_ipsecrequest_claiming_more_than_its_policy_is_refused() {
    let mut wire = migrate().emit().unwrap();
    // The first ipsecrequest's length: after header (16), KMADDRESS (40),
    // two addresses (48) and the policy header (16).
    let at = 16 + 40 + 48 + 16;
    wire[at..at + 2].copy_from_slice(&0x400u16.to_ne_bytes());
    assert_eq!(
        Message::parse(&wire),
        Err(DecodeError::BadLength("ipsecrequest", 0x400))
    );
}
