//! `pfkey-probe`: proves a kernel speaks PF_KEY v2 (RFC 2367), for the qemu guest tests.
//!
//! racoon3 has no PF_KEY backend yet, and busybox has no `setkey`, so this small binary is
//! what opens `socket(AF_KEY, SOCK_RAW, PF_KEY_V2)` inside the guest:
//!
//! * `pfkey-probe register`: SADB_REGISTER for ESP; prints the reply's type, errno and how
//!   many authentication and encryption algorithms the kernel offers.
//! * `pfkey-probe dump`: SADB_DUMP for ESP; prints one `SA spi=0x... ` line per SA and a count.
//!
//! Exits 0 on a well-formed, errno-free answer, 1 otherwise (with the reason on stderr).

use std::num::NonZeroU32;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

use rustix::net::{AddressFamily, Protocol, SocketType, sockopt};

/// PF_KEY_V2 (the socket protocol and `sadb_msg_version`).
const PF_KEY_V2: u8 = 2;
const SADB_REGISTER: u8 = 7;
const SADB_DUMP: u8 = 10;
const SADB_SATYPE_ESP: u8 = 3;
const SADB_EXT_SA: u16 = 1;
const SADB_EXT_SUPPORTED_AUTH: u16 = 14;
const SADB_EXT_SUPPORTED_ENCRYPT: u16 = 15;
/// `errno` of an empty SADB_DUMP.
const ENOENT: u8 = 2;

/// A parsed `sadb_msg` header plus its extensions as (type, body).
struct Reply {
    msg_type: u8,
    errno: u8,
    seq: u32,
    exts: Vec<(u16, Vec<u8>)>,
}

fn main() -> ExitCode {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let result = match cmd.as_str() {
        "register" => register(),
        "dump" => dump(),
        _ => Err("usage: pfkey-probe register|dump".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("pfkey-probe {cmd}: {why}");
            ExitCode::FAILURE
        }
    }
}

fn open() -> Result<OwnedFd, String> {
    let proto = NonZeroU32::new(u32::from(PF_KEY_V2)).map(Protocol::from_raw);
    let fd = rustix::net::socket(AddressFamily::KEY, SocketType::RAW, proto)
        .map_err(|e| format!("socket(AF_KEY): {e}"))?;
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(Duration::from_secs(5)))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    println!("AF_KEY socket opened");
    Ok(fd)
}

/// Sends a bare `sadb_msg` of `msg_type` for ESP.
fn send(fd: &OwnedFd, msg_type: u8, seq: u32) -> Result<(), String> {
    let mut msg = [0u8; 16];
    msg[0] = PF_KEY_V2;
    msg[1] = msg_type;
    msg[3] = SADB_SATYPE_ESP;
    msg[4..6].copy_from_slice(&2u16.to_ne_bytes()); // length in 8-byte units
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    msg[12..16].copy_from_slice(&std::process::id().to_ne_bytes());
    rustix::io::write(fd, &msg).map_err(|e| format!("write: {e}"))?;
    Ok(())
}

/// Reads messages until one of `msg_type` arrives.
fn recv(fd: &OwnedFd, msg_type: u8) -> Result<Reply, String> {
    loop {
        let mut buf = vec![0u8; 65536];
        let n = rustix::io::read(fd, &mut buf).map_err(|e| format!("read: {e}"))?;
        let reply = parse(&buf[..n]).ok_or_else(|| format!("malformed {n}-byte message"))?;
        if reply.msg_type == msg_type {
            return Ok(reply);
        }
    }
}

fn parse(msg: &[u8]) -> Option<Reply> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let len = usize::from(u16_at(msg, 4)?) * 8;
    let msg = msg.get(..len)?;
    let mut reply = Reply {
        msg_type: *msg.get(1)?,
        errno: *msg.get(2)?,
        seq: u32::from_ne_bytes(msg.get(8..12)?.try_into().ok()?),
        exts: Vec::new(),
    };
    let mut at = 16;
    while at < msg.len() {
        let ext_len = usize::from(u16_at(msg, at)?) * 8;
        let ext_type = u16_at(msg, at + 2)?;
        if ext_len < 4 {
            return None;
        }
        reply
            .exts
            .push((ext_type, msg.get(at + 4..at + ext_len)?.to_vec()));
        at += ext_len;
    }
    Some(reply)
}

fn register() -> Result<(), String> {
    let fd = open()?;
    send(&fd, SADB_REGISTER, 1)?;
    let reply = recv(&fd, SADB_REGISTER)?;
    // Each supported-algorithms extension: 4 reserved bytes, then 8-byte sadb_alg entries.
    let count = |kind: u16| {
        reply
            .exts
            .iter()
            .filter(|(t, _)| *t == kind)
            .map(|(_, body)| body.len().saturating_sub(4) / 8)
            .sum::<usize>()
    };
    let (auth, enc) = (
        count(SADB_EXT_SUPPORTED_AUTH),
        count(SADB_EXT_SUPPORTED_ENCRYPT),
    );
    println!(
        "SADB_REGISTER(ESP) -> type={} errno={} auth_algs={auth} enc_algs={enc}",
        reply.msg_type, reply.errno
    );
    if reply.errno != 0 || auth == 0 || enc == 0 {
        return Err("the kernel offered no algorithms".into());
    }
    Ok(())
}

fn dump() -> Result<(), String> {
    let fd = open()?;
    send(&fd, SADB_DUMP, 2)?;
    let mut sas = 0;
    loop {
        let reply = recv(&fd, SADB_DUMP)?;
        if reply.errno == ENOENT {
            break;
        }
        if reply.errno != 0 {
            return Err(format!("SADB_DUMP errno={}", reply.errno));
        }
        if let Some((_, sa)) = reply.exts.iter().find(|(t, _)| *t == SADB_EXT_SA) {
            // sadb_sa after the 4-byte ext header: spi (network order) comes first.
            let spi = sa
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes);
            println!("SA spi={:#010x}", spi.unwrap_or(0));
            sas += 1;
        }
        if reply.seq == 0 {
            break;
        }
    }
    println!("SADB_DUMP(ESP) listed {sas} SA(s)");
    Ok(())
}
