//! The PF_KEY v2 message: `struct sadb_msg` and its chain of extensions
//! (RFC 2367 §2.2, §2.3), parsed from and emitted to bytes with no I/O.
//!
//! Only this module touches `sadb_msg_len` and `sadb_ext_len`: both count
//! 8-byte words, and every extension is padded to a whole word.

use super::ext::{
    AddressExt, AddressKind, Extension, KeyExt, KeyKind, KmAddress, LifetimeExt, LifetimeKind,
    PolicyExt, Proposal, Sa2Ext, SaExt, SpiRange,
};
use super::wire::{
    DecodeError, EncodeError, Reader, UNIT, open_enum, pad8, patch_units, put_u16, put_u32,
};

/// `PF_KEY_V2`: the protocol of the socket and `sadb_msg_version`.
pub const PF_KEY_V2: u8 = 2;

/// `sizeof(struct sadb_msg)`.
pub const HEADER_LEN: usize = 16;

open_enum! {
    /// `sadb_msg_type`.
    pub enum MsgType(u8) {
        /// `SADB_GETSPI`: reserve an SPI (a larval SA).
        GetSpi = 1,
        /// `SADB_UPDATE`: fill in a larval SA, or change a mature one.
        Update = 2,
        /// `SADB_ADD`: install a new SA.
        Add = 3,
        /// `SADB_DELETE`.
        Delete = 4,
        /// `SADB_GET`: one SA with its counters.
        Get = 5,
        /// `SADB_ACQUIRE`: the kernel asks for an SA.
        Acquire = 6,
        /// `SADB_REGISTER`: receive ACQUIREs and EXPIREs for an SA type.
        Register = 7,
        /// `SADB_EXPIRE`: an SA hit a soft or hard limit.
        Expire = 8,
        /// `SADB_FLUSH`: delete every SA of a type.
        Flush = 9,
        /// `SADB_DUMP`: list SAs.
        Dump = 10,
        /// `SADB_X_PROMISC`.
        XPromisc = 11,
        /// `SADB_X_PCHANGE`.
        XPchange = 12,
        /// `SADB_X_SPDUPDATE`.
        XSpdUpdate = 13,
        /// `SADB_X_SPDADD`.
        XSpdAdd = 14,
        /// `SADB_X_SPDDELETE`: delete a policy by selector.
        XSpdDelete = 15,
        /// `SADB_X_SPDGET`: one policy by its index.
        XSpdGet = 16,
        /// `SADB_X_SPDACQUIRE`.
        XSpdAcquire = 17,
        /// `SADB_X_SPDDUMP`.
        XSpdDump = 18,
        /// `SADB_X_SPDFLUSH`.
        XSpdFlush = 19,
        /// `SADB_X_SPDSETIDX`.
        XSpdSetIdx = 20,
        /// `SADB_X_SPDEXPIRE`.
        XSpdExpire = 21,
        /// `SADB_X_SPDDELETE2`: delete a policy by its index.
        XSpdDelete2 = 22,
        /// `SADB_X_NAT_T_NEW_MAPPING`.
        XNatTNewMapping = 23,
        /// `SADB_X_MIGRATE`: a policy's tunnel endpoints moved.
        XMigrate = 24,
    }
}

open_enum! {
    /// `sadb_msg_satype`.
    pub enum SaType(u8) {
        /// `SADB_SATYPE_UNSPEC`.
        Unspec = 0,
        /// `SADB_SATYPE_AH`.
        Ah = 2,
        /// `SADB_SATYPE_ESP`.
        Esp = 3,
        /// `SADB_X_SATYPE_IPCOMP`.
        IpComp = 9,
    }
}

/// `struct sadb_msg` without its length, which [`Message::emit`] computes.
/// `sadb_msg_reserved` is ignored on receipt (Linux puts a policy's
/// reference count there) and sent as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the message asks or says.
    pub msg_type: MsgType,
    /// Zero, or the kernel's errno for a refused request.
    pub errno: u8,
    /// Which kind of SA.
    pub satype: SaType,
    /// Matches a reply to its request.
    pub seq: u32,
    /// The requester's process ID; zero for kernel-originated messages.
    pub pid: u32,
}

/// One PF_KEY message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The base header.
    pub header: Header,
    /// Extensions, in order.
    pub extensions: Vec<Extension>,
}

impl Message {
    /// A request with no extensions yet.
    pub fn new(msg_type: MsgType, satype: SaType, seq: u32, pid: u32) -> Self {
        Self {
            header: Header {
                msg_type,
                errno: 0,
                satype,
                seq,
                pid,
            },
            extensions: Vec::new(),
        }
    }

    /// Appends one extension (builder style).
    #[must_use]
    pub fn with(mut self, ext: Extension) -> Self {
        self.extensions.push(ext);
        self
    }

    /// Decodes one message, which must fill `buf` exactly (one datagram is
    /// one message). Never panics.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the first structure that does not fit.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let r = &mut Reader::new(buf, "sadb_msg");
        let version = r.u8()?;
        if version != PF_KEY_V2 {
            return Err(DecodeError::Version(version));
        }
        let msg_type = MsgType::from(r.u8()?);
        let errno = r.u8()?;
        let satype = SaType::from(r.u8()?);
        let len = usize::from(r.u16()?) * UNIT;
        r.skip(2)?;
        let seq = r.u32()?;
        let pid = r.u32()?;
        if len != buf.len() || len < HEADER_LEN {
            return Err(DecodeError::BadLength("sadb_msg", len));
        }
        let header = Header {
            msg_type,
            errno,
            satype,
            seq,
            pid,
        };
        let extensions = parse_extensions(r)?;
        Ok(Self { header, extensions })
    }

    /// Encodes the message, lengths and padding included.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] when a length does not fit its field.
    pub fn emit(&self) -> Result<Vec<u8>, EncodeError> {
        let h = &self.header;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&[PF_KEY_V2, h.msg_type.into(), h.errno, h.satype.into()]);
        put_u16(&mut out, 0); // sadb_msg_len, patched below
        put_u16(&mut out, 0);
        put_u32(&mut out, h.seq);
        put_u32(&mut out, h.pid);
        for ext in &self.extensions {
            let start = out.len();
            put_u16(&mut out, 0); // sadb_ext_len, patched below
            put_u16(&mut out, ext.ext_type().into());
            ext.emit(&mut out)?;
            pad8(&mut out, start);
            let len = out.len() - start;
            patch_units(&mut out, start, len, "extension")?;
        }
        let len = out.len();
        patch_units(&mut out, 4, len, "message")?;
        Ok(out)
    }

    /// The first extension `f` picks.
    fn find<'a, T>(&'a self, f: impl Fn(&'a Extension) -> Option<T>) -> Option<T> {
        self.extensions.iter().find_map(f)
    }

    /// `SADB_EXT_SA`.
    pub fn sa(&self) -> Option<&SaExt> {
        self.find(|e| match e {
            Extension::Sa(sa) => Some(sa),
            _ => None,
        })
    }

    /// `SADB_X_EXT_SA2`.
    pub fn sa2(&self) -> Option<&Sa2Ext> {
        self.find(|e| match e {
            Extension::Sa2(sa2) => Some(sa2),
            _ => None,
        })
    }

    /// One of the address extensions.
    pub fn address(&self, kind: AddressKind) -> Option<&AddressExt> {
        self.find(|e| match e {
            Extension::Address(k, a) if *k == kind => Some(a),
            _ => None,
        })
    }

    /// One of the lifetime extensions.
    pub fn lifetime(&self, kind: LifetimeKind) -> Option<&LifetimeExt> {
        self.find(|e| match e {
            Extension::Lifetime(k, l) if *k == kind => Some(l),
            _ => None,
        })
    }

    /// One of the key extensions.
    pub fn key(&self, kind: KeyKind) -> Option<&KeyExt> {
        self.find(|e| match e {
            Extension::Key(k, key) if *k == kind => Some(key),
            _ => None,
        })
    }

    /// `SADB_X_EXT_POLICY`.
    pub fn policy(&self) -> Option<&PolicyExt> {
        self.find(|e| match e {
            Extension::Policy(p) => Some(p),
            _ => None,
        })
    }

    /// `SADB_EXT_PROPOSAL`.
    pub fn proposal(&self) -> Option<&Proposal> {
        self.find(|e| match e {
            Extension::Proposal(p) => Some(p),
            _ => None,
        })
    }

    /// `SADB_EXT_SPIRANGE`.
    pub fn spirange(&self) -> Option<&SpiRange> {
        self.find(|e| match e {
            Extension::SpiRange(s) => Some(s),
            _ => None,
        })
    }

    /// `SADB_EXT_SUPPORTED_ENCRYPT` (`true`) or `_AUTH` (`false`).
    pub fn supported(&self, encrypt: bool) -> Option<&[super::ext::Alg]> {
        self.find(|e| match e {
            Extension::Supported { encrypt: en, algs } if *en == encrypt => Some(algs.as_slice()),
            _ => None,
        })
    }

    /// `SADB_X_EXT_NAT_T_TYPE`.
    pub fn nat_t_type(&self) -> Option<u8> {
        self.find(|e| match e {
            Extension::NatTType(t) => Some(*t),
            _ => None,
        })
    }

    /// `SADB_X_EXT_NAT_T_DPORT` (`true`) or `_SPORT` (`false`).
    pub fn nat_t_port(&self, dst: bool) -> Option<u16> {
        self.find(|e| match e {
            Extension::NatTPort { dst: d, port } if *d == dst => Some(*port),
            _ => None,
        })
    }

    /// `SADB_X_EXT_KMADDRESS`.
    pub fn kmaddress(&self) -> Option<&KmAddress> {
        self.find(|e| match e {
            Extension::KmAddress(k) => Some(k),
            _ => None,
        })
    }
}

/// The extension chain after the header. Linux `parse_exthdrs`: every
/// extension is at least one word, fits in what remains, is not type 0 and
/// appears at most once.
fn parse_extensions(r: &mut Reader<'_>) -> Result<Vec<Extension>, DecodeError> {
    let mut seen = [false; 64];
    let mut out = Vec::new();
    while !r.rest().is_empty() {
        let rest = r.rest();
        let head = &mut Reader::new(rest, "sadb_ext");
        let len = usize::from(head.u16()?) * UNIT;
        let ext_type = head.u16()?;
        if len < UNIT || len > rest.len() {
            return Err(DecodeError::BadLength("sadb_ext", len));
        }
        if ext_type == 0 {
            return Err(DecodeError::BadValue("sadb_ext_type", 0));
        }
        if let Some(s) = seen.get_mut(usize::from(ext_type)) {
            if *s {
                return Err(DecodeError::Duplicate(ext_type));
            }
            *s = true;
        }
        let ext = r.bytes(len)?;
        out.push(Extension::parse(ext_type, &ext[4..])?);
    }
    Ok(out)
}
