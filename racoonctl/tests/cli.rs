//! racoonctl end to end: the real binary against a fake iked, which is a
//! `ControlServer` on a socket in a temporary directory answering from a
//! script.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libracoon::ctl::io::{ControlServer, Incoming};
use libracoon::ctl::proto::{
    ChildSaStatus, CtlError, ErrorCode, EventRecord, IkeSaStatus, Request, ResponseBody,
    ResponseResult,
};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// A fake iked: answers requests with [`answer`] and remembers them.
struct FakeIked {
    server: ControlServer,
    seen: Arc<Mutex<Vec<Request>>>,
    dir: TempDir,
}

impl FakeIked {
    async fn start() -> Self {
        Self::start_for(None).await
    }

    /// A fake iked that also serves members of group `gid` (`--ctl-group`).
    async fn start_for(group: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (server, incoming) =
            ControlServer::bind_for(&dir.path().join("iked.sock"), "iked", group)
                .await
                .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(answer_all(incoming, Arc::clone(&seen)));
        Self { server, seen, dir }
    }

    fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer_all(mut incoming: mpsc::Receiver<Incoming>, seen: Arc<Mutex<Vec<Request>>>) {
    while let Some(req) = incoming.recv().await {
        seen.lock().unwrap().push(req.request.clone());
        let _ = req.reply.send(answer(req.request));
    }
}

fn answer(request: Request) -> ResponseResult {
    let done = |message: &str| {
        ResponseResult::Ok(ResponseBody::Done {
            message: message.into(),
        })
    };
    match request {
        Request::ShowSa => ResponseResult::Ok(ResponseBody::Sas(vec![ike_sa()])),
        Request::Initiate { remote } if remote == "peer-b" => {
            done("initiating IKE SA with 198.51.100.2 (remote peer-b)")
        }
        Request::Initiate { remote } => ResponseResult::Err(CtlError::new(
            ErrorCode::UnknownRemote,
            format!("no remote named {remote} in the configuration"),
        )),
        Request::Terminate { .. } => done("deleting 1 IKE SA"),
        _ => ResponseResult::Err(CtlError::new(ErrorCode::Internal, "not in the script")),
    }
}

fn ike_sa() -> IkeSaStatus {
    IkeSaStatus {
        name: "peer-b".into(),
        spi_i: "1a2b3c4d5e6f7081".into(),
        spi_r: "8f7e6d5c4b3a2910".into(),
        state: "established".into(),
        role: "initiator".into(),
        local: "192.0.2.1[4500]".into(),
        remote: "198.51.100.2[4500]".into(),
        peer_id: "peer-b.example".into(),
        ike_algs: "AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519".into(),
        age_secs: 75,
        children: vec![ChildSaStatus {
            spi_in: "c1a2b3c4".into(),
            spi_out: "c5d6e7f8".into(),
            mode: "tunnel".into(),
            esp_algs: "AES_GCM_16_256".into(),
            encap: false,
            local_ts: vec!["192.0.2.0/24".into()],
            remote_ts: vec!["198.51.100.0/24".into()],
            in_bytes: 2048,
            in_packets: 2,
            out_bytes: 100,
            out_packets: 1,
        }],
    }
}

fn racoonctl(run_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_racoonctl"));
    cmd.arg("--run-dir").arg(run_dir).args(args);
    cmd
}

/// Runs racoonctl off the runtime's threads, so the fake keeps answering.
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_sa_prints_a_table() {
    let iked = FakeIked::start().await;
    let out = run(racoonctl(iked.run_dir(), &["show", "sa"])).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("NAME    STATE        PEER"), "{stdout}");
    assert!(stdout.contains("\n    CHILD  in c1a2b3c4  out c5d6e7f8  tunnel  AES_GCM_16_256\n"));
    assert!(
        stdout.contains("192.0.2.0/24 === 198.51.100.0/24"),
        "{stdout}"
    );
    assert!(
        stdout.contains("in 2.0 KiB, 2 packets  out 100 B, 1 packets"),
        "{stdout}"
    );
    assert_eq!(iked.seen(), [Request::ShowSa]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_sa_json_prints_the_response_body() {
    let iked = FakeIked::start().await;
    let out = run(racoonctl(iked.run_dir(), &["--json", "show", "sa"])).await;
    assert_exit(&out, 0);
    let body: ResponseBody = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body, ResponseBody::Sas(vec![ike_sa()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_prints_what_iked_does() {
    let iked = FakeIked::start().await;
    let out = run(racoonctl(iked.run_dir(), &["initiate", "peer-b"])).await;
    assert_exit(&out, 0);
    assert_eq!(
        text(&out.stdout),
        "initiating IKE SA with 198.51.100.2 (remote peer-b)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_exits_1_with_the_daemons_reason() {
    let iked = FakeIked::start().await;
    let out = run(racoonctl(iked.run_dir(), &["initiate", "peer-x"])).await;
    assert_exit(&out, 1);
    assert_eq!(
        text(&out.stderr),
        "racoonctl: iked: no remote named peer-x in the configuration (unknown_remote)\n"
    );
    let out = run(racoonctl(iked.run_dir(), &["--json", "initiate", "peer-x"])).await;
    assert_exit(&out, 1);
    assert_eq!(
        text(&out.stdout),
        "{\"error\":{\"code\":\"unknown_remote\",\"message\":\"no remote named peer-x in the configuration\"}}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_passes_the_target_through() {
    let iked = FakeIked::start().await;
    for target in ["peer-b", "1a2b3c4d5e6f7081", "all"] {
        let out = run(racoonctl(iked.run_dir(), &["terminate", target])).await;
        assert_exit(&out, 0);
    }
    let targets: Vec<_> = iked
        .seen()
        .into_iter()
        .map(|r| match r {
            Request::Terminate { target } => target,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(targets, ["peer-b", "1a2b3c4d5e6f7081", "all"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_events_until_iked_stops() {
    let iked = FakeIked::start().await;
    let mut child = racoonctl(iked.run_dir(), &["--json", "watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while iked.server.watchers() == 0 {
        assert!(Instant::now() < deadline, "racoonctl never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events: Vec<_> = ["ike_up", "child_up"]
        .iter()
        .map(|kind| EventRecord {
            kernel: None,
            time: "2026-11-27T10:15:02Z".into(),
            kind: (*kind).into(),
            sa: Some("1a2b3c4d5e6f7081".into()),
            message: format!("{kind} for peer-b"),
        })
        .collect();
    for event in &events {
        iked.server.publish(event.clone());
    }
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        [(); 2].map(|()| lines.next().unwrap().unwrap())
    })
    .await
    .unwrap();
    for (line, event) in lines.iter().zip(&events) {
        let got: EventRecord = serde_json::from_str(line).unwrap();
        assert_eq!(&got, event);
    }
    drop(iked);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 3);
    assert_eq!(
        text(&out.stderr),
        "racoonctl: iked closed the connection: it stopped\n"
    );
}

#[test]
fn missing_socket_exits_3_and_says_how_to_start_iked() {
    let dir = tempfile::tempdir().unwrap();
    let out = racoonctl(dir.path(), &["show", "sa"]).output().unwrap();
    assert_exit(&out, 3);
    let socket = dir.path().join("iked.sock");
    assert_eq!(
        text(&out.stderr),
        format!(
            "racoonctl: iked is not running (no socket at {}): start it with \
             `iked -f /etc/racoon2/racoon2.conf`\n",
            socket.display()
        )
    );
}

#[test]
fn stale_socket_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("iked.sock")).unwrap());
    let out = racoonctl(dir.path(), &["show", "status"]).output().unwrap();
    assert_exit(&out, 3);
    assert!(text(&out.stderr).contains("is not running (nothing listens on "));
}

#[test]
fn usage_error_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = racoonctl(dir.path(), &["show", "everything"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let out = racoonctl(dir.path(), &["initiate"]).output().unwrap();
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_times_out_with_5() {
    let dir = tempfile::tempdir().unwrap();
    let (server, incoming) = ControlServer::bind(&dir.path().join("iked.sock"), "iked")
        .await
        .unwrap();
    // Keeps every request, answers none.
    let hold = tokio::spawn(async move {
        let mut incoming = incoming;
        let mut kept = Vec::new();
        while let Some(req) = incoming.recv().await {
            kept.push(req);
        }
    });
    let out = run(racoonctl(dir.path(), &["--timeout", "1", "show", "sa"])).await;
    assert_exit(&out, 5);
    assert_eq!(
        text(&out.stderr),
        "racoonctl: iked did not answer within 1 s: see its log (--timeout sets the wait)\n"
    );
    hold.abort();
    drop(server);
}

fn require_root() {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid());
    assert!(
        matches!(uid, Ok(0)),
        "this test needs root (it runs racoonctl as nobody)"
    );
}

/// racoonctl run as `nobody` (uid 65534) through setpriv.
fn racoonctl_as_nobody(run_dir: &Path, args: &[&str]) -> Command {
    racoonctl_as(
        &["--reuid=65534", "--regid=65534", "--clear-groups"],
        run_dir,
        args,
    )
}

/// racoonctl run with setpriv's credential options `creds`.
fn racoonctl_as(creds: &[&str], run_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(creds).arg("--");
    cmd.arg(env!("CARGO_BIN_EXE_racoonctl"));
    cmd.arg("--run-dir").arg(run_dir).args(args);
    cmd
}

/// A run directory `nobody` may enter.
fn open_run_dir(iked: &FakeIked) -> PathBuf {
    let dir = iked.run_dir().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and setpriv (run with --run-ignored all)"]
async fn non_root_caller_is_told_to_run_as_root() {
    require_root();
    let iked = FakeIked::start().await;
    let dir = open_run_dir(&iked);
    let socket = dir.join("iked.sock");
    let want = format!(
        "racoonctl: permission denied on {}: run racoonctl as root\n",
        socket.display()
    );

    // The socket's mode 0600 stops nobody at connect(2).
    let out = run(racoonctl_as_nobody(&dir, &["show", "sa"])).await;
    assert_exit(&out, 4);
    assert_eq!(text(&out.stderr), want);

    // With the mode opened up, the SO_PEERCRED check still refuses.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(racoonctl_as_nobody(&dir, &["show", "sa"])).await;
    assert_exit(&out, 4);
    assert_eq!(text(&out.stderr), want);
    assert_eq!(iked.seen(), [], "the refused request reached the daemon");

    // Root still gets in.
    let out = run(racoonctl(&dir, &["show", "sa"])).await;
    assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and setpriv (run with --run-ignored all)"]
async fn members_of_the_control_group_are_served() {
    require_root();
    const GROUP: u32 = 4242;
    let iked = FakeIked::start_for(Some(GROUP)).await;
    let dir = open_run_dir(&iked);
    let socket = dir.join("iked.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, GROUP));
    // Primary group, then a supplementary one.
    let primary = ["--reuid=65534", "--regid=4242", "--clear-groups"];
    let out = run(racoonctl_as(&primary, &dir, &["show", "sa"])).await;
    assert_exit(&out, 0);
    let supplementary = ["--reuid=65534", "--regid=65534", "--groups=4242"];
    let out = run(racoonctl_as(&supplementary, &dir, &["show", "sa"])).await;
    assert_exit(&out, 0);
    // Anyone else is still refused.
    let out = run(racoonctl_as_nobody(&dir, &["show", "sa"])).await;
    assert_exit(&out, 4);
}

/// A fake kinkd on `kinkd.sock`: it answers `show sa` with a KINK pair and
/// the rest with `done` sentences naming kinkd.
async fn fake_kinkd(dir: &Path) -> (ControlServer, Arc<Mutex<Vec<Request>>>) {
    let (server, mut incoming) = ControlServer::bind(&dir.join("kinkd.sock"), "kinkd")
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(req) = incoming.recv().await {
            log.lock().unwrap().push(req.request.clone());
            let body = match req.request {
                Request::ShowSa => {
                    ResponseBody::KinkSas(vec![libracoon::ctl::proto::KinkSaStatus {
                        peer: "peer-b".into(),
                        state: "established".into(),
                        role: "responder".into(),
                        spi_in: "c1a2b3c4".into(),
                        spi_out: "c5d6e7f8".into(),
                        esp_algs: "AES_GCM_16-128".into(),
                    }])
                }
                other => ResponseBody::Done {
                    message: format!("kinkd did {other:?}"),
                },
            };
            let _ = req.reply.send(ResponseResult::Ok(body));
        }
    });
    (server, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinkd_commands_go_to_kinkd_sock() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, seen) = fake_kinkd(dir.path()).await;
    let out = run(racoonctl(dir.path(), &["show", "sa", "kinkd"])).await;
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout)
            .contains("peer-b  established  responder  c1a2b3c4  c5d6e7f8  AES_GCM_16-128"),
        "{}",
        text(&out.stdout)
    );
    for args in [
        &["initiate", "--daemon", "kinkd", "peer-b"][..],
        &["terminate", "--daemon", "kinkd", "all"][..],
    ] {
        let out = run(racoonctl(dir.path(), args)).await;
        assert_exit(&out, 0);
    }
    assert_eq!(
        seen.lock().unwrap().clone(),
        [
            Request::ShowSa,
            Request::Initiate {
                remote: "peer-b".into()
            },
            Request::Terminate {
                target: "all".into()
            }
        ]
    );
    // Without --daemon, initiate goes to iked, which is not running here.
    let out = run(racoonctl(dir.path(), &["initiate", "peer-b"])).await;
    assert_exit(&out, 3);
    assert!(
        text(&out.stderr).contains("iked.sock"),
        "{}",
        text(&out.stderr)
    );
}
