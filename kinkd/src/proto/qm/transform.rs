//! One ESP transform both ways: our [`EspProposal`] (IKEv2 numbers, as
//! [`libracoon::ipsec::SaSpec`] carries them) to an IPsec DOI Transform
//! substructure (RFC 2407 §4.4.4 transform IDs, §4.5 attributes) and back.
//!
//! | cipher | ESP transform ID | attributes |
//! |--------|------------------|------------|
//! | AES-CBC | ESP_AES = 12 (RFC 3602 §5.3) | Key Length (MUST), Authentication Algorithm |
//! | AES-GCM, 16-octet ICV | ESP_AES-GCM_16 = 20 (RFC 4106 §8.4) | Key Length, no Authentication Algorithm |
//! | ChaCha20-Poly1305 | 28, see [`ESP_CHACHA20_POLY1305`] | none of either |
//!
//! Authentication Algorithm values (RFC 2407 §4.5, RFC 4868 §4): HMAC-SHA 2,
//! HMAC-SHA2-256 5, -384 6, -512 7; the IKEv2 integrity IDs are 2, 12, 13, 14.

use std::time::Duration;

use libracoon::ipsec::{EspAuth, EspEncr, IpsecMode, Lifetime};
use libracoon::isakmp::{
    AuthAlgorithm, EncapsulationMode, EspTransformId, IpsecAttributes, LifeType, Transform,
};

use crate::proto::config::EspProposal;

/// The ESP transform ID kinkd sends for ChaCha20-Poly1305.
///
/// The IANA "IPSEC ESP Transform Identifiers" registry (closed by RFC 9395)
/// has no ChaCha20-Poly1305 entry, and libracoon's `EspTransformId` has none
/// either: RFC 7634 registered it for IKEv2 only (ENCR_CHACHA20_POLY1305 =
/// 28). The IKEv2 encryption registry was seeded from the ESP one and the
/// two agree on every shared value (12, 20, ...), so 28 is what IKEv1 stacks
/// that offer it in Quick Mode send. Without a Key Length attribute, as RFC
/// 7634 §3 requires for IKEv2.
pub const ESP_CHACHA20_POLY1305: u8 = 28;

/// The default lifetime of an SA whose transform has no SA Life attributes
/// (RFC 2407 §4.5: "the default value shall be assumed to be 28800 seconds").
const DEFAULT_LIFE_SECS: u64 = 28800;

/// IKEv2 encryption IDs ([`EspEncr::id`]).
const ENCR_AES_CBC: u16 = 12;
const ENCR_AES_GCM_16: u16 = 20;
const ENCR_CHACHA20_POLY1305: u16 = 28;

/// A log name in strongSwan's spelling, as iked prints CHILD SAs:
/// `AES_GCM_16-128`, `AES_CBC-256/HMAC_SHA2_256_128`, `CHACHA20_POLY1305`.
pub fn esp_name(p: &EspProposal) -> String {
    let encr = match p.encr.id {
        ENCR_AES_CBC => format!("AES_CBC-{}", p.encr.key_bits),
        ENCR_AES_GCM_16 => format!("AES_GCM_16-{}", p.encr.key_bits),
        ENCR_CHACHA20_POLY1305 => "CHACHA20_POLY1305".to_owned(),
        id => format!("ENCR_{id}-{}", p.encr.key_bits),
    };
    match p.auth {
        None => encr,
        Some(a) => format!("{encr}/{}", auth_name(a.id)),
    }
}

/// strongSwan's name of an IKEv2 integrity ID.
fn auth_name(id: u16) -> String {
    match id {
        2 => "HMAC_SHA1_96".to_owned(),
        12 => "HMAC_SHA2_256_128".to_owned(),
        13 => "HMAC_SHA2_384_192".to_owned(),
        14 => "HMAC_SHA2_512_256".to_owned(),
        id => format!("AUTH_{id}"),
    }
}

/// The Transform substructure for `p` with transform number `num`.
///
/// An integrity ID outside the four above goes out as Authentication
/// Algorithm 0 (reserved), which any peer refuses, rather than as ESP
/// without authentication; the configuration never produces one.
pub(super) fn to_transform(
    num: u8,
    p: &EspProposal,
    mode: IpsecMode,
    life: &Lifetime,
) -> Transform<'static> {
    let (id, key_length) = match p.encr.id {
        ENCR_CHACHA20_POLY1305 => (ESP_CHACHA20_POLY1305, None),
        ENCR_AES_CBC => (EspTransformId::AesCbc.into(), Some(p.encr.key_bits)),
        ENCR_AES_GCM_16 => (EspTransformId::AesGcm16.into(), Some(p.encr.key_bits)),
        // The IKEv2 ids were taken from the ESP registry: pass through.
        other => (u8::try_from(other).unwrap_or(0), Some(p.encr.key_bits)),
    };
    let attrs = IpsecAttributes {
        lifetimes: life_attributes(life),
        mode: Some(match mode {
            IpsecMode::Tunnel => EncapsulationMode::Tunnel,
            IpsecMode::Transport => EncapsulationMode::Transport,
        }),
        auth: p.auth.map(|a| auth_to_isakmp(a.id)),
        key_length,
        ..IpsecAttributes::default()
    };
    Transform {
        num,
        id,
        attributes: attrs.to_attributes(),
    }
}

/// SA Life Type/Duration pairs for the hard limits of `life`: seconds
/// (at least 1), then kilobytes (at least 1). No limit, no attribute.
fn life_attributes(life: &Lifetime) -> Vec<(LifeType, u64)> {
    let mut out = Vec::new();
    if let Some(t) = life.hard_time {
        out.push((LifeType::Seconds, t.as_secs().max(1)));
    }
    if let Some(b) = life.hard_bytes {
        out.push((LifeType::Kilobytes, (b / 1024).max(1)));
    }
    out
}

fn auth_to_isakmp(id: u16) -> AuthAlgorithm {
    match id {
        2 => AuthAlgorithm::HmacSha1,
        12 => AuthAlgorithm::HmacSha2_256,
        13 => AuthAlgorithm::HmacSha2_384,
        14 => AuthAlgorithm::HmacSha2_512,
        _ => AuthAlgorithm::from(0),
    }
}

/// What one received transform means to kinkd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reading {
    pub(super) esp: EspProposal,
    pub(super) mode: IpsecMode,
    pub(super) lifetime: Lifetime,
}

/// Reads an ESP transform, or says why kinkd cannot use it (for the
/// operator: the caller skips the transform).
pub(super) fn from_transform(t: &Transform<'_>) -> Result<Reading, String> {
    let attrs = IpsecAttributes::from_attributes(&t.attributes)
        .map_err(|e| format!("{}: {e}", transform_name(t.id)))?;
    let name = || transform_name(t.id);
    if attrs.group.is_some() {
        return Err(format!("{}: PFS (KE) is not supported", name()));
    }
    if attrs.esn {
        return Err(format!("{}: extended sequence numbers", name()));
    }
    let encr = encr_from(t.id, attrs.key_length).ok_or_else(|| match attrs.key_length {
        Some(bits) => format!("{}-{bits}", name()),
        None => name(),
    })?;
    let auth = auth_from(encr, attrs.auth).map_err(|why| format!("{}: {why}", name()))?;
    let mode = match attrs.mode {
        Some(EncapsulationMode::Tunnel) => IpsecMode::Tunnel,
        Some(EncapsulationMode::Transport) => IpsecMode::Transport,
        Some(other) => return Err(format!("{}: mode {other}", name())),
        None => return Err(format!("{}: no encapsulation mode", name())),
    };
    let lifetime = lifetime_from(&attrs.lifetimes).map_err(|why| format!("{}: {why}", name()))?;
    Ok(Reading {
        esp: EspProposal { encr, auth },
        mode,
        lifetime,
    })
}

/// The cipher of ESP transform `id` with Key Length `bits`, if kinkd can
/// name it: AES-CBC and AES-GCM-16 need 128, 192 or 256 bits (RFC 3602
/// §5.3, RFC 4106 §8.4); ChaCha20-Poly1305 takes none (or the fixed 256).
fn encr_from(id: u8, bits: Option<u16>) -> Option<EspEncr> {
    let aes = |ikev2: u16| {
        bits.filter(|b| matches!(b, 128 | 192 | 256))
            .map(|key_bits| EspEncr {
                id: ikev2,
                key_bits,
            })
    };
    match EspTransformId::from(id) {
        EspTransformId::AesCbc => aes(ENCR_AES_CBC),
        EspTransformId::AesGcm16 => aes(ENCR_AES_GCM_16),
        _ if id == ESP_CHACHA20_POLY1305 && matches!(bits, None | Some(256)) => Some(EspEncr {
            id: ENCR_CHACHA20_POLY1305,
            key_bits: 256,
        }),
        _ => None,
    }
}

/// The integrity algorithm: required with AES-CBC (kinkd never runs ESP
/// without integrity), forbidden with an AEAD (RFC 4106 §8.4).
fn auth_from(encr: EspEncr, auth: Option<AuthAlgorithm>) -> Result<Option<EspAuth>, String> {
    let aead = encr.id != ENCR_AES_CBC;
    let id = match auth {
        None if aead => return Ok(None),
        None => return Err("no authentication algorithm".to_owned()),
        Some(a) if aead => return Err(format!("{a} with an AEAD cipher")),
        Some(AuthAlgorithm::HmacSha1) => 2,
        Some(AuthAlgorithm::HmacSha2_256) => 12,
        Some(AuthAlgorithm::HmacSha2_384) => 13,
        Some(AuthAlgorithm::HmacSha2_512) => 14,
        Some(a) => return Err(format!("authentication {a}")),
    };
    Ok(Some(EspAuth { id }))
}

/// The hard limits of SA Life pairs; none at all means 28800 seconds. A
/// type repeated keeps its smaller duration.
fn lifetime_from(pairs: &[(LifeType, u64)]) -> Result<Lifetime, String> {
    let mut life = Lifetime::default();
    if pairs.is_empty() {
        life.hard_time = Some(Duration::from_secs(DEFAULT_LIFE_SECS));
    }
    for &(ty, n) in pairs {
        match ty {
            LifeType::Seconds => {
                let t = Duration::from_secs(n);
                life.hard_time = Some(life.hard_time.map_or(t, |old| old.min(t)));
            }
            LifeType::Kilobytes => {
                let b = n.saturating_mul(1024);
                life.hard_bytes = Some(life.hard_bytes.map_or(b, |old| old.min(b)));
            }
            other => return Err(format!("life type {other}")),
        }
    }
    Ok(life)
}

/// `ESP_AES-GCM_16`-style name of an ESP transform ID, for messages.
fn transform_name(id: u8) -> String {
    match EspTransformId::from(id) {
        _ if id == ESP_CHACHA20_POLY1305 => "ESP_CHACHA20_POLY1305".to_owned(),
        EspTransformId::Unknown(n) => format!("ESP transform {n}"),
        known => format!("ESP_{known}"),
    }
}
