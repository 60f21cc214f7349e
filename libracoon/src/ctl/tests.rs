//! `docs/control-protocol.md` must show what the serializer produces: every
//! sample message, indented as `serde_json::to_string_pretty` prints it, and
//! the hello frame's bytes.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::proto::{CtlError, ErrorCode, ResponseResult, ServerMessage};
use super::samples;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/control-protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn pretty<T: Serialize>(msg: &T) -> String {
    serde_json::to_string_pretty(msg).unwrap()
}

/// An error response of every code, as the doc's error table examples.
fn error_responses() -> Vec<ServerMessage> {
    let refusal = |code, message: &str| ServerMessage::Response {
        id: 0,
        result: ResponseResult::Err(CtlError::new(code, message)),
    };
    vec![
        refusal(
            ErrorCode::VersionMismatch,
            "client speaks control protocol version 3, iked speaks version 2: \
             use racoonctl from the same racoon3 release",
        ),
        refusal(
            ErrorCode::PermissionDenied,
            "permission denied: only root may use the iked control socket",
        ),
        refusal(
            ErrorCode::BadRequest,
            "frame of 16777216 bytes exceeds the limit of 1048576 bytes",
        ),
    ]
}

/// The hello frame as `xxd -g1`-style hex rows of 16 bytes.
fn hello_hex() -> String {
    let mut out = String::new();
    for row in samples::hello_frame().chunks(16) {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{}", hex.join(" ")).unwrap();
    }
    out
}

#[test]
fn control_protocol_doc_shows_every_message_as_serialized() {
    let doc = doc();
    let mut missing = String::new();
    let client = samples::client_messages()
        .iter()
        .map(pretty)
        .collect::<Vec<_>>();
    let server = samples::server_messages()
        .iter()
        .map(pretty)
        .collect::<Vec<_>>();
    let errors = error_responses().iter().map(pretty).collect::<Vec<_>>();
    for json in client.iter().chain(&server).chain(&errors) {
        if !doc.contains(json.as_str()) {
            writeln!(missing, "```json\n{json}\n```").unwrap();
        }
    }
    if !doc.contains(&hello_hex()) {
        writeln!(missing, "```text\n{}```", hello_hex()).unwrap();
    }
    assert!(
        missing.is_empty(),
        "docs/control-protocol.md lacks these (copy them from here):\n{missing}"
    );
}

#[test]
fn control_protocol_doc_lists_every_error_code() {
    let doc = doc();
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
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "{code} not in the table"
        );
    }
}
