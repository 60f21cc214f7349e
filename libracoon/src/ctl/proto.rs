//! Control-protocol messages: what racoonctl asks and what a daemon answers.
//!
//! Every message is one JSON object (serde). A connection opens with a hello
//! each way ([`ClientMessage::Hello`], then [`ServerMessage::Hello`]); then
//! the client sends [`ClientMessage::Request`]s, each answered by one
//! [`ServerMessage::Response`] with the same `id`. After a
//! [`Request::Watch`] the daemon also sends [`ServerMessage::Event`]s,
//! interleaved with responses.
//!
//! A response with id 0 answers no request: it is the daemon's last word on a
//! connection it is about to close (peer not allowed, version mismatch, bad
//! frame). Clients therefore number their requests from 1.
//!
//! Unknown JSON fields are ignored, so either side may add optional fields
//! without a version bump; a new request, response or error code needs one
//! ([`PROTOCOL_VERSION`]).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The protocol version both hellos carry. A daemon refuses a client that
/// speaks another one with [`ErrorCode::VersionMismatch`].
pub const PROTOCOL_VERSION: u32 = 2;

/// A message from racoonctl (or any client) to a daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message on every connection.
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        version: u32,
        /// The client's name, for the daemon's log (`racoonctl`).
        client: String,
    },
    /// A command; the daemon answers with a response carrying the same `id`.
    Request {
        /// Chosen by the client, unique on the connection, never 0.
        id: u64,
        /// What to do.
        request: Request,
    },
}

/// What a client asks a daemon to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// List the IKE SAs with their CHILD SAs ([`ResponseBody::Sas`]).
    ShowSa,
    /// Report on the daemon itself ([`ResponseBody::Status`]).
    ShowStatus,
    /// Start an IKE SA with a `remote` block of the configuration.
    Initiate {
        /// The `remote` block's name.
        remote: String,
    },
    /// Delete IKE SAs (and their CHILD SAs).
    Terminate {
        /// A `remote` name (all its IKE SAs), one IKE SA's initiator SPI
        /// as 16 hex digits, or `all`.
        target: String,
    },
    /// Subscribe this connection to the daemon's events
    /// ([`ServerMessage::Event`]), answered with [`ResponseBody::Done`].
    Watch,
    /// List spmd's installed security policies ([`ResponseBody::Policies`]).
    ShowPolicy,
    /// Re-read the configuration and apply what changed (spmd: policies
    /// added and removed, untouched SAs kept).
    Reload,
    /// Remove every SA: iked deletes its IKE SAs (telling the peers), spmd
    /// flushes the SAD of its backend.
    Flush,
    /// Rekey one SA now (iked).
    Rekey {
        /// A CHILD SA's SPI as 8 hex digits, or an IKE SA's initiator SPI
        /// as 16 hex digits.
        target: String,
    },
    /// A kernel operation from iked or kinkd to spmd ([`super::kernel`]).
    Kernel {
        /// The daemon asking (`iked`, `kinkd`).
        from: String,
        /// What to do (boxed: an SA with its keys is large).
        op: Box<super::kernel::KernelOp>,
    },
}

/// A message from a daemon to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to the client's hello.
    Hello {
        /// [`PROTOCOL_VERSION`] of the daemon.
        version: u32,
        /// Which daemon answers (`iked`).
        daemon: String,
        /// Its process id.
        pid: u32,
    },
    /// The answer to one request; id 0 answers none (see the module docs).
    Response {
        /// The request's id.
        id: u64,
        /// Success with a body, or an error.
        result: ResponseResult,
    },
    /// Something happened; only sent to connections that asked to watch.
    Event {
        /// What happened.
        event: EventRecord,
    },
}

/// The outcome of a request: `{"ok": body}` or `{"error": {code, message}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseResult {
    /// The request succeeded.
    #[serde(rename = "ok")]
    Ok(ResponseBody),
    /// The request failed.
    #[serde(rename = "error")]
    Err(CtlError),
}

impl ResponseResult {
    /// The outcome as a [`Result`].
    ///
    /// # Errors
    ///
    /// The daemon's error when the request failed.
    pub fn into_result(self) -> Result<ResponseBody, CtlError> {
        match self {
            Self::Ok(body) => Ok(body),
            Self::Err(err) => Err(err),
        }
    }
}

impl From<Result<ResponseBody, CtlError>> for ResponseResult {
    fn from(result: Result<ResponseBody, CtlError>) -> Self {
        match result {
            Ok(body) => Self::Ok(body),
            Err(err) => Self::Err(err),
        }
    }
}

/// What a successful request returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseBody {
    /// For [`Request::ShowSa`]: every IKE SA, in the daemon's order.
    Sas(Vec<IkeSaStatus>),
    /// For [`Request::ShowSa`] to kinkd: KINK has no IKE SA to hang the
    /// IPsec SAs under, so each SA pair (and negotiation) is one entry.
    KinkSas(Vec<KinkSaStatus>),
    /// For [`Request::ShowStatus`].
    Status(DaemonStatus),
    /// For commands: what the daemon did, in a sentence.
    Done {
        /// For example "initiating IKE SA with 198.51.100.2 (remote peer-b)".
        message: String,
    },
    /// For [`Request::ShowPolicy`]: spmd's policies, in its order.
    Policies(Vec<PolicyStatus>),
    /// For [`Request::Kernel`].
    Kernel(super::kernel::KernelReply),
}

/// One installed security policy, as racoonctl shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// The `selector` block it comes from, or the daemon that asked for
    /// it (a dynamic policy).
    pub source: String,
    /// The `remote` block whose SAs protect it, if any.
    pub remote: Option<String>,
    /// `out` or `in`.
    pub direction: String,
    /// Source range (`192.0.2.0/24`, or `a-b` when not a prefix), with
    /// `[port]` when one is set.
    pub src: String,
    /// Destination range, same form.
    pub dst: String,
    /// IP protocol number, 0 for any.
    pub proto: u8,
    /// `protect`, `bypass` or `discard`.
    pub action: String,
    /// `tunnel` or `transport` for `protect`.
    pub mode: Option<String>,
    /// Request ID tying the policy to its SAs, for `protect`.
    pub reqid: Option<u32>,
    /// Tunnel endpoints `local -> remote`, for tunnel mode.
    pub tunnel: Option<String>,
}

/// Why a request failed: a code for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CtlError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// What went wrong and, where possible, what to do about it.
    pub message: String,
}

impl CtlError {
    /// An error of kind `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The kinds of [`CtlError`]; serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request or the frame carrying it is malformed, or not understood.
    BadRequest,
    /// [`Request::Initiate`] or [`Request::Terminate`] names no `remote`
    /// block of the configuration.
    UnknownRemote,
    /// The target exists in the configuration but nothing matches it (no
    /// such SPI, no SA with that remote).
    NotFound,
    /// The client's hello carries another [`PROTOCOL_VERSION`].
    VersionMismatch,
    /// The client's user is neither root nor the daemon's own user.
    PermissionDenied,
    /// The daemon failed, or is shutting down.
    Internal,
    /// The daemon does not do this (not implemented, or not its job).
    Unsupported,
    /// spmd's kernel backend refused a [`Request::Kernel`] operation.
    Kernel,
    /// A [`Request::Kernel`] SA already exists.
    Exists,
}

impl ErrorCode {
    /// The wire spelling (`bad_request`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownRemote => "unknown_remote",
            Self::NotFound => "not_found",
            Self::VersionMismatch => "version_mismatch",
            Self::PermissionDenied => "permission_denied",
            Self::Internal => "internal",
            Self::Unsupported => "unsupported",
            Self::Kernel => "kernel",
            Self::Exists => "exists",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One IKE SA as `show sa` lists it. Addresses are printed forms, SPIs hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaStatus {
    /// The `remote` block it belongs to.
    pub name: String,
    /// The initiator's IKE SPI, 16 hex digits (`terminate` accepts it).
    pub spi_i: String,
    /// The responder's IKE SPI, 16 hex digits (zeros until it is known).
    pub spi_r: String,
    /// Lifecycle state, for example `established`, `connecting`, `deleting`.
    pub state: String,
    /// `initiator` or `responder` (of the IKE SA as it stands, after rekeys).
    pub role: String,
    /// Local address and port, for example `192.0.2.1[4500]`.
    pub local: String,
    /// Remote address and port.
    pub remote: String,
    /// The peer's authenticated identity (empty before IKE_AUTH).
    pub peer_id: String,
    /// Negotiated IKE transforms, for example `AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519`.
    pub ike_algs: String,
    /// Seconds since the SA was created.
    pub age_secs: u64,
    /// Its CHILD SAs.
    pub children: Vec<ChildSaStatus>,
}

/// One CHILD SA pair (inbound and outbound ESP SA) under an IKE SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSaStatus {
    /// Inbound ESP SPI, 8 hex digits.
    pub spi_in: String,
    /// Outbound ESP SPI, 8 hex digits.
    pub spi_out: String,
    /// `tunnel` or `transport`.
    pub mode: String,
    /// Negotiated ESP transforms, for example `AES_GCM_16_256`.
    pub esp_algs: String,
    /// ESP in UDP (RFC 3948) because of NAT.
    pub encap: bool,
    /// Local traffic selectors, for example `192.0.2.0/24`.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// Bytes received (after decryption).
    pub in_bytes: u64,
    /// Packets received.
    pub in_packets: u64,
    /// Bytes sent (before encryption).
    pub out_bytes: u64,
    /// Packets sent.
    pub out_packets: u64,
}

/// A daemon's report on itself (`show status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// `iked`, `spmd`, `kinkd`.
    pub daemon: String,
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// The kernel backend in use: `xfrm`, `pfkeyv2`, `userspace`, `memory`.
    pub kernel_backend: String,
    /// Whether installed SAs carry packets (false for `memory`).
    pub carries_traffic: bool,
    /// IKE SAs, established or not.
    pub ike_sas: u64,
    /// Of those, the ones still negotiating (counted against the half-open limit).
    pub half_open: u64,
    /// Where it listens, for example `192.0.2.1[500]`.
    pub listen: Vec<String>,
    /// Named counters (kinkd: messages received, dropped by reason,
    /// retransmissions, ...; iked: socket and hand-off drops); absent when
    /// the daemon keeps none (spmd).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// One KINK SA pair, or a negotiation for one (`show sa` to kinkd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KinkSaStatus {
    /// The remote block.
    pub peer: String,
    /// `established`, `negotiating`, `waiting-ack`, `deleting`.
    pub state: String,
    /// `initiator` or `responder` of the CREATE that made it.
    pub role: String,
    /// Our inbound SPI, 8 hex digits (`00000000` while unknown).
    pub spi_in: String,
    /// Our outbound SPI, 8 hex digits (`00000000` while unknown).
    pub spi_out: String,
    /// ESP algorithms, e.g. `AES_GCM_16-128` (empty while negotiating).
    pub esp_algs: String,
}

/// Something that happened, for `watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When, in RFC 3339 UTC (`2026-11-27T10:15:02Z`); see [`rfc3339_utc`].
    pub time: String,
    /// A short `snake_case` word: `ike_up`, `ike_down`, `child_up`, ...;
    /// `lagged` when the daemon dropped events for a slow watcher.
    pub kind: String,
    /// The IKE SA concerned, by its initiator SPI, if any.
    pub sa: Option<String>,
    /// The event in a sentence.
    pub message: String,
    /// For key-exchange daemons watching spmd: the kernel event itself,
    /// addressed to one of them. Absent on every other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<super::kernel::KernelNotice>,
}

impl EventRecord {
    /// An event that happened at `time`.
    pub fn new(
        time: SystemTime,
        kind: impl Into<String>,
        sa: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            time: rfc3339_utc(time),
            kind: kind.into(),
            sa,
            message: message.into(),
            kernel: None,
        }
    }
}

/// `time` as RFC 3339 in UTC with whole seconds, `1970-01-01T00:00:00Z`
/// for anything before the epoch.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let (year, month, day) = civil_from_days(secs / 86_400);
    let clock = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        clock / 3600,
        clock / 60 % 60,
        clock % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms",
/// `civil_from_days`, restricted to non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        let at = |secs| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` (leap day of a year divisible by 400)
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        // `date -u -d @1795774502`
        assert_eq!(at(1_795_774_502), "2026-11-27T10:15:02Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn error_codes_display_their_wire_spelling() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::UnknownRemote,
            ErrorCode::NotFound,
            ErrorCode::VersionMismatch,
            ErrorCode::PermissionDenied,
            ErrorCode::Internal,
            ErrorCode::Unsupported,
            ErrorCode::Kernel,
            ErrorCode::Exists,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{code}\""));
        }
    }

    #[test]
    fn response_result_converts_to_and_from_result() {
        let err = CtlError::new(ErrorCode::NotFound, "no IKE SA with SPI 0011223344556677");
        let result = ResponseResult::from(Err::<ResponseBody, _>(err.clone()));
        assert_eq!(result.into_result(), Err(err));
    }
}
