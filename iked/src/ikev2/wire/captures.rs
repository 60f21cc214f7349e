//! The strongSwan 5.9.8 captures in `iked/testdata/` (see its README.md), for codec tests.
//!
//! Datagrams are as sent (non-ESP marker stripped); `*_INNER` are the decrypted SK contents
//! (padding removed), decrypted by `testdata/extract.py` with the keys strongSwan logged.

use super::PayloadType;

/// One captured datagram and, if encrypted, its decrypted inner chain.
pub(super) struct Capture {
    /// File stem, for assertion messages.
    pub(super) name: &'static str,
    /// The datagram.
    pub(super) datagram: &'static [u8],
    /// The decrypted SK contents, if the datagram is encrypted.
    pub(super) inner: Option<&'static [u8]>,
}

/// `strongswan-ikev2-psk/00_ike_sa_init_req.bin`.
pub(super) const PSK_INIT_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/00_ike_sa_init_req.bin");
/// `strongswan-ikev2-psk/01_ike_sa_init_resp.bin`.
pub(super) const PSK_INIT_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/01_ike_sa_init_resp.bin");
/// `strongswan-ikev2-psk/02_ike_auth_req.bin`.
pub(super) const PSK_AUTH_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/02_ike_auth_req.bin");
/// `strongswan-ikev2-psk/02_ike_auth_req.inner.bin`.
pub(super) const PSK_AUTH_REQ_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/02_ike_auth_req.inner.bin");
/// `strongswan-ikev2-psk/03_ike_auth_resp.bin`.
pub(super) const PSK_AUTH_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/03_ike_auth_resp.bin");
/// `strongswan-ikev2-psk/03_ike_auth_resp.inner.bin`.
pub(super) const PSK_AUTH_RESP_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/03_ike_auth_resp.inner.bin");
/// `strongswan-ikev2-psk/04_create_child_sa_req.bin`.
pub(super) const PSK_CHILD_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/04_create_child_sa_req.bin");
/// `strongswan-ikev2-psk/04_create_child_sa_req.inner.bin`.
pub(super) const PSK_CHILD_REQ_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/04_create_child_sa_req.inner.bin");
/// `strongswan-ikev2-psk/05_create_child_sa_resp.bin`.
pub(super) const PSK_CHILD_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/05_create_child_sa_resp.bin");
/// `strongswan-ikev2-psk/05_create_child_sa_resp.inner.bin`.
pub(super) const PSK_CHILD_RESP_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/05_create_child_sa_resp.inner.bin");
/// `strongswan-ikev2-psk/06_informational_req.bin`.
pub(super) const PSK_INFO_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/06_informational_req.bin");
/// `strongswan-ikev2-psk/06_informational_req.inner.bin`.
pub(super) const PSK_INFO_REQ_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/06_informational_req.inner.bin");
/// `strongswan-ikev2-psk/07_informational_resp.bin`.
pub(super) const PSK_INFO_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/07_informational_resp.bin");
/// `strongswan-ikev2-psk/07_informational_resp.inner.bin`.
pub(super) const PSK_INFO_RESP_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/07_informational_resp.inner.bin");
/// `strongswan-ikev2-psk/08_informational_req.bin`.
pub(super) const PSK_INFO_REQ_LAST: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/08_informational_req.bin");
/// `strongswan-ikev2-psk/08_informational_req.inner.bin`.
pub(super) const PSK_INFO_REQ_LAST_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/08_informational_req.inner.bin");
/// `strongswan-ikev2-psk/09_informational_resp.bin`.
pub(super) const PSK_INFO_RESP_LAST: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/09_informational_resp.bin");
/// `strongswan-ikev2-psk/09_informational_resp.inner.bin`.
pub(super) const PSK_INFO_RESP_LAST_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-psk/09_informational_resp.inner.bin");
/// `strongswan-ikev2-cert/00_ike_sa_init_req.bin`.
pub(super) const CERT_INIT_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/00_ike_sa_init_req.bin");
/// `strongswan-ikev2-cert/01_ike_sa_init_resp.bin`.
pub(super) const CERT_INIT_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/01_ike_sa_init_resp.bin");
/// `strongswan-ikev2-cert/02_ike_auth_req.bin`.
pub(super) const CERT_AUTH_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/02_ike_auth_req.bin");
/// `strongswan-ikev2-cert/02_ike_auth_req.inner.bin`.
pub(super) const CERT_AUTH_REQ_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/02_ike_auth_req.inner.bin");
/// `strongswan-ikev2-cert/03_ike_auth_resp.bin`.
pub(super) const CERT_AUTH_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/03_ike_auth_resp.bin");
/// `strongswan-ikev2-cert/03_ike_auth_resp.inner.bin`.
pub(super) const CERT_AUTH_RESP_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/03_ike_auth_resp.inner.bin");
/// `strongswan-ikev2-cert/04_create_child_sa_req.bin`.
pub(super) const CERT_CHILD_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/04_create_child_sa_req.bin");
/// `strongswan-ikev2-cert/04_create_child_sa_req.inner.bin`.
pub(super) const CERT_CHILD_REQ_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/04_create_child_sa_req.inner.bin");
/// `strongswan-ikev2-cert/05_create_child_sa_resp.bin`.
pub(super) const CERT_CHILD_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/05_create_child_sa_resp.bin");
/// `strongswan-ikev2-cert/05_create_child_sa_resp.inner.bin`.
pub(super) const CERT_CHILD_RESP_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/05_create_child_sa_resp.inner.bin");
/// `strongswan-ikev2-cert/06_informational_req.bin`.
pub(super) const CERT_INFO_REQ: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/06_informational_req.bin");
/// `strongswan-ikev2-cert/06_informational_req.inner.bin`.
pub(super) const CERT_INFO_REQ_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/06_informational_req.inner.bin");
/// `strongswan-ikev2-cert/07_informational_resp.bin`.
pub(super) const CERT_INFO_RESP: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/07_informational_resp.bin");
/// `strongswan-ikev2-cert/07_informational_resp.inner.bin`.
pub(super) const CERT_INFO_RESP_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/07_informational_resp.inner.bin");
/// `strongswan-ikev2-cert/08_informational_req.bin`.
pub(super) const CERT_INFO_REQ_LAST: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/08_informational_req.bin");
/// `strongswan-ikev2-cert/08_informational_req.inner.bin`.
pub(super) const CERT_INFO_REQ_LAST_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/08_informational_req.inner.bin");
/// `strongswan-ikev2-cert/09_informational_resp.bin`.
pub(super) const CERT_INFO_RESP_LAST: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/09_informational_resp.bin");
/// `strongswan-ikev2-cert/09_informational_resp.inner.bin`.
pub(super) const CERT_INFO_RESP_LAST_INNER: &[u8] =
    include_bytes!("../../../testdata/strongswan-ikev2-cert/09_informational_resp.inner.bin");

/// Every capture, IKE_SA_INIT first.
pub(super) fn all() -> Vec<Capture> {
    vec![
        Capture {
            name: "psk/00_ike_sa_init_req",
            datagram: PSK_INIT_REQ,
            inner: None,
        },
        Capture {
            name: "psk/01_ike_sa_init_resp",
            datagram: PSK_INIT_RESP,
            inner: None,
        },
        Capture {
            name: "psk/02_ike_auth_req",
            datagram: PSK_AUTH_REQ,
            inner: Some(PSK_AUTH_REQ_INNER),
        },
        Capture {
            name: "psk/03_ike_auth_resp",
            datagram: PSK_AUTH_RESP,
            inner: Some(PSK_AUTH_RESP_INNER),
        },
        Capture {
            name: "psk/04_create_child_sa_req",
            datagram: PSK_CHILD_REQ,
            inner: Some(PSK_CHILD_REQ_INNER),
        },
        Capture {
            name: "psk/05_create_child_sa_resp",
            datagram: PSK_CHILD_RESP,
            inner: Some(PSK_CHILD_RESP_INNER),
        },
        Capture {
            name: "psk/06_informational_req",
            datagram: PSK_INFO_REQ,
            inner: Some(PSK_INFO_REQ_INNER),
        },
        Capture {
            name: "psk/07_informational_resp",
            datagram: PSK_INFO_RESP,
            inner: Some(PSK_INFO_RESP_INNER),
        },
        Capture {
            name: "psk/08_informational_req",
            datagram: PSK_INFO_REQ_LAST,
            inner: Some(PSK_INFO_REQ_LAST_INNER),
        },
        Capture {
            name: "psk/09_informational_resp",
            datagram: PSK_INFO_RESP_LAST,
            inner: Some(PSK_INFO_RESP_LAST_INNER),
        },
        Capture {
            name: "cert/00_ike_sa_init_req",
            datagram: CERT_INIT_REQ,
            inner: None,
        },
        Capture {
            name: "cert/01_ike_sa_init_resp",
            datagram: CERT_INIT_RESP,
            inner: None,
        },
        Capture {
            name: "cert/02_ike_auth_req",
            datagram: CERT_AUTH_REQ,
            inner: Some(CERT_AUTH_REQ_INNER),
        },
        Capture {
            name: "cert/03_ike_auth_resp",
            datagram: CERT_AUTH_RESP,
            inner: Some(CERT_AUTH_RESP_INNER),
        },
        Capture {
            name: "cert/04_create_child_sa_req",
            datagram: CERT_CHILD_REQ,
            inner: Some(CERT_CHILD_REQ_INNER),
        },
        Capture {
            name: "cert/05_create_child_sa_resp",
            datagram: CERT_CHILD_RESP,
            inner: Some(CERT_CHILD_RESP_INNER),
        },
        Capture {
            name: "cert/06_informational_req",
            datagram: CERT_INFO_REQ,
            inner: Some(CERT_INFO_REQ_INNER),
        },
        Capture {
            name: "cert/07_informational_resp",
            datagram: CERT_INFO_RESP,
            inner: Some(CERT_INFO_RESP_INNER),
        },
        Capture {
            name: "cert/08_informational_req",
            datagram: CERT_INFO_REQ_LAST,
            inner: Some(CERT_INFO_REQ_LAST_INNER),
        },
        Capture {
            name: "cert/09_informational_resp",
            datagram: CERT_INFO_RESP_LAST,
            inner: Some(CERT_INFO_RESP_LAST_INNER),
        },
    ]
}

/// Every decrypted inner chain with its first payload type (the SK payload's Next Payload).
pub(super) fn inner_chains() -> Vec<(&'static str, PayloadType, &'static [u8])> {
    all()
        .into_iter()
        .filter_map(|c| Some((c.name, PayloadType::from(*c.datagram.get(28)?), c.inner?)))
        .collect()
}
