//! Safe, owning wrappers over the raw MIT declarations in [`super::sys`]:
//! the only place (with `sys`) where kinkd uses `unsafe`.
//!
//! Why `unsafe` is allowed here: kinkd needs MIT libkrb5 (see the module
//! docs of [`super`]), a C library. Every call below is one `unsafe` block
//! with a `SAFETY:` comment; everything the library allocates is owned by a
//! handle that frees it with the matching `krb5_free_*` on `Drop`, and keys
//! copied out of the library go into zeroizing buffers. No raw pointer
//! leaves this file.
//!
//! **Threads.** A `krb5_context` must not be used by two threads at once
//! (MIT: "a context may be used by only one thread at a time"). Every handle
//! keeps the context alive through an [`Arc`], and every handle type is
//! `pub(super)`: they are only ever owned by one
//! [`MitKerberos`](super::MitKerberos), which is `!Sync`, so all uses of one
//! context happen through one `&mut`/`&` of a value that cannot be shared
//! between threads. That is what the `Send`/`Sync` claims below rely on.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::error::{Error, Result};
use super::sys;
use super::{SessionKey, ticket_time};

/// The raw context, freed when the last handle using it is gone.
#[derive(Debug)]
struct RawContext(sys::krb5_context);

// SAFETY: the context may move between threads (MIT only forbids
// concurrent use). `Sync` is claimed so that `Arc<RawContext>` is `Send`;
// concurrent use is prevented one level up: every `Arc` clone lives inside
// a handle of this module, all of which are owned by a single `!Sync`
// `MitKerberos` (see the module docs).
unsafe impl Send for RawContext {}
// SAFETY: see above.
unsafe impl Sync for RawContext {}

impl Drop for RawContext {
    fn drop(&mut self) {
        // SAFETY: the pointer came from krb5_init_context[_profile] and this
        // is the last reference (the Arc is being dropped).
        unsafe { sys::krb5_free_context(self.0) }
    }
}

/// A library context: configuration (krb5.conf), default realm, clock
/// offset, error-message state.
#[derive(Debug, Clone)]
pub(super) struct Context(Arc<RawContext>);

// SAFETY (all five): each handle exclusively owns the library object its
// pointer names (nothing else holds the pointer), MIT objects have no
// thread affinity, and the context they use may move between threads as
// long as it is not used concurrently, which the single `!Sync` owner
// (`MitKerberos`) guarantees. The handles stay `!Sync`.
unsafe impl Send for Principal {}
// SAFETY: see above.
unsafe impl Send for Keytab {}
// SAFETY: see above.
unsafe impl Send for Ccache {}
// SAFETY: see above.
unsafe impl Send for Creds {}
// SAFETY: see above.
unsafe impl Send for AuthContext {}

/// Converts Rust text into a C string, refusing interior NULs.
fn cstring(op: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::local(op, format!("{s:?} contains a NUL byte")))
}

/// A borrowed `krb5_data` view of `bytes` (the library only reads inputs).
fn data_view(op: &'static str, bytes: &[u8]) -> Result<sys::krb5_data> {
    let length =
        u32::try_from(bytes.len()).map_err(|_| Error::local(op, "input longer than 4 GiB"))?;
    Ok(sys::krb5_data {
        magic: 0,
        length,
        data: bytes.as_ptr().cast_mut().cast(),
    })
}

/// A borrowed `krb5_keyblock` view of `key` (passed as `const` to the
/// library, or to functions that copy it).
fn keyblock_view(op: &'static str, key: &SessionKey) -> Result<sys::krb5_keyblock> {
    let length = u32::try_from(key.bytes().len()).map_err(|_| Error::local(op, "key too long"))?;
    Ok(sys::krb5_keyblock {
        magic: 0,
        enctype: key.enctype(),
        length,
        contents: key.bytes().as_ptr().cast_mut(),
    })
}

/// Copies a library `krb5_data` into a `Vec`.
///
/// # Safety
/// `d.data` must point to `d.length` readable bytes (or `length` be 0).
unsafe fn data_to_vec(d: &sys::krb5_data) -> Vec<u8> {
    if d.length == 0 || d.data.is_null() {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(d.data.cast::<u8>(), d.length as usize) }.to_vec()
}

/// Copies a library keyblock into a zeroizing [`SessionKey`].
///
/// # Safety
/// `k` must point to a valid keyblock.
unsafe fn keyblock_to_key(k: *const sys::krb5_keyblock) -> SessionKey {
    // SAFETY: guaranteed by the caller.
    let k = unsafe { &*k };
    let bytes = if k.length == 0 || k.contents.is_null() {
        Vec::new()
    } else {
        // SAFETY: a valid keyblock's contents hold `length` bytes.
        unsafe { std::slice::from_raw_parts(k.contents, k.length as usize) }.to_vec()
    };
    SessionKey::new(k.enctype, bytes)
}

impl Context {
    /// A context from the default configuration: `KRB5_CONFIG` if set,
    /// else `/etc/krb5.conf`.
    pub(super) fn new() -> Result<Self> {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer.
        let code = unsafe { sys::krb5_init_context(&mut raw) };
        if code != 0 {
            return Err(Error {
                op: "krb5_init_context",
                code: Some(code),
                message: format!("cannot create a krb5 context (code {code})"),
            });
        }
        Ok(Self(Arc::new(RawContext(raw))))
    }

    /// A context that reads `path` as its krb5.conf (colon-separated list
    /// allowed), ignoring `KRB5_CONFIG`.
    pub(super) fn with_config_file(path: &Path) -> Result<Self> {
        const OP: &str = "profile_init_path";
        let path_str = path
            .to_str()
            .ok_or_else(|| Error::local(OP, format!("{path:?} is not UTF-8")))?;
        let c_path = cstring(OP, path_str)?;
        let mut profile = ptr::null_mut();
        // SAFETY: `c_path` is NUL-terminated and outlives the call;
        // `profile` is a valid out-pointer.
        let code = unsafe { sys::profile_init_path(c_path.as_ptr(), &mut profile) };
        if code != 0 {
            return Err(Error {
                op: OP,
                code: i32::try_from(code).ok(),
                message: format!("cannot read {}: profile error {code}", path.display()),
            });
        }
        let mut raw = ptr::null_mut();
        // SAFETY: `profile` is a valid profile; the library copies it.
        let code = unsafe { sys::krb5_init_context_profile(profile, 0, &mut raw) };
        // SAFETY: we own `profile` and no longer need it (the context holds
        // its own copy, per the krb5_init_context_profile documentation).
        unsafe { sys::profile_release(profile) };
        if code != 0 {
            return Err(Error {
                op: "krb5_init_context_profile",
                code: Some(code),
                message: format!("cannot create a krb5 context (code {code})"),
            });
        }
        Ok(Self(Arc::new(RawContext(raw))))
    }

    fn raw(&self) -> sys::krb5_context {
        self.0.0
    }

    /// Turns a non-zero library code into an [`Error`] with its message.
    pub(super) fn check(&self, op: &'static str, code: sys::krb5_error_code) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: a valid context and any code; the message is freed below.
        let msg = unsafe { sys::krb5_get_error_message(self.raw(), code) };
        let message = if msg.is_null() {
            format!("error {code}")
        } else {
            // SAFETY: the library returns a NUL-terminated string.
            let text = unsafe { CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: `msg` came from krb5_get_error_message.
            unsafe { sys::krb5_free_error_message(self.raw(), msg) };
            text
        };
        Err(Error {
            op,
            code: Some(code),
            message,
        })
    }

    /// The library's clock (system time plus this context's offset).
    pub(super) fn now(&self) -> Result<(i64, i32)> {
        let (mut sec, mut usec) = (0, 0);
        // SAFETY: valid context and out-pointers.
        let code = unsafe { sys::krb5_us_timeofday(self.raw(), &mut sec, &mut usec) };
        self.check("krb5_us_timeofday", code)?;
        Ok((ticket_time(sec), usec))
    }

    /// Makes this context's clock read `unix_seconds` now (the offset from
    /// the system clock is kept for later calls).
    pub(super) fn set_real_time(&self, unix_seconds: i64) -> Result<()> {
        // krb5_timestamp is 32 bits, read as unsigned by MIT >= 1.17 (y2038).
        let ts = u32::try_from(unix_seconds)
            .map_err(|_| Error::local("krb5_set_real_time", "time out of range"))?
            .cast_signed();
        // SAFETY: valid context.
        let code = unsafe { sys::krb5_set_real_time(self.raw(), ts, 0) };
        self.check("krb5_set_real_time", code)
    }

    /// The name of an enctype (`aes256-cts-hmac-sha1-96`).
    pub(super) fn enctype_name(enctype: i32) -> String {
        let mut buf = [0 as c_char; 64];
        // SAFETY: `buf` is writable for `buf.len()` bytes; the library
        // NUL-terminates within it on success.
        let code = unsafe { sys::krb5_enctype_to_name(enctype, 0, buf.as_mut_ptr(), buf.len()) };
        if code != 0 {
            return format!("enctype {enctype}");
        }
        // SAFETY: NUL-terminated on success (checked above).
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    // ---- RFC 3961 primitives on a caller-owned key ----

    /// `krb5_c_make_checksum` with the key's mandatory checksum type.
    pub(super) fn make_checksum(
        &self,
        key: &SessionKey,
        usage: i32,
        data: &[u8],
    ) -> Result<(i32, Vec<u8>)> {
        const OP: &str = "krb5_c_make_checksum";
        let kb = keyblock_view(OP, key)?;
        let input = data_view(OP, data)?;
        let mut ck = sys::krb5_checksum {
            magic: 0,
            checksum_type: 0,
            length: 0,
            contents: ptr::null_mut(),
        };
        // SAFETY: `kb` and `input` borrow live buffers for the call; the
        // library only reads them. cksumtype 0 = the key's mandatory type.
        let code = unsafe { sys::krb5_c_make_checksum(self.raw(), 0, &kb, usage, &input, &mut ck) };
        self.check(OP, code)?;
        let out = if ck.contents.is_null() {
            Vec::new()
        } else {
            // SAFETY: on success `contents` holds `length` bytes.
            unsafe { std::slice::from_raw_parts(ck.contents, ck.length as usize) }.to_vec()
        };
        let ty = ck.checksum_type;
        // SAFETY: `ck` was filled by the library and is freed once.
        unsafe { sys::krb5_free_checksum_contents(self.raw(), &mut ck) };
        Ok((ty, out))
    }

    /// `krb5_c_verify_checksum`: `Ok(false)` if `cksum` does not match.
    pub(super) fn verify_checksum(
        &self,
        key: &SessionKey,
        usage: i32,
        cksumtype: i32,
        data: &[u8],
        cksum: &[u8],
    ) -> Result<bool> {
        const OP: &str = "krb5_c_verify_checksum";
        let kb = keyblock_view(OP, key)?;
        let input = data_view(OP, data)?;
        let ck = sys::krb5_checksum {
            magic: 0,
            checksum_type: cksumtype,
            length: u32::try_from(cksum.len()).map_err(|_| Error::local(OP, "too long"))?,
            contents: cksum.as_ptr().cast_mut(),
        };
        let mut valid = 0;
        // SAFETY: all inputs borrow live buffers and are only read.
        let code =
            unsafe { sys::krb5_c_verify_checksum(self.raw(), &kb, usage, &input, &ck, &mut valid) };
        self.check(OP, code)?;
        Ok(valid != 0)
    }

    /// `krb5_c_encrypt` (confounder + ciphertext + integrity tag, no cipher state).
    pub(super) fn encrypt(&self, key: &SessionKey, usage: i32, plain: &[u8]) -> Result<Vec<u8>> {
        const OP: &str = "krb5_c_encrypt";
        let kb = keyblock_view(OP, key)?;
        let input = data_view(OP, plain)?;
        let mut len = 0usize;
        // SAFETY: valid context and out-pointer.
        let code =
            unsafe { sys::krb5_c_encrypt_length(self.raw(), key.enctype(), plain.len(), &mut len) };
        self.check("krb5_c_encrypt_length", code)?;
        let mut out = vec![0u8; len];
        let mut enc = sys::krb5_enc_data {
            magic: 0,
            enctype: 0,
            kvno: 0,
            ciphertext: sys::krb5_data {
                magic: 0,
                length: u32::try_from(len).map_err(|_| Error::local(OP, "too long"))?,
                data: out.as_mut_ptr().cast(),
            },
        };
        // SAFETY: `out` has the length krb5_c_encrypt_length asked for and
        // outlives the call; the inputs are only read.
        let code =
            unsafe { sys::krb5_c_encrypt(self.raw(), &kb, usage, ptr::null(), &input, &mut enc) };
        self.check(OP, code)?;
        out.truncate(enc.ciphertext.length as usize);
        Ok(out)
    }

    /// `krb5_c_decrypt`; a wrong key or modified ciphertext gives
    /// `KRB_AP_ERR_BAD_INTEGRITY`.
    pub(super) fn decrypt(
        &self,
        key: &SessionKey,
        usage: i32,
        cipher: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        const OP: &str = "krb5_c_decrypt";
        let kb = keyblock_view(OP, key)?;
        let enc = sys::krb5_enc_data {
            magic: 0,
            enctype: key.enctype(),
            kvno: 0,
            ciphertext: data_view(OP, cipher)?,
        };
        let mut out = Zeroizing::new(vec![0u8; cipher.len()]);
        let mut output = sys::krb5_data {
            magic: 0,
            length: enc.ciphertext.length,
            data: out.as_mut_ptr().cast(),
        };
        // SAFETY: the plaintext is never longer than the ciphertext, so
        // `out` is large enough; inputs are only read.
        let code =
            unsafe { sys::krb5_c_decrypt(self.raw(), &kb, usage, ptr::null(), &enc, &mut output) };
        self.check(OP, code)?;
        out.truncate(output.length as usize);
        Ok(out)
    }

    /// Output length of the enctype's RFC 3961 PRF.
    pub(super) fn prf_length(&self, enctype: i32) -> Result<usize> {
        let mut len = 0;
        // SAFETY: valid context and out-pointer.
        let code = unsafe { sys::krb5_c_prf_length(self.raw(), enctype, &mut len) };
        self.check("krb5_c_prf_length", code)?;
        Ok(len)
    }

    /// `krb5_c_prf`: one PRF block keyed with `key`.
    pub(super) fn prf(&self, key: &SessionKey, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        const OP: &str = "krb5_c_prf";
        let len = self.prf_length(key.enctype())?;
        let kb = keyblock_view(OP, key)?;
        let mut inp = data_view(OP, input)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        let mut output = sys::krb5_data {
            magic: 0,
            length: u32::try_from(len).map_err(|_| Error::local(OP, "too long"))?,
            data: out.as_mut_ptr().cast(),
        };
        // SAFETY: `out` has the PRF length; the input is not written to
        // (the parameter is non-const for historical reasons only).
        let code = unsafe { sys::krb5_c_prf(self.raw(), &kb, &mut inp, &mut output) };
        self.check(OP, code)?;
        Ok(out)
    }
}

/// A parsed principal name.
#[derive(Debug)]
pub(super) struct Principal {
    ctx: Context,
    raw: sys::krb5_principal,
}

impl Principal {
    /// `krb5_parse_name`: the default realm is appended when `name` has none.
    pub(super) fn parse(ctx: &Context, name: &str) -> Result<Self> {
        let c = cstring("krb5_parse_name", name)?;
        let mut raw = ptr::null_mut();
        // SAFETY: `c` is NUL-terminated; `raw` is a valid out-pointer.
        let code = unsafe { sys::krb5_parse_name(ctx.raw(), c.as_ptr(), &mut raw) };
        ctx.check("krb5_parse_name", code)?;
        Ok(Self {
            ctx: ctx.clone(),
            raw,
        })
    }

    /// The full name, `kink/host@REALM`.
    pub(super) fn name(&self) -> Result<String> {
        unparse(&self.ctx, self.raw)
    }
}

impl Drop for Principal {
    fn drop(&mut self) {
        // SAFETY: `raw` came from krb5_parse_name and is freed once.
        unsafe { sys::krb5_free_principal(self.ctx.raw(), self.raw) }
    }
}

/// `krb5_unparse_name` of a principal the library owns.
fn unparse(ctx: &Context, p: sys::krb5_principal) -> Result<String> {
    if p.is_null() {
        return Err(Error::local("krb5_unparse_name", "no principal"));
    }
    let mut s = ptr::null_mut();
    // SAFETY: `p` is a valid principal (checked non-null; owned by a live
    // structure of the caller); `s` is a valid out-pointer.
    let code = unsafe { sys::krb5_unparse_name(ctx.raw(), p, &mut s) };
    ctx.check("krb5_unparse_name", code)?;
    // SAFETY: on success `s` is a NUL-terminated string we must free.
    let name = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    // SAFETY: `s` came from krb5_unparse_name.
    unsafe { sys::krb5_free_unparsed_name(ctx.raw(), s) };
    Ok(name)
}

/// A key table.
#[derive(Debug)]
pub(super) struct Keytab {
    ctx: Context,
    raw: sys::krb5_keytab,
}

impl Keytab {
    /// `krb5_kt_resolve(name)` (`FILE:/path`), or `krb5_kt_default` (which
    /// honours `KRB5_KTNAME`) when `name` is `None`.
    pub(super) fn open(ctx: &Context, name: Option<&str>) -> Result<Self> {
        let mut raw = ptr::null_mut();
        let code = match name {
            Some(name) => {
                let c = cstring("krb5_kt_resolve", name)?;
                // SAFETY: NUL-terminated name, valid out-pointer.
                unsafe { sys::krb5_kt_resolve(ctx.raw(), c.as_ptr(), &mut raw) }
            }
            // SAFETY: valid out-pointer.
            None => unsafe { sys::krb5_kt_default(ctx.raw(), &mut raw) },
        };
        ctx.check("krb5_kt_resolve", code)?;
        Ok(Self {
            ctx: ctx.clone(),
            raw,
        })
    }
}

impl Drop for Keytab {
    fn drop(&mut self) {
        // SAFETY: `raw` came from krb5_kt_resolve/default; closed once.
        unsafe { sys::krb5_kt_close(self.ctx.raw(), self.raw) };
    }
}

/// A credential cache.
#[derive(Debug)]
pub(super) struct Ccache {
    ctx: Context,
    raw: sys::krb5_ccache,
    /// A private `MEMORY:` cache is destroyed on drop; a named one closed.
    destroy: bool,
}

impl Ccache {
    /// A fresh private `MEMORY:` cache.
    pub(super) fn new_memory(ctx: &Context) -> Result<Self> {
        let mut raw = ptr::null_mut();
        // SAFETY: static NUL-terminated type, null hint allowed, valid out-pointer.
        let code = unsafe {
            sys::krb5_cc_new_unique(ctx.raw(), c"MEMORY".as_ptr(), ptr::null(), &mut raw)
        };
        ctx.check("krb5_cc_new_unique", code)?;
        Ok(Self {
            ctx: ctx.clone(),
            raw,
            destroy: true,
        })
    }

    /// `krb5_cc_resolve(name)`, or `krb5_cc_default` (which honours
    /// `KRB5CCNAME`) when `name` is `None`.
    pub(super) fn open(ctx: &Context, name: Option<&str>) -> Result<Self> {
        let mut raw = ptr::null_mut();
        let code = match name {
            Some(name) => {
                let c = cstring("krb5_cc_resolve", name)?;
                // SAFETY: NUL-terminated name, valid out-pointer.
                unsafe { sys::krb5_cc_resolve(ctx.raw(), c.as_ptr(), &mut raw) }
            }
            // SAFETY: valid out-pointer.
            None => unsafe { sys::krb5_cc_default(ctx.raw(), &mut raw) },
        };
        ctx.check("krb5_cc_resolve", code)?;
        Ok(Self {
            ctx: ctx.clone(),
            raw,
            destroy: false,
        })
    }

    /// Empties the cache and makes `client` its default principal, then
    /// stores `creds` (our TGT).
    pub(super) fn initialize_with(&self, client: &Principal, creds: &mut Creds) -> Result<()> {
        // SAFETY: valid cache and principal.
        let code = unsafe { sys::krb5_cc_initialize(self.ctx.raw(), self.raw, client.raw) };
        self.ctx.check("krb5_cc_initialize", code)?;
        // SAFETY: the library copies `creds` (the C prototype is non-const;
        // the pointer comes from a unique borrow, so a write would be sound).
        let code = unsafe { sys::krb5_cc_store_cred(self.ctx.raw(), self.raw, creds.ptr_mut()) };
        self.ctx.check("krb5_cc_store_cred", code)
    }

    /// The first credentials in the cache `want` accepts, by walking the
    /// cache (`krb5_cc_start_seq_get`/`next_cred`): no matching rules of
    /// the library involved (it does not find user-to-user tickets by
    /// matching). Never contacts the KDC.
    pub(super) fn find(&self, want: impl Fn(&Creds) -> bool) -> Result<Option<Creds>> {
        let mut cursor: sys::krb5_cc_cursor = ptr::null_mut();
        // SAFETY: valid context and cache; `cursor` is an out-pointer the
        // library fills and we hand back to next_cred/end_seq_get only.
        let code = unsafe { sys::krb5_cc_start_seq_get(self.ctx.raw(), self.raw, &mut cursor) };
        self.ctx.check("krb5_cc_start_seq_get", code)?;
        let mut found = None;
        loop {
            let mut creds = Box::new(sys::krb5_creds::zeroed());
            // SAFETY: the cursor came from start_seq_get on this cache;
            // `creds` is ours, the library fills its contents (freed by
            // `Creds`'s drop with krb5_free_cred_contents).
            let code = unsafe {
                sys::krb5_cc_next_cred(self.ctx.raw(), self.raw, &mut cursor, &mut *creds)
            };
            if code != 0 {
                // KRB5_CC_END, or the cache changed under us: stop either way.
                break;
            }
            let creds = Creds {
                ctx: self.ctx.clone(),
                storage: CredsStorage::Boxed(creds),
            };
            if want(&creds) {
                found = Some(creds);
                break;
            }
        }
        // SAFETY: ends the iteration started above, once.
        unsafe { sys::krb5_cc_end_seq_get(self.ctx.raw(), self.raw, &mut cursor) };
        Ok(found)
    }

    /// `krb5_get_credentials`: a ticket from `client` for `server`, from
    /// this cache or (unless `cached_only`) from the KDC with a TGS-REQ.
    /// With `second_ticket` (the server's TGT, DER) the request is
    /// user-to-user (ENC-TKT-IN-SKEY). Blocks on the network.
    pub(super) fn get_credentials(
        &self,
        client: &Principal,
        server: &Principal,
        second_ticket: Option<&[u8]>,
        cached_only: bool,
    ) -> Result<Creds> {
        const OP: &str = "krb5_get_credentials";
        let mut in_creds = sys::krb5_creds::zeroed();
        in_creds.client = client.raw;
        in_creds.server = server.raw;
        let mut options = 0;
        if let Some(t) = second_ticket {
            in_creds.second_ticket = data_view(OP, t)?;
            options |= sys::KRB5_GC_USER_USER;
        }
        if cached_only {
            options |= sys::KRB5_GC_CACHED;
        }
        let mut out = ptr::null_mut();
        // SAFETY: `in_creds` borrows principals and the ticket for the call
        // only (the library copies what it keeps); it is not freed by us
        // (nothing in it is owned). `out` is a valid out-pointer.
        let code = unsafe {
            sys::krb5_get_credentials(self.ctx.raw(), options, self.raw, &mut in_creds, &mut out)
        };
        self.ctx.check(OP, code)?;
        Ok(Creds {
            ctx: self.ctx.clone(),
            storage: CredsStorage::Library(out),
        })
    }
}

impl Drop for Ccache {
    fn drop(&mut self) {
        // SAFETY: `raw` came from cc_new_unique/resolve/default; released once.
        unsafe {
            if self.destroy {
                sys::krb5_cc_destroy(self.ctx.raw(), self.raw);
            } else {
                sys::krb5_cc_close(self.ctx.raw(), self.raw);
            }
        }
    }
}

#[derive(Debug)]
enum CredsStorage {
    /// Allocated by the library (`krb5_get_credentials`): `krb5_free_creds`.
    Library(*mut sys::krb5_creds),
    /// Our allocation, contents filled by the library: `krb5_free_cred_contents`.
    Boxed(Box<sys::krb5_creds>),
}

/// Credentials: a ticket and its session key.
#[derive(Debug)]
pub(super) struct Creds {
    ctx: Context,
    storage: CredsStorage,
}

impl Creds {
    /// `krb5_get_init_creds_keytab`: an AS-REQ for `client`'s TGT with the
    /// keytab key (PA-ENC-TIMESTAMP). Blocks on the network.
    pub(super) fn init_from_keytab(ctx: &Context, client: &Principal, kt: &Keytab) -> Result<Self> {
        let mut opt = ptr::null_mut();
        // SAFETY: valid out-pointer; freed below.
        let code = unsafe { sys::krb5_get_init_creds_opt_alloc(ctx.raw(), &mut opt) };
        ctx.check("krb5_get_init_creds_opt_alloc", code)?;
        let mut creds = Box::new(sys::krb5_creds::zeroed());
        // SAFETY: `creds` is a zeroed structure the library fills; client,
        // keytab and options are valid; a null service means krbtgt.
        let code = unsafe {
            sys::krb5_get_init_creds_keytab(
                ctx.raw(),
                &mut *creds,
                client.raw,
                kt.raw,
                0,
                ptr::null(),
                opt,
            )
        };
        // SAFETY: `opt` came from krb5_get_init_creds_opt_alloc.
        unsafe { sys::krb5_get_init_creds_opt_free(ctx.raw(), opt) };
        // On failure the library leaves nothing allocated in `creds`, and
        // freeing a zeroed structure is harmless either way.
        let creds = Self {
            ctx: ctx.clone(),
            storage: CredsStorage::Boxed(creds),
        };
        ctx.check("krb5_get_init_creds_keytab", code)?;
        Ok(creds)
    }

    fn ptr(&self) -> *const sys::krb5_creds {
        match &self.storage {
            CredsStorage::Library(p) => *p,
            CredsStorage::Boxed(b) => &**b,
        }
    }

    fn ptr_mut(&mut self) -> *mut sys::krb5_creds {
        match &mut self.storage {
            CredsStorage::Library(p) => *p,
            CredsStorage::Boxed(b) => &mut **b,
        }
    }

    fn get(&self) -> &sys::krb5_creds {
        // SAFETY: the pointer is valid for as long as `self` lives.
        unsafe { &*self.ptr() }
    }

    /// The session key (a zeroizing copy).
    pub(super) fn session_key(&self) -> SessionKey {
        // SAFETY: the keyblock lives inside valid creds.
        unsafe { keyblock_to_key(&self.get().keyblock) }
    }

    /// The ticket's end time (Unix seconds).
    pub(super) fn end_time(&self) -> i64 {
        ticket_time(self.get().times.endtime)
    }

    /// The DER `Ticket`.
    pub(super) fn ticket(&self) -> Vec<u8> {
        // SAFETY: the ticket data of valid creds.
        unsafe { data_to_vec(&self.get().ticket) }
    }

    /// The additional ticket a user-to-user ticket was issued against (the
    /// server's TGT, DER); empty for other tickets.
    pub(super) fn second_ticket(&self) -> Vec<u8> {
        // SAFETY: the second-ticket data of valid creds (length 0 when unset).
        unsafe { data_to_vec(&self.get().second_ticket) }
    }

    /// The client principal's name.
    pub(super) fn client(&self) -> Result<String> {
        unparse(&self.ctx, self.get().client)
    }

    /// The server principal's name.
    pub(super) fn server(&self) -> Result<String> {
        unparse(&self.ctx, self.get().server)
    }
}

impl Drop for Creds {
    fn drop(&mut self) {
        match &mut self.storage {
            // SAFETY: allocated by krb5_get_credentials; freed once.
            CredsStorage::Library(p) => unsafe { sys::krb5_free_creds(self.ctx.raw(), *p) },
            // SAFETY: contents filled by the library (or zero); freed once.
            // The library zeroes the key contents when freeing them.
            CredsStorage::Boxed(b) => unsafe {
                sys::krb5_free_cred_contents(self.ctx.raw(), &mut **b)
            },
        }
    }
}

/// What `krb5_rd_req` found in an accepted AP-REQ.
#[derive(Debug)]
pub(super) struct ReadRequest {
    pub(super) client: String,
    pub(super) ticket_end: i64,
    pub(super) client_time: AuthenticatorTime,
}

/// The authenticator's time, read back from an auth context.
#[derive(Debug, Clone, Copy)]
pub(super) struct AuthenticatorTime {
    pub(super) ctime: i64,
    pub(super) cusec: i32,
}

/// An authentication context: the state of one AP exchange (keys,
/// authenticator, replay cache).
#[derive(Debug)]
pub(super) struct AuthContext {
    ctx: Context,
    raw: sys::krb5_auth_context,
}

impl AuthContext {
    /// `krb5_auth_con_init` (flags default to KRB5_AUTH_CONTEXT_DO_TIME:
    /// timestamps checked, replay cache used).
    pub(super) fn new(ctx: &Context) -> Result<Self> {
        let mut raw = ptr::null_mut();
        // SAFETY: valid out-pointer.
        let code = unsafe { sys::krb5_auth_con_init(ctx.raw(), &mut raw) };
        ctx.check("krb5_auth_con_init", code)?;
        Ok(Self {
            ctx: ctx.clone(),
            raw,
        })
    }

    /// `krb5_mk_req_extended`: an AP-REQ for `creds`' ticket.
    pub(super) fn mk_req(&mut self, creds: &mut Creds, ap_options: i32) -> Result<Vec<u8>> {
        let mut out = sys::krb5_data::empty();
        // SAFETY: the auth context and creds are valid; `in_creds` is
        // non-const in C and comes from a unique borrow; null in_data
        // means no application checksum; `out` is freed below.
        let code = unsafe {
            sys::krb5_mk_req_extended(
                self.ctx.raw(),
                &mut self.raw,
                ap_options,
                ptr::null_mut(),
                creds.ptr_mut(),
                &mut out,
            )
        };
        self.ctx.check("krb5_mk_req_extended", code)?;
        Ok(self.take_data(&mut out))
    }

    /// Copies then frees library-allocated output data.
    fn take_data(&self, d: &mut sys::krb5_data) -> Vec<u8> {
        // SAFETY: `d` was filled by the library.
        let v = unsafe { data_to_vec(d) };
        // SAFETY: freed once.
        unsafe { sys::krb5_free_data_contents(self.ctx.raw(), d) };
        v
    }

    /// `krb5_auth_con_setuseruserkey`: decrypt the next ticket with `key`
    /// (our TGT session key) instead of a keytab key.
    pub(super) fn set_user_to_user_key(&mut self, key: &SessionKey) -> Result<()> {
        const OP: &str = "krb5_auth_con_setuseruserkey";
        let mut kb = keyblock_view(OP, key)?;
        // SAFETY: the library copies the keyblock; `kb` borrows `key`.
        let code = unsafe { sys::krb5_auth_con_setuseruserkey(self.ctx.raw(), self.raw, &mut kb) };
        self.ctx.check(OP, code)
    }

    /// `krb5_rd_req` as `server`, with `keytab` (None: the user-to-user key).
    /// With a server principal the library uses its default replay cache.
    ///
    /// On failure, the authenticator's time comes with the error when the
    /// library is known to have decrypted the authenticator before failing
    /// (clock skew, replay): MIT's `krb5_auth_con_getauthenticator` reads
    /// through a null pointer when there is no authenticator, and the only
    /// public way to know there is one is the error code.
    pub(super) fn rd_req(
        &mut self,
        ap_req: &[u8],
        server: &Principal,
        keytab: Option<&Keytab>,
    ) -> std::result::Result<ReadRequest, (Error, Option<AuthenticatorTime>)> {
        const OP: &str = "krb5_rd_req";
        let input = data_view(OP, ap_req).map_err(|e| (e, None))?;
        let mut ticket = ptr::null_mut();
        let mut options = 0;
        // SAFETY: all handles valid; `input` borrows `ap_req`; `ticket` is
        // freed below.
        let code = unsafe {
            sys::krb5_rd_req(
                self.ctx.raw(),
                &mut self.raw,
                &input,
                server.raw,
                keytab.map_or(ptr::null_mut(), |k| k.raw),
                &mut options,
                &mut ticket,
            )
        };
        if let Err(e) = self.ctx.check(OP, code) {
            // rd_req frees and nulls its ticket output on failure; free
            // defensively anyway (null is accepted).
            // SAFETY: `ticket` is null or came from krb5_rd_req.
            unsafe { sys::krb5_free_ticket(self.ctx.raw(), ticket) };
            let decrypted = matches!(
                code,
                sys::KRB5KRB_AP_ERR_SKEW | sys::KRB5KRB_AP_ERR_REPEAT | sys::KRB5_RC_REPLAY
            );
            // SAFETY (precondition of authenticator_time): with these codes
            // MIT stored the decrypted authenticator in the auth context.
            let time = if decrypted {
                self.authenticator_time()
            } else {
                None
            };
            return Err((e, time));
        }
        let result = (|| {
            if ticket.is_null() {
                return Err(Error::local(OP, "no ticket returned"));
            }
            // SAFETY: non-null ticket from a successful rd_req.
            let t = unsafe { &*ticket };
            if t.enc_part2.is_null() {
                return Err(Error::local(OP, "ticket not decrypted"));
            }
            // SAFETY: decrypted part of a successfully read ticket.
            let part = unsafe { &*t.enc_part2 };
            Ok(ReadRequest {
                client: unparse(&self.ctx, part.client)?,
                ticket_end: ticket_time(part.times.endtime),
                // A successful rd_req always leaves the authenticator.
                client_time: self
                    .authenticator_time()
                    .ok_or_else(|| Error::local(OP, "no authenticator"))?,
            })
        })();
        // SAFETY: `ticket` came from krb5_rd_req; freed once.
        unsafe { sys::krb5_free_ticket(self.ctx.raw(), ticket) };
        result.map_err(|e| (e, None))
    }

    /// The authenticator of the last AP-REQ read.
    ///
    /// Only call this when the auth context holds an authenticator (after
    /// `krb5_rd_req` succeeded or failed late, see [`Self::rd_req`]): MIT
    /// dereferences it unchecked.
    fn authenticator_time(&self) -> Option<AuthenticatorTime> {
        let mut a = ptr::null_mut();
        // SAFETY: valid auth context and out-pointer; the caller guarantees
        // an authenticator is present.
        let code = unsafe { sys::krb5_auth_con_getauthenticator(self.ctx.raw(), self.raw, &mut a) };
        if code != 0 || a.is_null() {
            return None;
        }
        // SAFETY: a copy allocated for us by the library.
        let t = unsafe {
            AuthenticatorTime {
                ctime: ticket_time((*a).ctime),
                cusec: (*a).cusec,
            }
        };
        // SAFETY: freed once.
        unsafe { sys::krb5_free_authenticator(self.ctx.raw(), a) };
        Some(t)
    }

    /// `krb5_mk_rep`: the AP-REP for the AP-REQ just read.
    pub(super) fn mk_rep(&mut self) -> Result<Vec<u8>> {
        let mut out = sys::krb5_data::empty();
        // SAFETY: valid auth context; `out` is freed in take_data.
        let code = unsafe { sys::krb5_mk_rep(self.ctx.raw(), self.raw, &mut out) };
        self.ctx.check("krb5_mk_rep", code)?;
        Ok(self.take_data(&mut out))
    }

    /// `krb5_rd_rep`: verifies the AP-REP answering our AP-REQ (mutual
    /// authentication).
    pub(super) fn rd_rep(&mut self, ap_rep: &[u8]) -> Result<()> {
        const OP: &str = "krb5_rd_rep";
        let input = data_view(OP, ap_rep)?;
        let mut part = ptr::null_mut();
        // SAFETY: valid auth context, `input` borrows `ap_rep`; `part` is
        // freed below.
        let code = unsafe { sys::krb5_rd_rep(self.ctx.raw(), self.raw, &input, &mut part) };
        self.ctx.check(OP, code)?;
        // SAFETY: allocated by krb5_rd_rep; freed once.
        unsafe { sys::krb5_free_ap_rep_enc_part(self.ctx.raw(), part) };
        Ok(())
    }

    fn key_with(
        &self,
        op: &'static str,
        f: unsafe extern "C" fn(
            sys::krb5_context,
            sys::krb5_auth_context,
            *mut *mut sys::krb5_keyblock,
        ) -> sys::krb5_error_code,
    ) -> Result<Option<SessionKey>> {
        let mut kb = ptr::null_mut();
        // SAFETY: `f` is one of the krb5_auth_con_get*key functions, which
        // take a valid auth context and an out-pointer.
        let code = unsafe { f(self.ctx.raw(), self.raw, &mut kb) };
        self.ctx.check(op, code)?;
        if kb.is_null() {
            return Ok(None);
        }
        // SAFETY: a keyblock copy allocated for us.
        let key = unsafe { keyblock_to_key(kb) };
        // SAFETY: freed once (the library zeroes the contents).
        unsafe { sys::krb5_free_keyblock(self.ctx.raw(), kb) };
        Ok(Some(key))
    }

    /// The ticket session key.
    pub(super) fn session_key(&self) -> Result<SessionKey> {
        self.key_with("krb5_auth_con_getkey", sys::krb5_auth_con_getkey)?
            .ok_or_else(|| Error::local("krb5_auth_con_getkey", "no session key"))
    }

    /// The subkey we sent (client) or received (server) in the authenticator.
    pub(super) fn subkey(&self, sent: bool) -> Result<Option<SessionKey>> {
        if sent {
            self.key_with(
                "krb5_auth_con_getsendsubkey",
                sys::krb5_auth_con_getsendsubkey,
            )
        } else {
            self.key_with(
                "krb5_auth_con_getrecvsubkey",
                sys::krb5_auth_con_getrecvsubkey,
            )
        }
    }
}

impl Drop for AuthContext {
    fn drop(&mut self) {
        // SAFETY: `raw` came from krb5_auth_con_init; freed once (this also
        // releases the replay cache handle the library attached).
        unsafe { sys::krb5_auth_con_free(self.ctx.raw(), self.raw) };
    }
}

/// The fields of a KRB-ERROR that kinkd reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorFields {
    pub(super) error: u32,
    pub(super) stime: i64,
    pub(super) susec: i32,
    pub(super) ctime: Option<(i64, i32)>,
    pub(super) server: Option<String>,
    pub(super) client: Option<String>,
    pub(super) text: String,
}

impl Context {
    /// `krb5_mk_error`: a DER KRB-ERROR.
    pub(super) fn mk_error(
        &self,
        f: &ErrorFields,
        server: &Principal,
        client: Option<&Principal>,
    ) -> Result<Vec<u8>> {
        const OP: &str = "krb5_mk_error";
        let to_ts = |t: i64| {
            u32::try_from(t)
                .map(u32::cast_signed)
                .map_err(|_| Error::local(OP, "time out of range"))
        };
        let (ctime, cusec) = f.ctime.unwrap_or((0, 0));
        let err = sys::krb5_error {
            magic: 0,
            ctime: to_ts(ctime)?,
            cusec,
            susec: f.susec,
            stime: to_ts(f.stime)?,
            error: f.error,
            client: client.map_or(ptr::null_mut(), |c| c.raw),
            server: server.raw,
            text: data_view(OP, f.text.as_bytes())?,
            e_data: sys::krb5_data::empty(),
        };
        let mut out = sys::krb5_data::empty();
        // SAFETY: `err` borrows live principals and text; the library only
        // reads it; `out` is freed below.
        let code = unsafe { sys::krb5_mk_error(self.raw(), &err, &mut out) };
        self.check(OP, code)?;
        // SAFETY: filled by the library.
        let v = unsafe { data_to_vec(&out) };
        // SAFETY: freed once.
        unsafe { sys::krb5_free_data_contents(self.raw(), &mut out) };
        Ok(v)
    }

    /// `krb5_rd_error`: decodes a DER KRB-ERROR.
    pub(super) fn rd_error(&self, bytes: &[u8]) -> Result<ErrorFields> {
        const OP: &str = "krb5_rd_error";
        let input = data_view(OP, bytes)?;
        let mut e = ptr::null_mut();
        // SAFETY: `input` borrows `bytes`; `e` is freed below.
        let code = unsafe { sys::krb5_rd_error(self.raw(), &input, &mut e) };
        self.check(OP, code)?;
        // SAFETY: a decoded error allocated for us.
        let r = unsafe { &*e };
        let fields = ErrorFields {
            error: r.error,
            stime: ticket_time(r.stime),
            susec: r.susec,
            ctime: (r.ctime != 0).then(|| (ticket_time(r.ctime), r.cusec)),
            server: unparse(self, r.server).ok(),
            client: unparse(self, r.client).ok(),
            // SAFETY: the text of a decoded error.
            text: String::from_utf8_lossy(&unsafe { data_to_vec(&r.text) }).into_owned(),
        };
        // SAFETY: freed once.
        unsafe { sys::krb5_free_error(self.raw(), e) };
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_an_explicit_config_file() {
        let dir = std::env::temp_dir().join(format!("kinkd-krb5-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let conf = dir.join("krb5.conf");
        std::fs::write(&conf, "[libdefaults]\n default_realm = UNIT.TEST\n").expect("write");
        let ctx = Context::with_config_file(&conf).expect("context");
        let p = Principal::parse(&ctx, "kink/a.unit.test").expect("parse");
        assert_eq!(p.name().expect("unparse"), "kink/a.unit.test@UNIT.TEST");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn errors_carry_library_messages() {
        let ctx = Context::new().expect("context");
        let err = ctx.check("test", -1_765_328_347).unwrap_err();
        assert_eq!(err.code, Some(-1_765_328_347));
        assert!(err.message.contains("skew"), "{}", err.message);
        assert!(Principal::parse(&ctx, "a\0b").is_err());
    }

    #[test]
    fn clock_offset_moves_the_library_clock() {
        let ctx = Context::new().expect("context");
        let (now, _) = ctx.now().expect("now");
        ctx.set_real_time(now + 3600).expect("set");
        let (later, _) = ctx.now().expect("now");
        assert!((later - now - 3600).abs() <= 2, "{now} {later}");
    }
}
