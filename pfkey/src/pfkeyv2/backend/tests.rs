//! The backend's shell against a scripted kernel on the other end of a
//! Unix datagram socket pair: request/reply matching past other key
//! managers' broadcasts, dumps, errno mapping, GETSPI then UPDATE, and
//! kernel messages turned into events. The real AF_KEY is exercised by the
//! guest test; this host has none.
//!
//! The scripted replies follow Linux `af_key.c`: replies copy the request's
//! seq and pid; errors are the request header with `sadb_msg_errno` set;
//! dump entries carry a countdown and the last one seq 0; FLUSH answers
//! twice.

use std::net::IpAddr;
use std::time::Duration;

use zeroize::Zeroizing;

use super::*;
use crate::pfkeyv2::ext::{
    AddressExt, AddressKind, Alg, Extension, IpsecRequest, Level, LifetimeExt, LifetimeKind, Mode,
    PolicyDir, PolicyExt, PolicyType, SaExt,
};
use crate::{EspAuth, EspEncr, IpsecMode, Lifetime, PolicyAction};

const EVENT_WAIT: Duration = Duration::from_secs(5);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pair() -> (AsyncFd<Socket>, AsyncFd<Socket>) {
    let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM, None).unwrap();
    for s in [&a, &b] {
        s.set_nonblocking(true).unwrap();
    }
    let reg = crate::sys::register;
    (reg(a).unwrap(), reg(b).unwrap())
}

/// What the scripted kernel saw: each request's type, SPI and policy
/// direction.
type Seen = mpsc::UnboundedSender<(MsgType, Option<u32>, Option<PolicyDir>)>;

/// The scripted kernel: answers requests, and sends what `inject` gives it.
async fn kernel(sock: AsyncFd<Socket>, seen: Seen, mut inject: mpsc::UnboundedReceiver<Message>) {
    let mut buf = vec![0; MAX_MSG];
    loop {
        tokio::select! {
            r = sock.async_io(Interest::READABLE, |s| { let mut r: &Socket = s; r.read(&mut buf) }) => {
                let Ok(n) = r else { return };
                let req = Message::parse(&buf[..n]).expect("the backend sends valid messages");
                let _ = seen.send((
                    req.header.msg_type,
                    req.sa().map(|s| s.spi),
                    req.policy().map(|p| p.dir),
                ));
                for m in replies(&req) {
                    send(&sock, &m).await;
                }
            }
            Some(m) = inject.recv() => send(&sock, &m).await,
        }
    }
}

async fn send(sock: &AsyncFd<Socket>, m: &Message) {
    let bytes = m.emit().unwrap();
    sock.async_io(Interest::WRITABLE, |s| {
        let mut w: &Socket = s;
        w.write(&bytes)
    })
    .await
    .unwrap();
}

fn error(req: &Message, errno: i32) -> Message {
    let mut m = Message::new(
        req.header.msg_type,
        req.header.satype,
        req.header.seq,
        req.header.pid,
    );
    m.header.errno = u8::try_from(errno).unwrap();
    m
}

fn replies(req: &Message) -> Vec<Message> {
    let h = req.header;
    let reply = |t| Message::new(t, h.satype, h.seq, h.pid);
    // Another key manager's ADD, broadcast to every socket, with our seq.
    let noise = Message::new(MsgType::Add, SaType::Esp, h.seq, h.pid ^ 1);
    let answer = match h.msg_type {
        MsgType::Register => vec![
            reply(MsgType::Register)
                .with(supported(true, &[3, 12]))
                .with(supported(false, &[3, 5, 6, 7])),
        ],
        MsgType::GetSpi => {
            let private = req.sa2().unwrap().reqid >= 0x4000_0000;
            let spi = if private { 0x5678 } else { 0x1234 };
            vec![reply(MsgType::GetSpi).with(sa_ext(spi, 0))]
        }
        MsgType::Update if req.sa().unwrap().spi == 0x9999 => vec![error(req, libc::ESRCH)],
        MsgType::Delete if req.sa().unwrap().spi == 0xdead => vec![error(req, libc::ESRCH)],
        MsgType::Get => vec![sa_entry(reply(MsgType::Get), req.sa().unwrap().spi, 12)],
        MsgType::Dump => {
            let mut live = sa_entry(Message::new(MsgType::Dump, SaType::Esp, 2, h.pid), 7, 12);
            live.header.seq = 2;
            let larval = sa_entry(Message::new(MsgType::Dump, SaType::Esp, 0, h.pid), 8, 0);
            vec![live, larval]
        }
        MsgType::XSpdDump => vec![error(req, libc::ENOENT)],
        MsgType::XSpdGet => vec![policy_reply(req)],
        MsgType::XSpdDelete if req.policy().unwrap().dir == PolicyDir::Fwd => {
            vec![error(req, libc::ENOENT)]
        }
        MsgType::Flush | MsgType::XSpdFlush => vec![req.clone(), req.clone()],
        _ => vec![req.clone()],
    };
    let mut out = vec![noise];
    out.extend(answer);
    out
}

fn supported(encrypt: bool, ids: &[u8]) -> Extension {
    Extension::Supported {
        encrypt,
        algs: ids
            .iter()
            .map(|&id| Alg {
                id,
                ..Alg::default()
            })
            .collect(),
    }
}

fn sa_ext(spi: u32, encrypt: u8) -> Extension {
    Extension::Sa(SaExt {
        spi,
        encrypt,
        state: if encrypt == 0 { 0 } else { 1 },
        ..SaExt::default()
    })
}

fn host(s: &str) -> AddressExt {
    AddressExt {
        proto: 0,
        prefixlen: 32,
        addr: SocketAddr::new(ip(s), 0),
    }
}

fn sa_entry(m: Message, spi: u32, encrypt: u8) -> Message {
    m.with(sa_ext(spi, encrypt))
        .with(Extension::Lifetime(
            LifetimeKind::Current,
            LifetimeExt {
                allocations: 2,
                bytes: 200,
                ..LifetimeExt::default()
            },
        ))
        .with(Extension::Address(AddressKind::Src, host("192.0.2.1")))
        .with(Extension::Address(AddressKind::Dst, host("192.0.2.2")))
        .with(Extension::Sa2(crate::pfkeyv2::ext::Sa2Ext {
            mode: Mode::Tunnel,
            sequence: 0,
            reqid: 4,
        }))
}

fn policy_reply(req: &Message) -> Message {
    let h = req.header;
    let sel = |s: &str| AddressExt {
        proto: 6,
        prefixlen: 24,
        addr: SocketAddr::new(ip(s), 0),
    };
    Message::new(MsgType::XSpdGet, SaType::Unspec, h.seq, h.pid)
        .with(Extension::Address(AddressKind::Src, sel("198.51.100.0")))
        .with(Extension::Address(AddressKind::Dst, sel("203.0.113.0")))
        .with(Extension::Policy(PolicyExt {
            policy_type: PolicyType::Ipsec,
            dir: PolicyDir::Outbound,
            id: req.policy().unwrap().id,
            priority: 0,
            requests: vec![IpsecRequest {
                proto: 50,
                mode: Mode::Transport,
                level: Level::Unique,
                reqid: 3,
                endpoints: None,
            }],
        }))
}

fn sa(spi: u32) -> SaSpec {
    SaSpec {
        id: SaId {
            dst: ip("192.0.2.2"),
            spi,
        },
        src: ip("192.0.2.1"),
        direction: SaDirection::Outbound,
        mode: IpsecMode::Tunnel,
        encr: EspEncr {
            id: 12,
            key_bits: 128,
        },
        encr_key: Zeroizing::new(vec![1; 16]),
        auth: Some(EspAuth { id: 12 }),
        auth_key: Zeroizing::new(vec![2; 32]),
        encap: None,
        selectors: Vec::new(),
        reqid: 4,
        esn: false,
        replay_window: 0,
        lifetime: Lifetime::default(),
    }
}

struct Rig {
    kernel: PfKeyKernel,
    seen: mpsc::UnboundedReceiver<(MsgType, Option<u32>, Option<PolicyDir>)>,
    inject: mpsc::UnboundedSender<Message>,
}

async fn rig() -> Rig {
    let (ours, theirs) = pair();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (inject, inject_rx) = mpsc::unbounded_channel();
    tokio::spawn(kernel(theirs, seen_tx, inject_rx));
    let kernel = PfKeyKernel::start(ours).await.unwrap();
    assert_eq!(seen.recv().await.unwrap().0, MsgType::Register);
    Rig {
        kernel,
        seen,
        inject,
    }
}

impl Rig {
    fn sent(&mut self) -> Vec<(MsgType, Option<u32>, Option<PolicyDir>)> {
        std::iter::from_fn(|| self.seen.try_recv().ok()).collect()
    }
}

#[tokio::test]
async fn requests_find_their_replies_past_other_key_managers_broadcasts() {
    let mut r = rig().await;
    let k = &r.kernel;
    assert_eq!(
        (k.encrypt_algs.clone(), k.auth_algs.len()),
        (vec![3, 12], 4)
    );

    // GETSPI twice for the same SA: Linux returns the same larval SA, so
    // the second asks again with a private reqid.
    let src = ip("192.0.2.1");
    let dst = ip("192.0.2.2");
    assert_eq!(k.alloc_spi(src, dst, 4).await, Ok(0x1234));
    assert_eq!(k.alloc_spi(src, dst, 4).await, Ok(0x5678));
    // The reserved SPI is filled in with UPDATE, another one added.
    k.add_sa(sa(0x1234)).await.unwrap();
    k.add_sa(sa(0x7777)).await.unwrap();
    let sent: Vec<_> = r.sent().into_iter().map(|(t, spi, _)| (t, spi)).collect();
    assert_eq!(
        sent,
        [
            (MsgType::GetSpi, None),
            (MsgType::GetSpi, None),
            (MsgType::GetSpi, None),
            (MsgType::Update, Some(0x1234)),
            (MsgType::Add, Some(0x7777)),
        ]
    );

    let info = r.kernel.get_sa(sa(0x7777).id).await.unwrap();
    assert_eq!((info.counters.packets, info.reqid), (2, 4));
    assert_eq!(
        info.direction,
        SaDirection::Outbound,
        "remembered from add_sa"
    );
    assert_eq!(
        r.kernel.delete_sa(sa(0xdead).id).await,
        Err(KernelError::NotFound(0xdead))
    );
    let ids = r.kernel.list_sas().await;
    assert_eq!(ids, [sa(7).id], "the larval dump entry is left out");
    assert!(r.kernel.list_policies().await.is_empty(), "ENOENT: empty");
    r.kernel.flush_sas().await.unwrap();
    r.kernel.flush_policies().await.unwrap();
    // Flush's second reply, arriving late, must not answer this one.
    assert!(r.kernel.get_sa(sa(0x7777).id).await.is_ok());
}

#[tokio::test]
async fn an_expired_reservation_falls_back_to_add() {
    let mut r = rig().await;
    lock(&r.kernel.shared.larval).insert(sa(0x9999).id);
    r.kernel.add_sa(sa(0x9999)).await.unwrap();
    let types: Vec<_> = r.sent().into_iter().map(|(t, ..)| t).collect();
    assert_eq!(types, [MsgType::Update, MsgType::Add]);
}

#[tokio::test]
async fn what_the_kernel_does_not_offer_is_refused_before_sending() {
    let mut r = rig().await;
    let gcm = SaSpec {
        encr: EspEncr {
            id: 20,
            key_bits: 128,
        },
        encr_key: Zeroizing::new(vec![1; 20]),
        auth: None,
        auth_key: Zeroizing::new(Vec::new()),
        ..sa(0x42)
    };
    let err = r.kernel.add_sa(gcm).await.unwrap_err();
    assert!(
        matches!(&err, KernelError::Unsupported { what, .. } if what.contains("AES-GCM")),
        "{err}"
    );
    let esn = SaSpec {
        esn: true,
        ..sa(0x43)
    };
    assert!(matches!(
        r.kernel.add_sa(esn).await,
        Err(KernelError::Unsupported { .. })
    ));
    assert!(r.sent().is_empty());
}

#[tokio::test]
async fn inbound_tunnel_policies_come_and_go_with_their_fwd_twin() {
    let mut r = rig().await;
    let policy = PolicySpec {
        selector: Selector::ranges(
            (ip("203.0.113.0"), ip("203.0.113.255")),
            (ip("198.51.100.0"), ip("198.51.100.255")),
        ),
        direction: SaDirection::Inbound,
        action: PolicyAction::Protect {
            reqid: 4,
            mode: IpsecMode::Tunnel,
        },
        tunnel: Some((ip("192.0.2.1"), ip("192.0.2.2"))),
    };
    r.kernel.add_policy(policy.clone()).await.unwrap();
    // The scripted kernel has no FWD policy to delete: that is fine.
    r.kernel
        .delete_policy(policy.selector, policy.direction)
        .await
        .unwrap();
    let sent: Vec<_> = r.sent().into_iter().map(|(t, _, d)| (t, d)).collect();
    assert_eq!(
        sent,
        [
            (MsgType::XSpdAdd, Some(PolicyDir::Inbound)),
            (MsgType::XSpdAdd, Some(PolicyDir::Fwd)),
            (MsgType::XSpdDelete, Some(PolicyDir::Inbound)),
            (MsgType::XSpdDelete, Some(PolicyDir::Fwd)),
        ]
    );
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<KernelEvent>) -> KernelEvent {
    tokio::time::timeout(EVENT_WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("the stream is open")
}

#[tokio::test]
async fn acquire_expire_and_migrate_become_events() {
    let mut r = rig().await;
    let mut events = r.kernel.take_events().unwrap();
    assert!(r.kernel.take_events().is_none());

    // ACQUIRE: the backend fetches policy 0x1a1 to learn its reqid.
    let acquire = Message::new(MsgType::Acquire, SaType::Esp, 5, 0)
        .with(Extension::Address(AddressKind::Src, host("192.0.2.1")))
        .with(Extension::Address(AddressKind::Dst, host("192.0.2.2")))
        .with(Extension::Policy(PolicyExt {
            policy_type: PolicyType::Ipsec,
            dir: PolicyDir::Outbound,
            id: 0x1a1,
            priority: 0,
            requests: Vec::new(),
        }));
    r.inject.send(acquire).unwrap();
    assert_eq!(
        next_event(&mut events).await,
        KernelEvent::Acquire {
            reqid: 3,
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            proto: 6
        }
    );
    assert_eq!(r.sent(), [(MsgType::XSpdGet, None, Some(PolicyDir::Any))]);

    // A larval SA's expiry raises nothing; a soft expiry of a real one does.
    let expire = |spi, encrypt, kind| {
        sa_entry(
            Message::new(MsgType::Expire, SaType::Esp, 0, 0),
            spi,
            encrypt,
        )
        .with(Extension::Lifetime(kind, LifetimeExt::default()))
    };
    r.inject
        .send(expire(0x1234, 0, LifetimeKind::Hard))
        .unwrap();
    r.inject.send(expire(0x77, 12, LifetimeKind::Soft)).unwrap();
    assert_eq!(
        next_event(&mut events).await,
        KernelEvent::Expire {
            id: sa(0x77).id,
            hard: false
        }
    );

    let rq = |s: &str| IpsecRequest {
        proto: 50,
        mode: Mode::Tunnel,
        level: Level::Unique,
        reqid: 4,
        endpoints: Some((
            SocketAddr::new(ip(s), 0),
            SocketAddr::new(ip("192.0.2.2"), 0),
        )),
    };
    let migrate = Message::new(MsgType::XMigrate, SaType::Esp, 0, 0)
        .with(Extension::Address(AddressKind::Src, host("198.51.100.7")))
        .with(Extension::Address(AddressKind::Dst, host("203.0.113.7")))
        .with(Extension::Policy(PolicyExt {
            policy_type: PolicyType::Ipsec,
            dir: PolicyDir::Outbound,
            id: 0,
            priority: 0,
            requests: vec![rq("192.0.2.1"), rq("192.0.2.10")],
        }));
    r.inject.send(migrate).unwrap();
    let KernelEvent::Migrate { old, new, .. } = next_event(&mut events).await else {
        panic!("expected a migrate event");
    };
    assert_eq!((old.0, new.0), (ip("192.0.2.1"), ip("192.0.2.10")));
}

#[tokio::test]
async fn a_dead_socket_ends_the_event_stream_and_fails_requests() {
    let r = rig().await;
    let mut events = r.kernel.take_events().unwrap();
    // Shut the socket for reading: the closest a socket pair comes to
    // an AF_KEY socket failing.
    let sock = r.kernel.shared.sock.get_ref();
    sock.shutdown(std::net::Shutdown::Read).unwrap();
    let ended = tokio::time::timeout(EVENT_WAIT, events.recv()).await;
    assert_eq!(ended.expect("the stream ends in time"), None);
    let err = r.kernel.flush_sas().await.unwrap_err();
    assert!(matches!(err, KernelError::Failed { .. }), "{err}");
}
