//! Typed XFRM netlink messages: what racoon3 sends (SA and policy
//! requests, dumps, flushes, ALLOCSPI) and what the kernel sends back or
//! multicasts (replies, errors, ACQUIRE, EXPIRE, MIGRATE).
//!
//! [`Message::parse_all`] never panics: it is the fuzz target's body.

use super::attr::{Attr, emit_all};
use super::netlink::{
    DecodeError, Messages, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NlError, NlHeader, align4, pad4,
};
use super::structs::{
    UserAcquire, UserExpire, UserpolicyId, UserpolicyInfo, UsersaId, UsersaInfo, UserspiInfo,
};

/// `XFRM_MSG_*` message types.
pub mod msg_type {
    /// Add an SA.
    pub const NEWSA: u16 = 0x10;
    /// Delete an SA.
    pub const DELSA: u16 = 0x11;
    /// Get (or dump) SAs.
    pub const GETSA: u16 = 0x12;
    /// Add a policy.
    pub const NEWPOLICY: u16 = 0x13;
    /// Delete a policy.
    pub const DELPOLICY: u16 = 0x14;
    /// Get (or dump) policies.
    pub const GETPOLICY: u16 = 0x15;
    /// Reserve an SPI (creates a larval SA).
    pub const ALLOCSPI: u16 = 0x16;
    /// Kernel event: a policy needs an SA.
    pub const ACQUIRE: u16 = 0x17;
    /// Kernel event: an SA reached a lifetime limit.
    pub const EXPIRE: u16 = 0x18;
    /// Add or replace a policy.
    pub const UPDPOLICY: u16 = 0x19;
    /// Replace an SA (or fill in a larval one).
    pub const UPDSA: u16 = 0x1a;
    /// Remove every SA of a protocol.
    pub const FLUSHSA: u16 = 0x1c;
    /// Remove every policy.
    pub const FLUSHPOLICY: u16 = 0x1d;
    /// Kernel event: policies' tunnel endpoints moved.
    pub const MIGRATE: u16 = 0x21;
}

/// `XFRMNLGRP_*` multicast groups racoon3 listens to.
pub mod group {
    /// ACQUIRE events.
    pub const ACQUIRE: u32 = 1;
    /// EXPIRE events.
    pub const EXPIRE: u32 = 2;
    /// MIGRATE events.
    pub const MIGRATE: u32 = 7;
}

/// An SA with its attributes (NEWSA, UPDSA, GETSA replies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaMsg {
    /// The fixed part.
    pub info: UsersaInfo,
    /// Algorithms, encapsulation, replay state, ...
    pub attrs: Vec<Attr>,
}

/// A policy with its templates (NEWPOLICY, UPDPOLICY, dump replies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyMsg {
    /// The fixed part.
    pub info: UserpolicyInfo,
    /// `XFRMA_TMPL` and others.
    pub attrs: Vec<Attr>,
}

/// A struct naming an object, with attributes (DELSA/GETSA,
/// DELPOLICY/GETPOLICY, MIGRATE, ALLOCSPI, ACQUIRE, EXPIRE).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WithAttrs<T> {
    /// The fixed part.
    pub fixed: T,
    /// The attributes that follow it.
    pub attrs: Vec<Attr>,
}

/// The payload of one XFRM netlink message, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// `XFRM_MSG_NEWSA` (also the kernel's reply to GETSA).
    NewSa(SaMsg),
    /// `XFRM_MSG_UPDSA`.
    UpdSa(SaMsg),
    /// `XFRM_MSG_DELSA`.
    DelSa(WithAttrs<UsersaId>),
    /// `XFRM_MSG_GETSA` for one SA.
    GetSa(WithAttrs<UsersaId>),
    /// `XFRM_MSG_ALLOCSPI`.
    AllocSpi(WithAttrs<UserspiInfo>),
    /// `XFRM_MSG_NEWPOLICY` (also a policy dump entry).
    NewPolicy(PolicyMsg),
    /// `XFRM_MSG_UPDPOLICY`.
    UpdPolicy(PolicyMsg),
    /// `XFRM_MSG_DELPOLICY`.
    DelPolicy(WithAttrs<UserpolicyId>),
    /// `XFRM_MSG_GETPOLICY` for one policy.
    GetPolicy(WithAttrs<UserpolicyId>),
    /// `XFRM_MSG_GETSA` or `_GETPOLICY` with `NLM_F_DUMP` and no payload.
    Dump(u16),
    /// `XFRM_MSG_FLUSHSA` for one protocol (`IPPROTO_ESP`, or 0 for all).
    FlushSa(u8),
    /// `XFRM_MSG_FLUSHPOLICY`.
    FlushPolicy(Vec<Attr>),
    /// `XFRM_MSG_ACQUIRE`, with `XFRMA_TMPL`.
    Acquire(WithAttrs<UserAcquire>),
    /// `XFRM_MSG_EXPIRE`.
    Expire(WithAttrs<UserExpire>),
    /// `XFRM_MSG_MIGRATE`, with `XFRMA_MIGRATE`.
    Migrate(WithAttrs<UserpolicyId>),
    /// `NLMSG_ERROR`: an error, or an acknowledgement (errno 0).
    Error(NlError),
    /// `NLMSG_DONE`: the end of a dump.
    Done,
    /// Any other message type, kept raw.
    Other(u16, Vec<u8>),
}

impl Body {
    /// The `nlmsg_type` this body travels under.
    pub fn msg_type(&self) -> u16 {
        use msg_type::*;
        match self {
            Self::NewSa(_) => NEWSA,
            Self::UpdSa(_) => UPDSA,
            Self::DelSa(_) => DELSA,
            Self::GetSa(_) => GETSA,
            Self::AllocSpi(_) => ALLOCSPI,
            Self::NewPolicy(_) => NEWPOLICY,
            Self::UpdPolicy(_) => UPDPOLICY,
            Self::DelPolicy(_) => DELPOLICY,
            Self::GetPolicy(_) => GETPOLICY,
            Self::Dump(ty) | Self::Other(ty, _) => *ty,
            Self::FlushSa(_) => FLUSHSA,
            Self::FlushPolicy(_) => FLUSHPOLICY,
            Self::Acquire(_) => ACQUIRE,
            Self::Expire(_) => EXPIRE,
            Self::Migrate(_) => MIGRATE,
            Self::Error(_) => NLMSG_ERROR,
            Self::Done => NLMSG_DONE,
        }
    }

    /// Parses the payload of a message with header `h`.
    ///
    /// # Errors
    /// A payload shorter than its type's fixed struct, or a malformed
    /// attribute.
    pub fn parse(h: &NlHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        use msg_type::*;
        Ok(match h.ty {
            NEWSA => Self::NewSa(sa(payload)?),
            UPDSA => Self::UpdSa(sa(payload)?),
            DELSA => Self::DelSa(with(payload, UsersaId::LEN, UsersaId::parse)?),
            GETSA | GETPOLICY if payload.is_empty() => Self::Dump(h.ty),
            GETSA => Self::GetSa(with(payload, UsersaId::LEN, UsersaId::parse)?),
            ALLOCSPI => Self::AllocSpi(with(payload, UserspiInfo::LEN, UserspiInfo::parse)?),
            NEWPOLICY => Self::NewPolicy(policy(payload)?),
            UPDPOLICY => Self::UpdPolicy(policy(payload)?),
            DELPOLICY => Self::DelPolicy(with(payload, UserpolicyId::LEN, UserpolicyId::parse)?),
            GETPOLICY => Self::GetPolicy(with(payload, UserpolicyId::LEN, UserpolicyId::parse)?),
            FLUSHSA => Self::FlushSa(*payload.first().ok_or(DecodeError::Truncated("flush"))?),
            FLUSHPOLICY => Self::FlushPolicy(Attr::parse_all(payload)?),
            ACQUIRE => Self::Acquire(with(payload, UserAcquire::LEN, UserAcquire::parse)?),
            EXPIRE => Self::Expire(with(payload, UserExpire::LEN, UserExpire::parse)?),
            MIGRATE => Self::Migrate(with(payload, UserpolicyId::LEN, UserpolicyId::parse)?),
            NLMSG_ERROR => Self::Error(NlError::parse(h.flags, payload)?),
            NLMSG_DONE => Self::Done,
            ty => Self::Other(ty, payload.to_vec()),
        })
    }

    /// Appends the payload (no header).
    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Self::NewSa(m) | Self::UpdSa(m) => {
                m.info.emit(out);
                emit_all(&m.attrs, out);
            }
            Self::NewPolicy(m) | Self::UpdPolicy(m) => {
                m.info.emit(out);
                emit_all(&m.attrs, out);
            }
            Self::DelSa(m) | Self::GetSa(m) => emit_with(m, UsersaId::emit, out),
            Self::AllocSpi(m) => emit_with(m, UserspiInfo::emit, out),
            Self::DelPolicy(m) | Self::GetPolicy(m) | Self::Migrate(m) => {
                emit_with(m, UserpolicyId::emit, out);
            }
            Self::Acquire(m) => emit_with(m, UserAcquire::emit, out),
            Self::Expire(m) => emit_with(m, UserExpire::emit, out),
            Self::Dump(_) | Self::Done => {}
            Self::FlushSa(proto) => out.push(*proto),
            Self::FlushPolicy(attrs) => emit_all(attrs, out),
            Self::Error(e) => e.emit(out),
            Self::Other(_, bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// One netlink message: header and typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header; `len` and `ty` are recomputed by [`Message::emit`].
    pub header: NlHeader,
    /// The payload.
    pub body: Body,
}

impl Message {
    /// A request with `flags` (`NLM_F_REQUEST` is added) and sequence
    /// number `seq`.
    pub fn request(body: Body, flags: u16, seq: u32) -> Self {
        Self {
            header: NlHeader {
                len: 0,
                ty: body.msg_type(),
                flags: flags | super::netlink::flags::REQUEST,
                seq,
                pid: 0,
            },
            body,
        }
    }

    /// Parses every message of a datagram, in order.
    pub fn parse_all(buf: &[u8]) -> impl Iterator<Item = Result<Self, DecodeError>> + '_ {
        Messages::new(buf).map(|m| {
            let (header, payload) = m?;
            Ok(Self {
                header,
                body: Body::parse(&header, payload)?,
            })
        })
    }

    /// The message's bytes, ready for `send` (the length field counts the
    /// payload without its final padding, as the kernel and iproute2 do).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.emit(&mut out);
        out
    }

    /// Appends the message to `out`, which may already hold earlier
    /// messages of the same datagram (each starts 4-aligned).
    pub fn emit(&self, out: &mut Vec<u8>) {
        pad4(out);
        let start = out.len();
        let mut header = self.header;
        header.ty = self.body.msg_type();
        header.emit(out);
        self.body.emit(out);
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        debug_assert!(align4(len as usize) >= NLMSG_HDRLEN);
    }
}

fn sa(payload: &[u8]) -> Result<SaMsg, DecodeError> {
    let m = with(payload, UsersaInfo::LEN, UsersaInfo::parse)?;
    Ok(SaMsg {
        info: m.fixed,
        attrs: m.attrs,
    })
}

fn policy(payload: &[u8]) -> Result<PolicyMsg, DecodeError> {
    let m = with(payload, UserpolicyInfo::LEN, UserpolicyInfo::parse)?;
    Ok(PolicyMsg {
        info: m.fixed,
        attrs: m.attrs,
    })
}

fn with<T>(
    payload: &[u8],
    len: usize,
    parse: fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<WithAttrs<T>, DecodeError> {
    let fixed = parse(payload)?;
    let attrs = payload.get(align4(len)..).unwrap_or_default();
    Ok(WithAttrs {
        fixed,
        attrs: Attr::parse_all(attrs)?,
    })
}

fn emit_with<T>(m: &WithAttrs<T>, emit: fn(&T, &mut Vec<u8>), out: &mut Vec<u8>) {
    emit(&m.fixed, out);
    emit_all(&m.attrs, out);
}

#[cfg(test)]
mod tests;
