//! Does this kernel carry ESP? Daemons ask before choosing between the
//! XFRM backend and the userspace datapath (`--kernel auto`).

use std::net::{IpAddr, Ipv4Addr};

use zeroize::Zeroizing;

use super::attr::{Algo, Attr};
use super::channel::{Channel, TransactError};
use super::convert;
use super::msg::{Body, WithAttrs};
use super::structs::{IPPROTO_ESP, UsersaInfo, UserspiInfo, XfrmAddr, XfrmId};
use crate::{EspAuth, EspEncr, IpsecMode, SaDirection, SaId, SaSpec};

/// Whether the kernel of the current network namespace accepts an ESP SA.
///
/// The probe leaves nothing behind:
/// 1. `XFRM_MSG_ALLOCSPI` for ESP from 127.0.0.1 to 127.0.0.1 reserves an
///    SPI nobody else uses (a larval SA, which needs no ESP support);
/// 2. `XFRM_MSG_UPDSA` fills it in as a transport-mode AES-CBC +
///    HMAC-SHA-256 SA with zero keys, retried with `ecb(cipher_null)`
///    if the kernel lacks those algorithms (`ENOSYS`): the kernel looks
///    up the ESP type (loading `esp4` if it can) and answers
///    `EPROTONOSUPPORT` without it;
/// 3. `XFRM_MSG_DELSA` removes the SA, larval or complete, whatever step
///    2 said.
///
/// No policy refers to the SA, so no packet can use it during the
/// microseconds it exists. False when the kernel has no XFRM netlink or
/// the caller lacks `CAP_NET_ADMIN`; the reason is logged at debug level.
///
/// # Panics
/// Outside a tokio runtime.
pub async fn kernel_has_esp() -> bool {
    match probe_esp().await {
        Ok(()) => true,
        Err(why) => {
            tracing::debug!("xfrm: no kernel ESP: {why}");
            false
        }
    }
}

/// [`kernel_has_esp`] with the reason for a negative answer.
///
/// # Errors
/// Why the kernel does not (or cannot be shown to) carry ESP.
///
/// # Panics
/// Outside a tokio runtime.
pub async fn probe_esp() -> Result<(), String> {
    let mut ch = Channel::open().map_err(|e| format!("no XFRM netlink socket: {e}"))?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let spi = alloc_spi(&mut ch, loopback).await?;
    let result = fill_in(&mut ch, loopback, spi).await;
    let id = SaId { dst: loopback, spi };
    let delete = Body::DelSa(WithAttrs {
        fixed: convert::sa_id(id),
        attrs: Vec::new(),
    });
    if let Err(e) = ch.ack(delete).await {
        tracing::warn!("xfrm: ESP probe could not delete its SA {spi:#010x} on 127.0.0.1: {e:?}");
    }
    result
}

async fn alloc_spi(ch: &mut Channel, addr: IpAddr) -> Result<u32, String> {
    let (a, family) = XfrmAddr::from_ip(addr);
    let req = UserspiInfo {
        info: UsersaInfo {
            id: XfrmId {
                daddr: a,
                spi: 0,
                proto: IPPROTO_ESP,
            },
            saddr: a,
            family,
            ..UsersaInfo::default()
        },
        min: 0x100,
        max: u32::MAX,
    };
    let body = Body::AllocSpi(WithAttrs {
        fixed: req,
        attrs: Vec::new(),
    });
    match ch.get(body).await {
        Ok(Body::NewSa(m)) => Ok(m.info.id.spi),
        Ok(other) => Err(format!("ALLOCSPI answered with {other:?}")),
        Err(e) => Err(format!("ALLOCSPI failed: {}", describe(&e))),
    }
}

async fn fill_in(ch: &mut Channel, addr: IpAddr, spi: u32) -> Result<(), String> {
    let spec = SaSpec {
        id: SaId { dst: addr, spi },
        src: addr,
        direction: SaDirection::Inbound,
        mode: IpsecMode::Transport,
        encr: EspEncr {
            id: 12,
            key_bits: 128,
        },
        encr_key: Zeroizing::new(vec![0; 16]),
        auth: Some(EspAuth { id: 12 }),
        auth_key: Zeroizing::new(vec![0; 32]),
        encap: None,
        selectors: Vec::new(),
        reqid: 0,
        esn: false,
        replay_window: 0,
        lifetime: Default::default(),
    };
    let msg = convert::sa_message(&spec).map_err(|e| e.to_string())?;
    let mut null = msg.clone();
    null.attrs = vec![Attr::AlgCrypt(Algo::new("ecb(cipher_null)", None, &[]))];
    for candidate in [msg, null] {
        match ch.ack(Body::UpdSa(candidate)).await {
            Ok(()) => return Ok(()),
            Err(TransactError::Kernel { errno, .. }) if errno == libc::ENOSYS => continue,
            Err(e) => return Err(describe(&e)),
        }
    }
    Err("the kernel has neither cbc(aes)+hmac(sha256) nor ecb(cipher_null)".into())
}

fn describe(e: &TransactError) -> String {
    match e {
        TransactError::Kernel { errno, message } => {
            let name = nix::errno::Errno::from_raw(*errno);
            match message {
                Some(m) => format!("{name:?}: {m}"),
                None => format!("{name:?} ({})", name.desc()),
            }
        }
        TransactError::Io(e) => e.to_string(),
        TransactError::Decode(e) => e.to_string(),
    }
}
