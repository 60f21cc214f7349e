//! Fuzz target body and test double: `fuzz/fuzz_targets/kink_engine.rs`
//! feeds [`engine`] arbitrary datagrams; the engine tests use
//! [`ToyKerberos`] to run two engines against each other without a KDC.
//!
//! The fuzzer uses the double's NULL-crypto variant ([`ToyKerberos::lenient`]:
//! every checksum verifies, nothing is a replay), so mutated CREATEs reach
//! the exchanges behind Kerberos (Quick Mode parsing, proposal choice, the
//! reply cache) instead of stopping at the checksum.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libracoon::crypto::SeededRandom;
use libracoon::ipsec::{EspAuth, EspEncr, IpsecMode, Lifetime, Selector};
use zeroize::Zeroizing;

use super::{Engine, EspProposal, PeerConfig};
use crate::krb5::{
    self, AcceptMode, Accepted, ApRepInfo, ApReq, ApReqId, Kerberos, KrbError, KrbErrorCode,
    Rejected, SessionKey, TicketInfo, TicketKind,
};

/// A stand-in for Kerberos (never use it outside tests and fuzzing) with the same contract where the engine relies
/// on it: AP-REQs name the client and are refused when repeated,
/// checksums and ciphertexts detect any change, the PRF is deterministic.
pub struct ToyKerberos {
    me: String,
    key: SessionKey,
    pub(crate) next: u64,
    pub(crate) seen: HashSet<Vec<u8>>,
    pending: HashMap<u64, Vec<u8>>,
    /// Refuse every AP-REQ with this error (stale keytab, skew).
    pub(crate) refuse_with: Option<KrbErrorCode>,
    /// NULL crypto for the fuzzer: every checksum verifies, ciphertexts
    /// decrypt without an integrity check, AP-REQs are never replays; so
    /// mutated messages reach the Quick Mode code behind them.
    lenient: bool,
}

fn digest(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = std::hash::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish().to_be_bytes()
}

impl ToyKerberos {
    /// A double for principal `me`; every instance shares one session key.
    pub fn new(me: &str) -> Self {
        Self {
            me: me.into(),
            key: SessionKey::new(18, vec![7; 32]),
            next: 0,
            seen: HashSet::new(),
            pending: HashMap::new(),
            refuse_with: None,
            lenient: false,
        }
    }

    /// The NULL-crypto variant (see `lenient`).
    pub fn lenient(me: &str) -> Self {
        Self {
            lenient: true,
            ..Self::new(me)
        }
    }
}

impl Kerberos for ToyKerberos {
    fn principal(&self) -> &str {
        &self.me
    }
    fn canonical_name(&self, name: &str) -> krb5::Result<String> {
        Ok(if name.contains('@') {
            name.to_owned()
        } else {
            format!("{name}@T")
        })
    }
    fn get_tgt(&mut self) -> krb5::Result<TicketInfo> {
        self.load_tgt()
    }
    fn load_tgt(&mut self) -> krb5::Result<TicketInfo> {
        Ok(TicketInfo {
            client: self.me.clone(),
            server: "krbtgt/T@T".into(),
            end_time: 2_000_000_000,
            session_enctype: 18,
        })
    }
    fn tgt_ticket(&self) -> krb5::Result<Vec<u8>> {
        Err(krb5::Error::local("tgt_ticket", "none"))
    }
    fn get_service_ticket(&mut self, peer: &str) -> krb5::Result<TicketInfo> {
        self.load_ticket(peer, TicketKind::Service, None)
    }
    fn get_user_to_user_ticket(&mut self, peer: &str, _tgt: &[u8]) -> krb5::Result<TicketInfo> {
        self.load_ticket(peer, TicketKind::UserToUser, None)
    }
    fn load_ticket(
        &mut self,
        peer: &str,
        _kind: TicketKind,
        _tgt: Option<&[u8]>,
    ) -> krb5::Result<TicketInfo> {
        Ok(TicketInfo {
            client: self.me.clone(),
            server: peer.into(),
            end_time: 2_000_000_000,
            session_enctype: 18,
        })
    }
    fn forget_tickets(&mut self, _peer: &str) {}
    fn make_ap_req(&mut self, _peer: &str, _kind: TicketKind) -> krb5::Result<ApReq> {
        self.next += 1;
        let bytes = format!("{}#{}", self.me, self.next).into_bytes();
        self.pending.insert(self.next, bytes.clone());
        Ok(ApReq {
            id: test_ap_req_id(self.next),
            bytes,
            session_key: self.key.clone(),
        })
    }
    fn read_ap_rep(&mut self, id: ApReqId, ap_rep: &[u8]) -> krb5::Result<ApRepInfo> {
        let n = ap_req_number(id);
        match self.pending.get(&n) {
            Some(req) if [b"rep:".as_slice(), req].concat() == ap_rep => Ok(ApRepInfo {
                session_key: self.key.clone(),
                subkey: None,
            }),
            _ => Err(krb5::Error::local("read_ap_rep", "does not match")),
        }
    }
    fn release_ap_req(&mut self, id: ApReqId) {
        self.pending.remove(&ap_req_number(id));
    }
    fn read_ap_req(&mut self, ap_req: &[u8], _mode: AcceptMode) -> Result<Accepted, Rejected> {
        let reject = |code: KrbErrorCode| Rejected {
            error: krb5::Error {
                op: "krb5_rd_req",
                code: Some(-1_765_328_384 + i32::try_from(code.0).unwrap_or(0)),
                message: code.to_string(),
            },
            client_time: Some((1_000, 0)),
        };
        if let Some(code) = self.refuse_with {
            return Err(reject(code));
        }
        if !self.seen.insert(ap_req.to_vec()) && !self.lenient {
            return Err(reject(KrbErrorCode::KRB_AP_ERR_REPEAT));
        }
        let text = String::from_utf8_lossy(ap_req);
        let client = text.split('#').next().unwrap_or_default().to_owned();
        Ok(Accepted {
            client,
            session_key: self.key.clone(),
            subkey: None,
            ticket_end: 2_000_000_000,
            client_time: (1_000, 0),
            ap_rep: [b"rep:".as_slice(), ap_req].concat(),
        })
    }
    fn make_error(
        &mut self,
        code: KrbErrorCode,
        _t: Option<(i64, i32)>,
        _c: Option<&str>,
    ) -> krb5::Result<Vec<u8>> {
        Ok(code.0.to_be_bytes().to_vec())
    }
    fn read_error(&mut self, bytes: &[u8]) -> krb5::Result<KrbError> {
        let code =
            <[u8; 4]>::try_from(bytes).map_err(|_| krb5::Error::local("read_error", "bad"))?;
        Ok(KrbError {
            code: KrbErrorCode(u32::from_be_bytes(code)),
            server_time: (1_000, 0),
            client_time: None,
            server: None,
            text: String::new(),
        })
    }
    fn now(&self) -> krb5::Result<(i64, i32)> {
        Ok((1_000, 0))
    }
    fn set_clock_offset(&mut self, _offset: i64) -> krb5::Result<()> {
        Ok(())
    }
    fn checksum(&self, key: &SessionKey, usage: i32, data: &[u8]) -> krb5::Result<Vec<u8>> {
        Ok(digest(&[key.bytes(), &usage.to_be_bytes(), data]).to_vec())
    }
    fn verify_checksum(
        &self,
        key: &SessionKey,
        usage: i32,
        data: &[u8],
        cksum: &[u8],
    ) -> krb5::Result<bool> {
        Ok(self.lenient || self.checksum(key, usage, data)? == cksum)
    }
    fn encrypt(&self, key: &SessionKey, usage: i32, plain: &[u8]) -> krb5::Result<Vec<u8>> {
        let mut out: Vec<u8> = plain.iter().map(|b| b ^ 0x5a).collect();
        out.extend_from_slice(&digest(&[key.bytes(), &usage.to_be_bytes(), plain]));
        Ok(out)
    }
    fn decrypt(
        &self,
        key: &SessionKey,
        usage: i32,
        cipher: &[u8],
    ) -> krb5::Result<Zeroizing<Vec<u8>>> {
        let split = cipher
            .len()
            .checked_sub(8)
            .ok_or_else(|| krb5::Error::local("decrypt", "short"))?;
        let plain: Vec<u8> = cipher[..split].iter().map(|b| b ^ 0x5a).collect();
        if !self.lenient && digest(&[key.bytes(), &usage.to_be_bytes(), &plain]) != cipher[split..]
        {
            return Err(krb5::Error::local("decrypt", "integrity"));
        }
        Ok(Zeroizing::new(plain))
    }
    fn prf(&self, key: &SessionKey, input: &[u8]) -> krb5::Result<Zeroizing<Vec<u8>>> {
        let a = digest(&[key.bytes(), input, b"1"]);
        let b = digest(&[key.bytes(), input, b"2"]);
        Ok(Zeroizing::new([a, b].concat()))
    }
}

fn test_ap_req_id(n: u64) -> ApReqId {
    ApReqId::for_tests(n)
}

fn ap_req_number(id: ApReqId) -> u64 {
    id.number()
}

/// Runs `data` through a responder and an initiator engine, split into
/// datagrams at every 0xFF 0xFF pair, after a valid CREATE from the
/// initiator so that transactions and the reply cache exist.
///
/// # Panics
/// Only if the engine panics: that is the finding.
pub fn engine(data: &[u8]) {
    let a_addr: IpAddr = [192, 0, 2, 1].into();
    let b_addr: IpAddr = [192, 0, 2, 2].into();
    let peer = |me: IpAddr, peer: IpAddr, principal: &str| PeerConfig {
        name: "peer".into(),
        address: SocketAddr::new(peer, 910),
        local: me,
        principal: principal.into(),
        reqid: 1,
        mode: IpsecMode::Transport,
        selector: Selector::ranges((me, me), (peer, peer)),
        proposals: vec![
            EspProposal {
                encr: EspEncr {
                    id: 20,
                    key_bits: 128,
                },
                auth: None,
            },
            EspProposal {
                encr: EspEncr {
                    id: 12,
                    key_bits: 256,
                },
                auth: Some(EspAuth { id: 12 }),
            },
        ],
        lifetime: Lifetime::default(),
        user_to_user: false,
        retransmit_base: Duration::from_secs(1),
        retransmit_tries: 3,
    };
    let now = Instant::now();
    let mut a = Engine::new(
        vec![peer(a_addr, b_addr, "kink/b@T")],
        1,
        Box::new(SeededRandom::new(1)),
    );
    let mut b = Engine::new(
        vec![peer(b_addr, a_addr, "kink/a@T")],
        2,
        Box::new(SeededRandom::new(2)),
    );
    let mut ka = ToyKerberos::lenient("kink/a@T");
    let mut kb = ToyKerberos::lenient("kink/b@T");
    let _ = a.acquire(now, &mut ka, 1);
    let mut to_b = Vec::new();
    while let Some(out) = a.poll_output() {
        match out {
            super::Output::FetchTicket { peer, kind, .. } => {
                a.ticket_ready(now, &mut ka, &peer, kind, Ok(()));
            }
            super::Output::Send { bytes, .. } => to_b.push(bytes),
            _ => {}
        }
    }
    let from_a = SocketAddr::new(a_addr, 910);
    let from_b = SocketAddr::new(b_addr, 910);
    for m in &to_b {
        b.handle_datagram(now, &mut kb, from_a, m);
    }
    for chunk in data.split(|&x| x == 0xff).filter(|c| !c.is_empty()) {
        b.handle_datagram(now, &mut kb, from_a, chunk);
        a.handle_datagram(now, &mut ka, from_b, chunk);
        // Splice the chunk into the valid CREATE, to get past the header.
        if let Some(create) = to_b.first() {
            let mut m = create.clone();
            let at = usize::from(chunk[0]) % m.len().max(1);
            let end = (at + chunk.len()).min(m.len());
            m[at..end].copy_from_slice(&chunk[..end - at]);
            b.handle_datagram(now, &mut kb, from_a, &m);
        }
    }
    let later = now + Duration::from_secs(100);
    a.handle_timeout(later, &mut ka);
    b.handle_timeout(later, &mut kb);
    while a.poll_output().is_some() {}
    while b.poll_output().is_some() {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn survives_sample_inputs() {
        super::engine(b"");
        super::engine(&[0; 64]);
        super::engine(&(0..=254).collect::<Vec<u8>>());
        super::engine(&[
            1, 16, 0, 40, 0, 0, 0, 1, 0, 0, 0, 9, 6, 0, 0, 0, 0xff, 3, 16,
        ]);
    }
}
