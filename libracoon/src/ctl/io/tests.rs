//! A server on a socket in a private temporary directory, spoken to by
//! [`ControlClient`] and by raw byte streams that break the protocol.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::server::{peer_allowed, peer_in_group, supplementary_groups};
use super::*;
use crate::ctl::frame::{self, FrameDecoder, MAX_FRAME};
use crate::ctl::proto::{
    ClientMessage, CtlError, ErrorCode, PROTOCOL_VERSION, Request, ResponseBody, ResponseResult,
    ServerMessage,
};
use crate::ctl::samples;

/// A daemon whose main loop answers from the samples.
struct TestDaemon {
    _dir: TempDir,
    server: ControlServer,
    path: PathBuf,
}

async fn start() -> TestDaemon {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/iked.sock");
    let (server, incoming) = ControlServer::bind(&path, "iked").await.unwrap();
    tokio::spawn(answer_all(incoming));
    TestDaemon {
        _dir: dir,
        server,
        path,
    }
}

async fn answer_all(mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(req) = incoming.recv().await {
        let _ = req.reply.send(answer(req.request));
    }
}

fn answer(request: Request) -> ResponseResult {
    let err = |code, msg: &str| ResponseResult::Err(CtlError::new(code, msg));
    match request {
        Request::ShowSa => ResponseResult::Ok(ResponseBody::Sas(vec![samples::ike_sa()])),
        Request::ShowStatus => ResponseResult::Ok(ResponseBody::Status(samples::daemon_status())),
        Request::Initiate { remote } if remote == "peer-b" => {
            ResponseResult::Ok(ResponseBody::Done {
                message: "initiating".into(),
            })
        }
        Request::Initiate { .. } => err(ErrorCode::UnknownRemote, "no such remote"),
        Request::Terminate { .. } => err(ErrorCode::NotFound, "no such IKE SA"),
        Request::Watch => err(ErrorCode::Internal, "watch reached the daemon"),
        Request::ShowPolicy
        | Request::Reload
        | Request::Flush
        | Request::Rekey { .. }
        | Request::Kernel { .. } => err(ErrorCode::Unsupported, "not in this fake daemon"),
    }
}

async fn client(path: &Path) -> ControlClient {
    ControlClient::connect_as(path, "test").await.unwrap()
}

fn frame_of<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(msg, &mut out).unwrap();
    out
}

fn hello(version: u32) -> Vec<u8> {
    frame_of(&ClientMessage::Hello {
        version,
        client: "raw".into(),
    })
}

/// Writes `bytes` (then half-closes if `eof`), and returns every message
/// the server sends until it closes the connection.
async fn exchange_raw(path: &Path, bytes: &[u8], eof: bool) -> Vec<ServerMessage> {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if eof {
        stream.shutdown().await.unwrap();
    }
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut UnixStream) -> Vec<ServerMessage> {
    let mut decoder = FrameDecoder::new();
    let mut chunk = [0; 4096];
    // A reset after the server's last word is an end like any other.
    while let Ok(n @ 1..) = stream.read(&mut chunk).await {
        decoder.push(&chunk[..n]);
    }
    let mut msgs = Vec::new();
    while let Some(msg) = decoder.next().unwrap() {
        msgs.push(msg);
    }
    decoder.finish().unwrap();
    msgs
}

/// The server's hello, then a refusal with `code`; returns its message.
fn assert_refused(msgs: &[ServerMessage], hello_first: bool, code: ErrorCode) -> String {
    let rest = if hello_first {
        assert!(
            matches!(msgs.first(), Some(ServerMessage::Hello { .. })),
            "{msgs:?}"
        );
        &msgs[1..]
    } else {
        msgs
    };
    match rest {
        [
            ServerMessage::Response {
                id: 0,
                result: ResponseResult::Err(err),
            },
        ] if err.code == code => err.message.clone(),
        _ => panic!("expected one {code} refusal, got {msgs:?}"),
    }
}

async fn still_serves(path: &Path) {
    let mut c = client(path).await;
    let got = c.request(Request::ShowStatus).await.unwrap();
    assert_eq!(
        got,
        ResponseResult::Ok(ResponseBody::Status(samples::daemon_status()))
    );
}

#[tokio::test]
async fn hello_then_request_and_response() {
    let d = start().await;
    let mut c = client(&d.path).await;
    assert_eq!(c.daemon(), "iked");
    assert_eq!(c.daemon_pid(), std::process::id());
    let got = c.request(Request::ShowSa).await.unwrap();
    assert_eq!(
        got,
        ResponseResult::Ok(ResponseBody::Sas(vec![samples::ike_sa()]))
    );
    let got = c
        .request(Request::Initiate {
            remote: "nope".into(),
        })
        .await;
    let err = got.unwrap().into_result().unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownRemote);
}

#[tokio::test]
async fn responses_carry_the_request_ids_in_order() {
    let d = start().await;
    let mut bytes = hello(PROTOCOL_VERSION);
    for (id, request) in [(1, Request::ShowSa), (2, Request::ShowStatus)] {
        bytes.extend(frame_of(&ClientMessage::Request { id, request }));
    }
    let msgs = exchange_raw(&d.path, &bytes, true).await;
    let ids: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Response { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [1, 2], "{msgs:?}");
}

#[tokio::test]
async fn socket_is_mode_0600() {
    let d = start().await;
    let mode = std::fs::metadata(&d.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn watchers_get_published_events_and_others_do_not() {
    let d = start().await;
    let mut watcher = client(&d.path).await;
    let done = watcher.request(Request::Watch).await.unwrap();
    let done = done.into_result().unwrap();
    assert_eq!(
        done,
        ResponseBody::Done {
            message: "watching iked events".into()
        }
    );
    assert_eq!(d.server.watchers(), 1);
    let mut bystander = UnixStream::connect(&d.path).await.unwrap();
    bystander.write_all(&hello(PROTOCOL_VERSION)).await.unwrap();

    d.server.publish(samples::event());
    assert_eq!(watcher.next_event().await.unwrap(), samples::event());

    // The bystander hears its hello and its response, no event.
    let show = ClientMessage::Request {
        id: 1,
        request: Request::ShowStatus,
    };
    bystander.write_all(&frame_of(&show)).await.unwrap();
    bystander.shutdown().await.unwrap();
    let msgs = read_until_closed(&mut bystander).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(matches!(msgs[1], ServerMessage::Response { id: 1, .. }));
}

#[tokio::test]
async fn events_arriving_during_a_request_are_kept_for_next_event() {
    let d = start().await;
    let mut c = client(&d.path).await;
    c.request(Request::Watch).await.unwrap();
    d.server.publish(samples::event());
    let got = c.request(Request::ShowStatus).await.unwrap();
    assert!(matches!(got, ResponseResult::Ok(ResponseBody::Status(_))));
    assert_eq!(c.next_event().await.unwrap(), samples::event());
}

#[tokio::test]
async fn a_second_watch_is_harmless() {
    let d = start().await;
    let mut c = client(&d.path).await;
    c.request(Request::Watch).await.unwrap();
    let again = c.request(Request::Watch).await.unwrap().into_result();
    assert_eq!(
        again,
        Ok(ResponseBody::Done {
            message: "already watching events".into()
        })
    );
    assert_eq!(d.server.watchers(), 1);
}

#[tokio::test]
async fn oversized_frame_gets_an_error_and_the_server_serves_the_next_client() {
    let d = start().await;
    let mut bytes = hello(PROTOCOL_VERSION);
    bytes.extend(u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes());
    let msgs = exchange_raw(&d.path, &bytes, false).await;
    let msg = assert_refused(&msgs, true, ErrorCode::BadRequest);
    assert_eq!(
        msg,
        "frame of 1048577 bytes exceeds the limit of 1048576 bytes"
    );
    still_serves(&d.path).await;
}

#[tokio::test]
async fn bad_json_gets_an_error_and_the_server_serves_the_next_client() {
    let d = start().await;
    let mut bytes = hello(PROTOCOL_VERSION);
    bytes.extend(4u32.to_be_bytes());
    bytes.extend(b"{no}");
    let msgs = exchange_raw(&d.path, &bytes, false).await;
    let msg = assert_refused(&msgs, true, ErrorCode::BadRequest);
    assert!(
        msg.starts_with("frame is not valid JSON: key must be a string"),
        "{msg}"
    );
    still_serves(&d.path).await;
}

#[tokio::test]
async fn truncated_frame_then_eof_gets_an_error() {
    let d = start().await;
    let mut bytes = hello(PROTOCOL_VERSION);
    let request = frame_of(&ClientMessage::Request {
        id: 1,
        request: Request::ShowSa,
    });
    bytes.extend(&request[..10]);
    let msgs = exchange_raw(&d.path, &bytes, true).await;
    let msg = assert_refused(&msgs, true, ErrorCode::BadRequest);
    let need = request.len();
    assert_eq!(
        msg,
        format!("connection closed in the middle of a frame (10 of {need} bytes)")
    );
    still_serves(&d.path).await;
}

#[tokio::test]
async fn garbage_instead_of_a_hello_gets_an_error() {
    let d = start().await;
    let msgs = exchange_raw(&d.path, b"GET / HTTP/1.0\r\n\r\n", false).await;
    let msg = assert_refused(&msgs, false, ErrorCode::BadRequest);
    assert!(
        msg.starts_with("frame of 1195725856 bytes exceeds"),
        "{msg}"
    );
    still_serves(&d.path).await;
}

#[tokio::test]
async fn unknown_command_is_answered_under_its_id_and_the_connection_stays() {
    let d = start().await;
    let mut bytes = hello(PROTOCOL_VERSION);
    let unknown = br#"{"type":"request","id":7,"request":{"cmd":"frobnicate","target":"all"}}"#;
    bytes.extend(u32::try_from(unknown.len()).unwrap().to_be_bytes());
    bytes.extend(unknown);
    bytes.extend(frame_of(&ClientMessage::Request {
        id: 8,
        request: Request::ShowStatus,
    }));
    let msgs = exchange_raw(&d.path, &bytes, true).await;
    match &msgs[..] {
        [
            ServerMessage::Hello { .. },
            ServerMessage::Response {
                id: 7,
                result: ResponseResult::Err(err),
            },
            ServerMessage::Response {
                id: 8,
                result: ResponseResult::Ok(_),
            },
        ] => {
            assert_eq!(err.code, ErrorCode::BadRequest);
            assert!(
                err.message.contains("unknown variant `frobnicate`"),
                "{err}"
            );
        }
        _ => panic!("{msgs:?}"),
    }
}

#[tokio::test]
async fn bad_version_hello_is_refused() {
    let d = start().await;
    let msgs = exchange_raw(&d.path, &hello(PROTOCOL_VERSION + 1), false).await;
    let msg = assert_refused(&msgs, false, ErrorCode::VersionMismatch);
    assert_eq!(
        msg,
        "client speaks control protocol version 3, iked speaks version 2: \
         use racoonctl from the same racoon3 release"
    );
}

#[tokio::test]
async fn request_before_hello_is_refused() {
    let d = start().await;
    let request = frame_of(&ClientMessage::Request {
        id: 1,
        request: Request::ShowSa,
    });
    let msgs = exchange_raw(&d.path, &request, false).await;
    let msg = assert_refused(&msgs, false, ErrorCode::BadRequest);
    assert_eq!(msg, "expected a hello first");
}

#[tokio::test]
async fn request_id_zero_is_refused() {
    let d = start().await;
    let mut bytes = hello(PROTOCOL_VERSION);
    bytes.extend(frame_of(&ClientMessage::Request {
        id: 0,
        request: Request::ShowSa,
    }));
    let msgs = exchange_raw(&d.path, &bytes, false).await;
    assert_refused(&msgs, true, ErrorCode::BadRequest);
}

#[tokio::test]
async fn client_reports_a_refusal_from_the_hello() {
    // A server that refuses everyone, as it would a stranger.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let refusal = ServerMessage::Response {
            id: 0,
            result: ResponseResult::Err(CtlError::new(ErrorCode::PermissionDenied, "no")),
        };
        stream.write_all(&frame_of(&refusal)).await.unwrap();
    });
    let err = ControlClient::connect(&path).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(e) if e.code == ErrorCode::PermissionDenied),
        "{err:?}"
    );
}

#[tokio::test]
async fn dropped_reply_and_stopped_daemon_are_internal_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iked.sock");
    let (server, mut incoming) = ControlServer::bind(&path, "iked").await.unwrap();
    tokio::spawn(async move {
        // Answers nothing: drops the first request, then stops.
        drop(incoming.recv().await);
    });
    let mut c = client(&path).await;
    let err = c.request(Request::ShowSa).await.unwrap().into_result();
    assert_eq!(
        err.unwrap_err().message,
        "iked dropped the request unanswered"
    );
    let err = c.request(Request::ShowSa).await.unwrap().into_result();
    assert_eq!(err.unwrap_err().message, "iked is shutting down");
    drop(server);
}

#[tokio::test]
async fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iked.sock");
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (server, incoming) = ControlServer::bind(&path, "iked").await.unwrap();
    tokio::spawn(answer_all(incoming));
    still_serves(&path).await;
    drop(server);
}

#[tokio::test]
async fn live_socket_is_not_taken_over() {
    let d = start().await;
    let err = ControlServer::bind(&d.path, "iked").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string()
            .starts_with("another daemon is listening on"),
        "{err}"
    );
    still_serves(&d.path).await;
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iked.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = ControlServer::bind(&path, "iked").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test]
async fn dropping_the_server_removes_the_socket_and_clients_see_it_gone() {
    let d = start().await;
    let mut watcher = client(&d.path).await;
    watcher.request(Request::Watch).await.unwrap();
    let path = d.path.clone();
    drop(d.server);
    assert!(!path.exists());
    let end = watcher.next_event().await.unwrap_err();
    assert!(
        matches!(end, ClientError::Closed | ClientError::Io(_)),
        "{end:?}"
    );
    let err = ControlClient::connect(&path).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Io(e) if e.kind() == io::ErrorKind::NotFound),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_watcher_is_told_it_lagged() {
    let d = start().await;
    let mut c = client(&d.path).await;
    c.request(Request::Watch).await.unwrap();
    // On this single-threaded runtime nothing is forwarded until the test
    // awaits, so 300 events overflow the backlog of 256 by 44.
    for _ in 0..300 {
        d.server.publish(samples::event());
    }
    let first = c.next_event().await.unwrap();
    assert_eq!(first.kind, "lagged");
    assert_eq!(
        first.message,
        "44 events were dropped because this watcher fell behind"
    );
    for _ in 0..256 {
        assert_eq!(c.next_event().await.unwrap(), samples::event());
    }
}

#[test]
fn the_control_group_is_found_among_primary_and_supplementary_groups() {
    let status = "Name:\tracoonctl\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1001 \n";
    assert_eq!(
        supplementary_groups(status).collect::<Vec<_>>(),
        [4, 24, 27, 1001]
    );
    assert_eq!(supplementary_groups("Name:\tx\n").count(), 0);
    assert!(peer_in_group(50, 50, None), "primary group");
    assert!(
        !peer_in_group(50, 51, None),
        "no pid, no supplementary lookup"
    );
    // This process's own supplementary groups, as the kernel reports them.
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let pid = i32::try_from(std::process::id()).unwrap();
    for g in supplementary_groups(&own) {
        assert!(peer_in_group(g, u32::MAX, Some(pid)));
    }
}

#[test]
fn only_root_and_the_daemons_own_user_are_allowed() {
    assert!(peer_allowed(0, 0));
    assert!(peer_allowed(0, 1000));
    assert!(peer_allowed(1000, 1000));
    assert!(!peer_allowed(1000, 0));
    assert!(!peer_allowed(65534, 1000));
}
