//! Kerberos for KINK (RFC 4430): the [`Kerberos`] trait and its MIT
//! libkrb5 backend, [`MitKerberos`].
//!
//! KINK replaces IKE's phase 1 with a Kerberos AP exchange: each kinkd
//! holds the keytab of its own `kink/<host>@REALM`, gets its TGT with it
//! (AS-REQ), a service ticket for the peer's `kink/<peer>` (TGS-REQ), and
//! sends an AP-REQ with mutual authentication; the responder answers with an
//! AP-REP (or a KRB-ERROR). The ticket session key then keys KINK_CKSUM
//! (usage [`KEY_USAGE_KINK_CKSUM`]), KINK_ENCRYPT ([`KEY_USAGE_KINK_ENCRYPT`])
//! and the Quick Mode KEYMAT PRF. GETTGT (RFC 4430 §3.1) is user-to-user
//! (RFC 4120 §2.9.2): the initiator gets a ticket encrypted in the
//! responder's TGT session key.
//!
//! **Why MIT libkrb5 through FFI.** Pure-Rust Kerberos crates are AGPL or
//! lack what KINK needs (AES-SHA2 enctypes, the RFC 3961 PRF, keytabs, a
//! KDC client, a replay cache). MIT is the reference implementation and is
//! packaged everywhere (Debian: libkrb5-dev to build, libkrb5-3 to run).
//! The binding is hand-written (55 functions, no bindgen and so no
//! libclang); `unsafe` lives in `sys.rs` (declarations) and `ffi.rs` (owning
//! wrappers), nowhere else. A Heimdal backend would implement the same
//! trait.
//!
//! **Blocking and threads.** [`Kerberos::get_tgt`], [`Kerberos::get_service_ticket`]
//! and [`Kerberos::get_user_to_user_ticket`] talk to the KDC and block
//! (seconds, if a KDC is down). A `krb5_context` must not be used by two
//! threads at once, so [`MitKerberos`] is `Send` but not `Sync`. The daemon
//! keeps it behind [`Shared`] (an `Arc<Mutex<_>>`) and runs every call
//! through [`Shared::run`], which uses `tokio::task::spawn_blocking`: the
//! event loop never waits on the KDC or on the lock. Crypto calls take
//! microseconds and go the same way (or through a second backend kept for
//! crypto only). Design notes: docs/design/kerberos.md.
//!
//! **Environment.** As for any Kerberos program: `KRB5_CONFIG` (unless
//! [`Krb5Config::config_file`] is set), `KRB5_KTNAME` (unless
//! [`Krb5Config::keytab`]), `KRB5CCNAME` (see [`Krb5Config::ccache`]), and
//! for the responder's replay cache `KRB5RCACHENAME`, `KRB5RCACHETYPE`,
//! `KRB5RCACHEDIR` (MIT's default: `/var/tmp/krb5_<euid>.rcache2`).

mod blocking;
mod error;
mod ffi;
mod mit;
mod sys;

use std::fmt;

use zeroize::Zeroizing;

pub use blocking::Shared;
pub use error::{Error, KrbErrorCode, Result};
pub use mit::MitKerberos;
/// The offline MIT backend and sample keys, for other modules' tests.
#[cfg(test)]
pub(crate) use mit::tests as mit_tests;

/// Kerberos key usage of the KINK_ENCRYPT payload (RFC 4430; racoon2
/// kinkd `BBKK_KRB5_KU_KINK_KINK_ENCRYPT`; see docs/design/kerberos.md).
pub const KEY_USAGE_KINK_ENCRYPT: i32 = 39;
/// Kerberos key usage of KINK_CKSUM (RFC 4430; racoon2 kinkd
/// `BBKK_KRB5_KU_KINK_CKSUM`; see docs/design/kerberos.md).
pub const KEY_USAGE_KINK_CKSUM: i32 = 40;

/// A Kerberos time (`krb5_timestamp`, 32 bits) as Unix seconds.
///
/// MIT reads the field as unsigned since 1.17, so times after 2038 stay
/// positive.
pub(crate) fn ticket_time(t: i32) -> i64 {
    i64::from(t.cast_unsigned())
}

/// A Kerberos key (ticket session key or subkey) owned by kinkd: enctype
/// plus key bytes, zeroed when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    enctype: i32,
    bytes: Zeroizing<Vec<u8>>,
}

impl SessionKey {
    /// A key of `enctype` (RFC 3961 number: 18 = aes256-cts-hmac-sha1-96,
    /// 20 = aes256-cts-hmac-sha384-192, ...) with raw key bytes.
    pub fn new(enctype: i32, bytes: Vec<u8>) -> Self {
        Self {
            enctype,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The RFC 3961 enctype number.
    pub fn enctype(&self) -> i32 {
        self.enctype
    }

    /// The raw key.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The enctype's name, for logs (`aes256-cts-hmac-sha1-96`).
    pub fn enctype_name(&self) -> String {
        ffi::Context::enctype_name(self.enctype)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionKey({}, {} bytes)",
            self.enctype_name(),
            self.bytes.len()
        )
    }
}

/// Where a backend finds its configuration, keys and tickets.
#[derive(Debug, Clone, Default)]
pub struct Krb5Config {
    /// Our principal, `kink/<host>` (the default realm is appended when
    /// there is no `@REALM`).
    pub principal: String,
    /// krb5.conf to read instead of `KRB5_CONFIG` / `/etc/krb5.conf`.
    pub config_file: Option<std::path::PathBuf>,
    /// Keytab name (`FILE:/etc/krb5.keytab`); `None` = the default keytab
    /// (`KRB5_KTNAME`, then krb5.conf's `default_keytab_name`).
    pub keytab: Option<String>,
    /// Credential cache for our TGT and service tickets. `None` = the
    /// default cache if `KRB5CCNAME` is set, else a private `MEMORY:`
    /// cache (a daemon should not share the operator's cache by accident).
    pub ccache: Option<String>,
}

/// A ticket we hold, as the daemon needs to know it.
#[derive(Debug, Clone)]
pub struct TicketInfo {
    /// Client principal (us).
    pub client: String,
    /// Server principal (`krbtgt/REALM@REALM` or the peer's `kink/<peer>`).
    pub server: String,
    /// End of validity, Unix seconds: renew before this.
    pub end_time: i64,
    /// Enctype of the session key.
    pub session_enctype: i32,
}

/// Which ticket an AP-REQ is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// A normal service ticket (encrypted in the peer's keytab key).
    Service,
    /// A user-to-user ticket (encrypted in the peer's TGT session key,
    /// KINK GETTGT); the AP-REQ carries USE-SESSION-KEY.
    UserToUser,
}

/// Our outstanding AP-REQ: keep it to read the AP-REP.
///
/// KINK retransmits with a fresh AP-REQ each time (same XID), and the
/// REPLY may answer any of them, so a transaction may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApReqId(u64);

impl ApReqId {
    /// A handle for a test double of [`Kerberos`].
    #[cfg(any(test, fuzzing))]
    pub(crate) fn for_tests(n: u64) -> Self {
        Self(n)
    }

    /// The number inside, for a test double of [`Kerberos`].
    #[cfg(any(test, fuzzing))]
    pub(crate) fn number(self) -> u64 {
        self.0
    }
}

/// A built AP-REQ.
#[derive(Debug, Clone)]
pub struct ApReq {
    /// Handle for [`Kerberos::read_ap_rep`] / [`Kerberos::release_ap_req`].
    pub id: ApReqId,
    /// DER KRB_AP_REQ, the body of KINK_AP_REQ after its EPOCH.
    pub bytes: Vec<u8>,
    /// The ticket's session key: a KINK initiator needs it before the
    /// AP-REP arrives, to checksum and encrypt its own command and to key
    /// the optimistic inbound SA.
    pub session_key: SessionKey,
}

/// What the initiator learns from a verified AP-REP.
#[derive(Debug, Clone)]
pub struct ApRepInfo {
    /// The ticket session key: keys KINK_CKSUM, KINK_ENCRYPT and KEYMAT.
    pub session_key: SessionKey,
    /// The subkey we put into the authenticator, if any.
    pub subkey: Option<SessionKey>,
}

/// How the responder decrypts a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptMode {
    /// With the long-term key from our keytab.
    Keytab,
    /// With our TGT's session key (user-to-user; no keytab involved).
    UserToUser,
}

/// An AP-REQ the responder accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The initiator's principal (from the ticket).
    pub client: String,
    /// The ticket session key.
    pub session_key: SessionKey,
    /// The initiator's authenticator subkey, if it sent one.
    pub subkey: Option<SessionKey>,
    /// The ticket's end time (Unix seconds).
    pub ticket_end: i64,
    /// The authenticator's ctime (Unix seconds) and cusec.
    pub client_time: (i64, i32),
    /// DER KRB_AP_REP for KINK_AP_REP (mutual authentication).
    pub ap_rep: Vec<u8>,
}

/// An AP-REQ the responder refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("AP-REQ refused: {error}")]
pub struct Rejected {
    /// Why; [`Error::krb_error`] gives the KRB-ERROR code to answer with.
    pub error: Error,
    /// The authenticator's ctime/cusec when the library got far enough to
    /// decrypt it (e.g. clock skew), for the KRB-ERROR.
    pub client_time: Option<(i64, i32)>,
}

/// A decoded KRB-ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrbError {
    /// The error number.
    pub code: KrbErrorCode,
    /// The sender's time (Unix seconds) and microseconds: with SKEW, the
    /// initiator's per-peer clock offset is `stime - now`.
    pub server_time: (i64, i32),
    /// The client time the error echoes, if any.
    pub client_time: Option<(i64, i32)>,
    /// The sender's principal.
    pub server: Option<String>,
    /// Optional text.
    pub text: String,
}

/// What kinkd needs from a Kerberos implementation.
///
/// Methods marked *blocks* contact the KDC: run them off the event loop
/// ([`Shared::run`]). The rest are local computations.
pub trait Kerberos: Send {
    /// Our principal, `kink/<host>@REALM`.
    fn principal(&self) -> &str;

    /// `name` as the library writes it, with the default realm added when
    /// it has none: configured principals are compared with authenticated
    /// ones in this form only, so `kink/peer` cannot match another realm's
    /// `kink/peer`.
    ///
    /// # Errors
    /// Not a principal name.
    fn canonical_name(&self, name: &str) -> Result<String>;

    /// *Blocks.* AS-REQ with the keytab key: gets (or renews) our TGT and
    /// starts a fresh credential cache with it.
    ///
    /// # Errors
    /// KDC unreachable, principal unknown, keytab missing or stale
    /// (`KDC_ERR_PREAUTH_FAILED`).
    fn get_tgt(&mut self) -> Result<TicketInfo>;

    /// Our TGT as a DER `Ticket`, for KINK_TGT_REP (GETTGT).
    ///
    /// # Errors
    /// No TGT yet ([`Self::get_tgt`] first).
    fn tgt_ticket(&self) -> Result<Vec<u8>>;

    /// *Blocks.* A service ticket for `peer` (`kink/<peer>`): from the cache,
    /// else TGS-REQ. Kept for [`Self::make_ap_req`] with [`TicketKind::Service`].
    ///
    /// # Errors
    /// No TGT, KDC errors (unknown principal, `KDC_ERR_MUST_USE_USER2USER`).
    fn get_service_ticket(&mut self, peer: &str) -> Result<TicketInfo>;

    /// *Blocks.* A user-to-user ticket for `peer`, whose TGT (DER `Ticket`
    /// from its KINK_TGT_REP) is `peer_tgt`: TGS-REQ with ENC-TKT-IN-SKEY.
    /// Kept for [`Self::make_ap_req`] with [`TicketKind::UserToUser`].
    ///
    /// # Errors
    /// No TGT of our own, KDC errors.
    fn get_user_to_user_ticket(&mut self, peer: &str, peer_tgt: &[u8]) -> Result<TicketInfo>;

    /// Takes our TGT from the credential cache, where another backend on
    /// the same cache put it ([`Self::get_tgt`] there, off the event loop).
    /// Never contacts the KDC. Needed for [`Self::tgt_ticket`] and for
    /// accepting user-to-user AP-REQs in this backend.
    ///
    /// # Errors
    /// No TGT in the cache.
    fn load_tgt(&mut self) -> Result<TicketInfo>;

    /// Takes a ticket for `peer` from the credential cache (fetched by
    /// another backend on the same cache) and keeps it for
    /// [`Self::make_ap_req`]. Never contacts the KDC. `peer_tgt` is the
    /// peer's TGT for [`TicketKind::UserToUser`].
    ///
    /// # Errors
    /// No such ticket in the cache.
    fn load_ticket(
        &mut self,
        peer: &str,
        kind: TicketKind,
        peer_tgt: Option<&[u8]>,
    ) -> Result<TicketInfo>;

    /// Drops the tickets held for `peer` (after `KRB_AP_ERR_TKT_EXPIRED`,
    /// or when a user-to-user peer restarted).
    fn forget_tickets(&mut self, peer: &str);

    /// Builds an AP-REQ for `peer` with mutual authentication and an
    /// authenticator subkey, from a ticket obtained before.
    ///
    /// # Errors
    /// No ticket of that kind for `peer`.
    fn make_ap_req(&mut self, peer: &str, kind: TicketKind) -> Result<ApReq>;

    /// Verifies the AP-REP answering AP-REQ `id`; the session key on success.
    ///
    /// # Errors
    /// Unknown `id`, or the AP-REP does not answer that AP-REQ
    /// (`KRB_AP_ERR_MUT_FAIL`, `KRB_AP_ERR_BAD_INTEGRITY`, ...).
    fn read_ap_rep(&mut self, id: ApReqId, ap_rep: &[u8]) -> Result<ApRepInfo>;

    /// Forgets AP-REQ `id` (transaction over).
    fn release_ap_req(&mut self, id: ApReqId);

    /// Responder: verifies an AP-REQ (ticket, authenticator, clock skew,
    /// replay cache) and builds the AP-REP.
    ///
    /// # Errors
    /// [`Rejected`] with the reason (`KRB_AP_ERR_SKEW`, `_REPEAT`,
    /// `_BADKEYVER`, `_BAD_INTEGRITY`, `_TKT_EXPIRED`, ...).
    fn read_ap_req(
        &mut self,
        ap_req: &[u8],
        mode: AcceptMode,
    ) -> std::result::Result<Accepted, Rejected>;

    /// A DER KRB-ERROR from us with `code`, echoing the initiator's
    /// authenticator time when known.
    ///
    /// # Errors
    /// Encoding failed.
    fn make_error(
        &mut self,
        code: KrbErrorCode,
        client_time: Option<(i64, i32)>,
        client: Option<&str>,
    ) -> Result<Vec<u8>>;

    /// Decodes a DER KRB-ERROR.
    ///
    /// # Errors
    /// Not a KRB-ERROR.
    fn read_error(&mut self, bytes: &[u8]) -> Result<KrbError>;

    /// Our Kerberos clock: system time plus the offset set with
    /// [`Self::set_clock_offset`] (Unix seconds, microseconds).
    ///
    /// # Errors
    /// Library failure.
    fn now(&self) -> Result<(i64, i32)>;

    /// Runs our Kerberos clock `offset` seconds ahead of the system clock
    /// (after an authenticated `KRB_AP_ERR_SKEW`: `offset = stime - now`).
    ///
    /// # Errors
    /// Out-of-range time.
    fn set_clock_offset(&mut self, offset: i64) -> Result<()>;

    /// KINK_CKSUM: the mandatory keyed checksum of `key`'s enctype over
    /// `data` with key usage `usage`.
    ///
    /// # Errors
    /// Unsupported enctype.
    fn checksum(&self, key: &SessionKey, usage: i32, data: &[u8]) -> Result<Vec<u8>>;

    /// Verifies a checksum made by [`Self::checksum`]; `Ok(false)` if it
    /// does not match (including a checksum of the wrong length).
    ///
    /// # Errors
    /// Unsupported enctype.
    fn verify_checksum(
        &self,
        key: &SessionKey,
        usage: i32,
        data: &[u8],
        cksum: &[u8],
    ) -> Result<bool>;

    /// KINK_ENCRYPT: RFC 3961 encryption (confounder, ciphertext, integrity).
    ///
    /// # Errors
    /// Unsupported enctype.
    fn encrypt(&self, key: &SessionKey, usage: i32, plain: &[u8]) -> Result<Vec<u8>>;

    /// Reverses [`Self::encrypt`].
    ///
    /// # Errors
    /// `KRB_AP_ERR_BAD_INTEGRITY` on a wrong key or modified ciphertext.
    fn decrypt(&self, key: &SessionKey, usage: i32, cipher: &[u8]) -> Result<Zeroizing<Vec<u8>>>;

    /// One block of the enctype's RFC 3961 PRF (KINK KEYMAT).
    ///
    /// # Errors
    /// Unsupported enctype.
    fn prf(&self, key: &SessionKey, input: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}
