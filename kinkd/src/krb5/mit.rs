//! [`MitKerberos`]: the [`Kerberos`] trait over MIT libkrb5 (safe code on
//! top of [`super::ffi`]).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

use zeroize::Zeroizing;

use super::error::{Error, KrbErrorCode, Result};
use super::ffi::{AuthContext, Ccache, Context, Creds, ErrorFields, Keytab, Principal};
use super::{
    AcceptMode, Accepted, ApRepInfo, ApReq, ApReqId, Kerberos, Krb5Config, KrbError, Rejected,
    SessionKey, TicketInfo, TicketKind, sys,
};

/// How many AP-REQs may wait for their AP-REP at once; the oldest is
/// dropped beyond that (a peer that never answers must not grow memory).
const MAX_PENDING_AP_REQS: usize = 4096;

/// The MIT libkrb5 backend: one library context, our principal, keytab and
/// credential cache, the tickets held per peer and the auth contexts of
/// outstanding AP-REQs.
///
/// `Send` (it may move to a blocking thread) but not `Sync`: the context
/// must not be used by two threads at once. Share it with [`super::Shared`].
#[derive(Debug)]
pub struct MitKerberos {
    // Field order is drop order: everything that uses the context first
    // (each handle also keeps the context alive by itself).
    pending: BTreeMap<u64, AuthContext>,
    next_id: u64,
    tickets: HashMap<(String, TicketKind), Creds>,
    tgt: Option<Creds>,
    /// The TGT before the last renewal: peers' user-to-user tickets are
    /// encrypted in its session key until they fetch new ones.
    previous_tgt: Option<Creds>,
    ccache: Ccache,
    keytab: Keytab,
    me: Principal,
    me_name: String,
    ctx: Context,
    _not_sync: PhantomData<Cell<()>>,
}

impl MitKerberos {
    /// Opens the context, keytab and credential cache described by `config`.
    /// Does not contact the KDC (call [`Kerberos::get_tgt`]).
    ///
    /// # Errors
    /// Unreadable configuration, bad principal name, unresolvable keytab
    /// or cache name.
    pub fn new(config: &Krb5Config) -> Result<Self> {
        let ctx = match &config.config_file {
            Some(path) => Context::with_config_file(path)?,
            None => Context::new()?,
        };
        let me = Principal::parse(&ctx, &config.principal)?;
        let me_name = me.name()?;
        let keytab = Keytab::open(&ctx, config.keytab.as_deref())?;
        let ccache = match &config.ccache {
            Some(name) => Ccache::open(&ctx, Some(name))?,
            None if std::env::var_os("KRB5CCNAME").is_some() => Ccache::open(&ctx, None)?,
            None => Ccache::new_memory(&ctx)?,
        };
        Ok(Self {
            pending: BTreeMap::new(),
            next_id: 0,
            tickets: HashMap::new(),
            tgt: None,
            previous_tgt: None,
            ccache,
            keytab,
            me,
            me_name,
            ctx,
            _not_sync: PhantomData,
        })
    }

    /// Makes `creds` our TGT, keeping the one it replaces for
    /// user-to-user tickets issued under it (unless it is the same).
    fn keep_tgt(&mut self, creds: Creds) {
        let same = self
            .tgt
            .as_ref()
            .is_some_and(|t| t.ticket() == creds.ticket());
        if same {
            return;
        }
        self.previous_tgt = self.tgt.replace(creds);
    }

    /// `krb5_rd_req` with our keytab, or (user-to-user) with `tgt_key`,
    /// and the AP-REP for it.
    fn accept_with(
        &self,
        ap_req: &[u8],
        tgt_key: Option<&SessionKey>,
    ) -> std::result::Result<Accepted, Rejected> {
        let reject = |error: Error| Rejected {
            error,
            client_time: None,
        };
        let mut ac = AuthContext::new(&self.ctx).map_err(reject)?;
        let keytab = match tgt_key {
            None => Some(&self.keytab),
            Some(key) => {
                ac.set_user_to_user_key(key).map_err(reject)?;
                None
            }
        };
        // Passing our principal makes MIT check the ticket is for us and
        // use its default replay cache.
        let read = ac
            .rd_req(ap_req, &self.me, keytab)
            .map_err(|(error, time)| Rejected {
                error,
                client_time: time.map(|t| (t.ctime, t.cusec)),
            })?;
        let session_key = ac.session_key().map_err(reject)?;
        let subkey = ac.subkey(false).map_err(reject)?;
        let ap_rep = ac.mk_rep().map_err(reject)?;
        Ok(Accepted {
            client: read.client,
            session_key,
            subkey,
            ticket_end: read.ticket_end,
            client_time: (read.client_time.ctime, read.client_time.cusec),
            ap_rep,
        })
    }

    fn info(creds: &Creds) -> Result<TicketInfo> {
        Ok(TicketInfo {
            client: creds.client()?,
            server: creds.server()?,
            end_time: creds.end_time(),
            session_enctype: creds.session_key().enctype(),
        })
    }

    /// Name of the peer principal: `peer` as given, the realm added by the
    /// library if missing.
    fn peer_principal(&self, peer: &str) -> Result<Principal> {
        Principal::parse(&self.ctx, peer)
    }
}

impl Kerberos for MitKerberos {
    fn principal(&self) -> &str {
        &self.me_name
    }

    fn canonical_name(&self, name: &str) -> Result<String> {
        Principal::parse(&self.ctx, name)?.name()
    }

    fn get_tgt(&mut self) -> Result<TicketInfo> {
        let mut creds = Creds::init_from_keytab(&self.ctx, &self.me, &self.keytab)?;
        // A fresh cache: old service tickets were issued under the old TGT.
        self.ccache.initialize_with(&self.me, &mut creds)?;
        self.tickets.clear();
        let info = Self::info(&creds)?;
        self.keep_tgt(creds);
        Ok(info)
    }

    fn tgt_ticket(&self) -> Result<Vec<u8>> {
        self.tgt
            .as_ref()
            .map(Creds::ticket)
            .ok_or_else(|| Error::local("tgt_ticket", "no TGT yet"))
    }

    fn get_service_ticket(&mut self, peer: &str) -> Result<TicketInfo> {
        let server = self.peer_principal(peer)?;
        let creds = self
            .ccache
            .get_credentials(&self.me, &server, None, false)?;
        let info = Self::info(&creds)?;
        self.tickets
            .insert((peer.to_owned(), TicketKind::Service), creds);
        Ok(info)
    }

    fn get_user_to_user_ticket(&mut self, peer: &str, peer_tgt: &[u8]) -> Result<TicketInfo> {
        let server = self.peer_principal(peer)?;
        let creds = self
            .ccache
            .get_credentials(&self.me, &server, Some(peer_tgt), false)?;
        let info = Self::info(&creds)?;
        self.tickets
            .insert((peer.to_owned(), TicketKind::UserToUser), creds);
        Ok(info)
    }

    fn load_tgt(&mut self) -> Result<TicketInfo> {
        let realm = self
            .me_name
            .rsplit_once('@')
            .map(|(_, realm)| realm.to_owned())
            .ok_or_else(|| Error::local("load_tgt", "our principal has no realm"))?;
        let krbtgt = Principal::parse(&self.ctx, &format!("krbtgt/{realm}@{realm}"))?;
        let creds = self.ccache.get_credentials(&self.me, &krbtgt, None, true)?;
        let info = Self::info(&creds)?;
        self.keep_tgt(creds);
        Ok(info)
    }

    fn load_ticket(
        &mut self,
        peer: &str,
        kind: TicketKind,
        peer_tgt: Option<&[u8]>,
    ) -> Result<TicketInfo> {
        let server = self.peer_principal(peer)?;
        let creds = match kind {
            TicketKind::Service => self.ccache.get_credentials(&self.me, &server, None, true)?,
            TicketKind::UserToUser => {
                let tgt = peer_tgt.ok_or_else(|| {
                    Error::local("load_ticket", "a user-to-user ticket needs the peer's TGT")
                })?;
                // MIT's matching does not find user-to-user tickets in the
                // cache: walk it for the one issued against this TGT.
                let name = server.name()?;
                let (now, _) = self.ctx.now()?;
                self.ccache
                    .find(|c| {
                        c.second_ticket() == tgt
                            && c.end_time() > now
                            && c.server().is_ok_and(|s| s == name)
                    })?
                    .ok_or_else(|| {
                        Error::local(
                            "load_ticket",
                            format!("no user-to-user ticket for {name} in the credential cache"),
                        )
                    })?
            }
        };
        let info = Self::info(&creds)?;
        self.tickets.insert((peer.to_owned(), kind), creds);
        Ok(info)
    }

    fn forget_tickets(&mut self, peer: &str) {
        self.tickets.retain(|(p, _), _| p != peer);
    }

    fn make_ap_req(&mut self, peer: &str, kind: TicketKind) -> Result<ApReq> {
        let creds = self
            .tickets
            .get_mut(&(peer.to_owned(), kind))
            .ok_or_else(|| Error::local("make_ap_req", format!("no {kind:?} ticket for {peer}")))?;
        let mut options = sys::AP_OPTS_MUTUAL_REQUIRED | sys::AP_OPTS_USE_SUBKEY;
        if kind == TicketKind::UserToUser {
            options |= sys::AP_OPTS_USE_SESSION_KEY;
        }
        let mut ac = AuthContext::new(&self.ctx)?;
        let bytes = ac.mk_req(creds, options)?;
        let session_key = creds.session_key();
        let id = self.next_id;
        self.next_id += 1;
        if self.pending.len() >= MAX_PENDING_AP_REQS {
            self.pending.pop_first();
        }
        self.pending.insert(id, ac);
        Ok(ApReq {
            id: ApReqId(id),
            bytes,
            session_key,
        })
    }

    fn read_ap_rep(&mut self, id: ApReqId, ap_rep: &[u8]) -> Result<ApRepInfo> {
        let ac = self
            .pending
            .get_mut(&id.0)
            .ok_or_else(|| Error::local("read_ap_rep", "unknown or released AP-REQ"))?;
        ac.rd_rep(ap_rep)?;
        Ok(ApRepInfo {
            session_key: ac.session_key()?,
            subkey: ac.subkey(true)?,
        })
    }

    fn release_ap_req(&mut self, id: ApReqId) {
        self.pending.remove(&id.0);
    }

    fn read_ap_req(
        &mut self,
        ap_req: &[u8],
        mode: AcceptMode,
    ) -> std::result::Result<Accepted, Rejected> {
        match mode {
            AcceptMode::Keytab => self.accept_with(ap_req, None),
            AcceptMode::UserToUser => {
                // The current TGT's key, then the one before the last
                // renewal (tickets peers fetched under it).
                let keys: Vec<SessionKey> = [&self.tgt, &self.previous_tgt]
                    .into_iter()
                    .flatten()
                    .map(Creds::session_key)
                    .collect();
                let mut result = Err(Rejected {
                    error: Error::local("read_ap_req", "user-to-user without a TGT"),
                    client_time: None,
                });
                for key in keys {
                    result = self.accept_with(ap_req, Some(&key));
                    if result.is_ok() {
                        break;
                    }
                }
                result
            }
        }
    }

    fn make_error(
        &mut self,
        code: KrbErrorCode,
        client_time: Option<(i64, i32)>,
        client: Option<&str>,
    ) -> Result<Vec<u8>> {
        let (stime, susec) = self.ctx.now()?;
        let client = client.map(|c| Principal::parse(&self.ctx, c)).transpose()?;
        let fields = ErrorFields {
            error: code.0,
            stime,
            susec,
            ctime: client_time,
            server: None,
            client: None,
            text: String::new(),
        };
        self.ctx.mk_error(&fields, &self.me, client.as_ref())
    }

    fn read_error(&mut self, bytes: &[u8]) -> Result<KrbError> {
        let f = self.ctx.rd_error(bytes)?;
        Ok(KrbError {
            code: KrbErrorCode(f.error),
            server_time: (f.stime, f.susec),
            client_time: f.ctime,
            server: f.server,
            text: f.text,
        })
    }

    fn now(&self) -> Result<(i64, i32)> {
        self.ctx.now()
    }

    fn set_clock_offset(&mut self, offset: i64) -> Result<()> {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::local("set_clock_offset", "system clock before 1970"))?;
        let secs = i64::try_from(system.as_secs())
            .map_err(|_| Error::local("set_clock_offset", "system clock out of range"))?;
        self.ctx.set_real_time(secs.saturating_add(offset))
    }

    fn checksum(&self, key: &SessionKey, usage: i32, data: &[u8]) -> Result<Vec<u8>> {
        self.ctx.make_checksum(key, usage, data).map(|(_, c)| c)
    }

    fn verify_checksum(
        &self,
        key: &SessionKey,
        usage: i32,
        data: &[u8],
        cksum: &[u8],
    ) -> Result<bool> {
        // KINK_CKSUM carries no checksum type: it is the key's mandatory
        // one, which MIT reports when asked to make a checksum with type 0.
        let (cksumtype, sample) = self.ctx.make_checksum(key, usage, &[])?;
        // A checksum of the wrong length is a mismatch, not a library error
        // (MIT reports KRB5_BAD_MSIZE): it comes off the network.
        if cksum.len() != sample.len() {
            return Ok(false);
        }
        self.ctx.verify_checksum(key, usage, cksumtype, data, cksum)
    }

    fn encrypt(&self, key: &SessionKey, usage: i32, plain: &[u8]) -> Result<Vec<u8>> {
        self.ctx.encrypt(key, usage, plain)
    }

    fn decrypt(&self, key: &SessionKey, usage: i32, cipher: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.ctx.decrypt(key, usage, cipher)
    }

    fn prf(&self, key: &SessionKey, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.ctx.prf(key, input)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::krb5::{KEY_USAGE_KINK_CKSUM, KEY_USAGE_KINK_ENCRYPT};

    /// A scratch directory removed when the test ends, even by a panic.
    pub(crate) struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    /// A backend without a KDC: a throwaway krb5.conf, a keytab name that
    /// need not exist (only resolved), a MEMORY cache. Enough for the
    /// local operations (checksums, encryption, the PRF).
    pub(crate) fn offline() -> (MitKerberos, Scratch) {
        let dir = std::env::temp_dir().join(format!(
            "kinkd-krb5-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let conf = dir.join("krb5.conf");
        std::fs::write(&conf, "[libdefaults]\n default_realm = UNIT.TEST\n").expect("conf");
        let k = MitKerberos::new(&Krb5Config {
            principal: "kink/a.unit.test".into(),
            config_file: Some(conf),
            keytab: Some(format!("FILE:{}", dir.join("none.keytab").display())),
            ccache: Some("MEMORY:unit".into()),
        })
        .expect("backend");
        (k, Scratch(dir))
    }

    /// aes256-cts-hmac-sha1-96: 16-octet PRF blocks (RFC 3962 §6).
    pub(crate) fn aes256_sha1() -> SessionKey {
        SessionKey::new(18, (0u8..32).collect())
    }

    /// aes256-cts-hmac-sha384-192: 48-octet PRF blocks (RFC 8009 §5).
    pub(crate) fn aes256_sha384() -> SessionKey {
        SessionKey::new(20, (100u8..132).collect())
    }

    #[test]
    fn principal_gets_the_default_realm() {
        let (k, _dir) = offline();
        assert_eq!(k.principal(), "kink/a.unit.test@UNIT.TEST");
        assert!(k.tgt_ticket().is_err());
    }

    #[test]
    fn checksum_uses_the_mandatory_type_and_detects_tampering() {
        let (k, _dir) = offline();
        for (key, len) in [(aes256_sha1(), 12), (aes256_sha384(), 24)] {
            let msg = b"KINK header and payloads";
            let c = k.checksum(&key, KEY_USAGE_KINK_CKSUM, msg).expect("cksum");
            assert_eq!(c.len(), len, "{key:?}");
            assert!(
                k.verify_checksum(&key, KEY_USAGE_KINK_CKSUM, msg, &c)
                    .expect("verify")
            );
            // Another usage, message, checksum or key: no match.
            assert!(
                !k.verify_checksum(&key, KEY_USAGE_KINK_ENCRYPT, msg, &c)
                    .expect("verify")
            );
            assert!(
                !k.verify_checksum(&key, KEY_USAGE_KINK_CKSUM, b"KINK header and payloadz", &c)
                    .expect("v")
            );
            let mut bad = c.clone();
            bad[0] ^= 1;
            assert!(
                !k.verify_checksum(&key, KEY_USAGE_KINK_CKSUM, msg, &bad)
                    .expect("verify")
            );
            // Wrong length (truncated, extended, empty): not verified either.
            for bad_len in [
                &c[..c.len() - 1],
                &[c.as_slice(), &[0]].concat()[..],
                &[][..],
            ] {
                let r = k.verify_checksum(&key, KEY_USAGE_KINK_CKSUM, msg, bad_len);
                assert!(matches!(r, Ok(false)), "{} octets: {r:?}", bad_len.len());
            }
            let other = SessionKey::new(key.enctype(), vec![7; 32]);
            assert!(
                !k.verify_checksum(&other, KEY_USAGE_KINK_CKSUM, msg, &c)
                    .expect("verify")
            );
        }
    }

    /// The keyed checksums are deterministic (both peers must compute the
    /// same value) and the key usage enters them.
    #[test]
    fn checksum_is_deterministic() {
        let (k, _dir) = offline();
        let key = aes256_sha1();
        let a = k.checksum(&key, KEY_USAGE_KINK_CKSUM, b"abc").expect("a");
        let b = k.checksum(&key, KEY_USAGE_KINK_CKSUM, b"abc").expect("b");
        assert_eq!(a, b);
        let c = k.checksum(&key, KEY_USAGE_KINK_ENCRYPT, b"abc").expect("c");
        assert_ne!(a, c, "key usage must enter the checksum");
    }

    #[test]
    fn encryption_round_trips_and_rejects_tampering() {
        let (k, _dir) = offline();
        for (key, overhead) in [(aes256_sha1(), 28), (aes256_sha384(), 40)] {
            let plain = b"inner KINK payloads, 4-octet aligned";
            let c = k.encrypt(&key, KEY_USAGE_KINK_ENCRYPT, plain).expect("enc");
            assert_eq!(c.len(), plain.len() + overhead);
            let p = k.decrypt(&key, KEY_USAGE_KINK_ENCRYPT, &c).expect("dec");
            assert_eq!(&p[..], plain);
            // Random confounder: two encryptions differ.
            assert_ne!(
                c,
                k.encrypt(&key, KEY_USAGE_KINK_ENCRYPT, plain).expect("enc")
            );
            let mut bad = c.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x80;
            let err = k.decrypt(&key, KEY_USAGE_KINK_ENCRYPT, &bad).unwrap_err();
            assert_eq!(
                err.krb_error(),
                Some(KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY),
                "{err}"
            );
            let err = k.decrypt(&key, KEY_USAGE_KINK_CKSUM, &c).unwrap_err();
            assert_eq!(
                err.krb_error(),
                Some(KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY),
                "{err}"
            );
            let wrong = SessionKey::new(key.enctype(), vec![9; 32]);
            let err = k.decrypt(&wrong, KEY_USAGE_KINK_ENCRYPT, &c).unwrap_err();
            assert_eq!(
                err.krb_error(),
                Some(KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY),
                "{err}"
            );
            // Truncated below the overhead: an error, not a panic.
            assert!(k.decrypt(&key, KEY_USAGE_KINK_ENCRYPT, &c[..5]).is_err());
            assert!(k.decrypt(&key, KEY_USAGE_KINK_ENCRYPT, &[]).is_err());
        }
    }

    #[test]
    fn prf_block_sizes_follow_the_enctype() {
        let (k, _dir) = offline();
        let a = k.prf(&aes256_sha1(), b"seed").expect("prf");
        assert_eq!(a.len(), 16);
        assert_eq!(a, k.prf(&aes256_sha1(), b"seed").expect("prf"));
        assert_ne!(a, k.prf(&aes256_sha1(), b"seeD").expect("prf"));
        assert_eq!(k.prf(&aes256_sha384(), b"seed").expect("prf").len(), 48);
    }

    #[test]
    fn unsupported_enctypes_and_bad_input_are_errors() {
        let (mut k, _dir) = offline();
        let bogus = SessionKey::new(9999, vec![0; 16]);
        assert!(k.checksum(&bogus, KEY_USAGE_KINK_CKSUM, b"x").is_err());
        assert!(k.encrypt(&bogus, KEY_USAGE_KINK_ENCRYPT, b"x").is_err());
        assert!(k.prf(&bogus, b"x").is_err());
        // Garbage where DER is expected.
        assert!(k.read_error(b"\x7e\x03\x02\x01").is_err());
        let rejected = k
            .read_ap_req(b"not an AP-REQ", AcceptMode::Keytab)
            .unwrap_err();
        assert!(rejected.client_time.is_none());
        assert!(k.read_ap_req(&[], AcceptMode::UserToUser).is_err());
        assert!(
            k.make_ap_req("kink/b.unit.test", TicketKind::Service)
                .is_err()
        );
        assert!(k.read_ap_rep(ApReqId(5), b"x").is_err());
    }

    #[test]
    fn krb_error_round_trips() {
        let (mut k, _dir) = offline();
        let bytes = k
            .make_error(
                KrbErrorCode::KRB_AP_ERR_SKEW,
                Some((1_700_000_000, 123)),
                Some("kink/b.unit.test"),
            )
            .expect("mk_error");
        assert_eq!(bytes.first(), Some(&0x7e), "KRB-ERROR is [APPLICATION 30]");
        let e = k.read_error(&bytes).expect("rd_error");
        assert_eq!(e.code, KrbErrorCode::KRB_AP_ERR_SKEW);
        assert_eq!(e.client_time, Some((1_700_000_000, 123)));
        assert_eq!(e.server.as_deref(), Some("kink/a.unit.test@UNIT.TEST"));
        let (now, _) = k.now().expect("now");
        assert!((e.server_time.0 - now).abs() <= 2);
    }

    #[test]
    fn clock_offset_shows_in_now_and_in_errors() {
        let (mut k, _dir) = offline();
        let (before, _) = k.now().expect("now");
        k.set_clock_offset(-7200).expect("offset");
        let (after, _) = k.now().expect("now");
        assert!((before - after - 7200).abs() <= 2, "{before} {after}");
        let bytes = k
            .make_error(KrbErrorCode::KRB_AP_ERR_REPEAT, None, None)
            .expect("mk");
        let e = k.read_error(&bytes).expect("rd");
        assert!((e.server_time.0 - after).abs() <= 2);
        assert_eq!(e.client_time, None);
    }

    #[test]
    fn session_keys_never_print_their_bytes() {
        let s = format!("{:?}", aes256_sha1());
        assert_eq!(s, "SessionKey(aes256-cts-hmac-sha1-96, 32 bytes)");
    }
}
