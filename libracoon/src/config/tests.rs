//! Whole-configuration tests: the files under `testdata/conf/`, each
//! directive family, every error path's position, warnings, variables,
//! includes, and the no-panic property the fuzz target relies on.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    parse_str(text, "t.conf", &no_env)
}

fn config(text: &str) -> Config {
    match parse(text) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}

fn warnings(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(l) => l.warnings.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("{e}"),
    }
}

/// The error message, which must start with `t.conf:LINE:COL: `.
fn error(text: &str) -> String {
    let e = parse(text).expect_err("should not parse");
    let msg = e.to_string();
    let span = e.span.as_ref().expect("error has a position");
    let prefix = format!("t.conf:{}:{}: ", span.line, span.col);
    assert!(msg.starts_with(&prefix), "{msg}");
    msg
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/conf")
}

fn load_testdata(file: &str) -> Loaded {
    let dir = testdata().display().to_string();
    let env = move |name: &str| (name == "RACOON_TEST_CONFDIR").then(|| dir.clone());
    match load_with_env(&testdata().join(file), &env) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    }
}

fn span_of(file: &str, line: u32, col: u32) -> Span {
    Span {
        file: testdata().join(file).display().to_string().into(),
        line,
        col,
    }
}

/// The part of a configuration that every reference test needs.
const BASE: &str = "
sa esp1 { sa_protocol esp; esp_enc_alg aes128_cbc; esp_auth_alg hmac_sha1; };
ipsec ips1 { sa_index esp1; };
remote r1 {
    acceptable_kmp ikev2;
    ikev2 {
        kmp_enc_alg aes128_cbc; kmp_hash_alg hmac_sha1; kmp_prf_alg hmac_sha1;
        kmp_dh_group 14; kmp_auth_method psk; pre_shared_key \"/k\";
    };
};
";

// ---- the project's own sample files ----------------------------------------

#[test]
fn host_to_host_tunnel_from_testdata() {
    let loaded = load_testdata("racoon3.conf");
    let c = &loaded.config;
    let psk = testdata().join("psk/host-b.psk");
    let host_b = Remote {
        name: "host_b".to_owned(),
        span: span_of("peers/10-host-to-host.conf", 3, 1),
        acceptable_kmp: vec![Kmp::Ikev2],
        ikev2: Ikev2Params {
            my_id: Some(Identity {
                kind: IdKind::Ipaddr,
                value: "192.0.2.10".to_owned(),
            }),
            peers_id: Some(Identity {
                kind: IdKind::Fqdn,
                value: "host-b.example.net".to_owned(),
            }),
            peers_ipaddr: Some(PeerAddr::Addr {
                addr: ip("198.51.100.20"),
                port: Some(500),
            }),
            pre_shared_key: Some(psk),
            kmp_enc_alg: vec![EncAlgName::Aes256Gcm16, EncAlgName::Aes128Cbc],
            kmp_hash_alg: vec![AuthAlgName::HmacSha2_256, AuthAlgName::HmacSha1],
            kmp_prf_alg: vec![AuthAlgName::HmacSha2_256, AuthAlgName::HmacSha1],
            kmp_dh_group: vec![
                DhGroupName::Curve25519,
                DhGroupName::Ecp256,
                DhGroupName::Modp2048,
            ],
            kmp_auth_method: vec![AuthMethod::Psk],
            kmp_sa_lifetime_time: Some(Lifetime::Seconds(8 * 3600)),
            ipsec_sa_lifetime_time: None,
            dpd_delay: Some(Duration::from_secs(30)),
            max_retry_to_send: Some(3),
            interval_to_send: Some(Duration::from_secs(10)),
            times_per_send: Some(1),
            nonce_size: None,
            nat_traversal: None,
            cookie_required: None,
            force_udp_encap: None,
            need_pfs: Some(true),
            scripts: Scripts::default(),
        },
        kink: KinkParams::default(),
        selector_index: Some("host_b_in".to_owned()),
    };
    assert_eq!(c.remote("host_b"), Some(&host_b));
    let out = Selector {
        name: "host_b_out".to_owned(),
        span: span_of("peers/10-host-to-host.conf", 14, 1),
        direction: Direction::Outbound,
        src: IpPrefix::host(ip("192.0.2.10")),
        dst: IpPrefix::host(ip("198.51.100.20")),
        src_port: None,
        dst_port: None,
        upper_layer_protocol: None,
        policy_index: "host_b_policy".to_owned(),
        reqid: None,
    };
    assert_eq!(c.selector("host_b_out"), Some(&out));
    let policy = Policy {
        name: "host_b_policy".to_owned(),
        span: span_of("peers/10-host-to-host.conf", 28, 1),
        action: PolicyAction::AutoIpsec,
        remote_index: Some("host_b".to_owned()),
        ipsec_mode: Some(IpsecMode::Tunnel),
        ipsec_index: vec!["ipsec_esp_aead".to_owned(), "ipsec_esp".to_owned()],
        ipsec_level: Some(IpsecLevel::Require),
        peers_sa_ipaddr: Some(ip("198.51.100.20")),
        my_sa_ipaddr: Some(ip("192.0.2.10")),
    };
    assert_eq!(c.policy("host_b_policy"), Some(&policy));
}

#[test]
fn net_to_net_tunnel_and_transport_from_testdata() {
    let c = load_testdata("racoon3.conf").config;
    let gw = c.remote("gw_b").unwrap();
    assert_eq!(
        gw.ikev2.kmp_enc_alg,
        [EncAlgName::Aes128Cbc, EncAlgName::TripleDesCbc]
    );
    assert_eq!(gw.ikev2.kmp_dh_group, [DhGroupName::Modp2048]);
    assert_eq!(gw.ikev2.nat_traversal, Some(true));
    assert_eq!(
        gw.ikev2.peers_ipaddr,
        Some(PeerAddr::Addr {
            addr: ip("198.51.100.1"),
            port: None
        })
    );
    let lan_in = c.selector("lan_in").unwrap();
    assert_eq!(lan_in.src, IpPrefix::new(ip("10.2.0.0"), 16).unwrap());
    assert_eq!(lan_in.reqid, Some(42));
    let tunnel = c.policy("lan_tunnel").unwrap();
    assert_eq!(tunnel.ipsec_mode, Some(IpsecMode::Tunnel));
    assert_eq!(tunnel.ipsec_index, ["ipsec_ah_esp"]);
    let bundle = c.ipsec("ipsec_ah_esp").unwrap();
    assert_eq!(bundle.sa_index, ["ah_sha", "esp_cbc"]);
    assert_eq!(
        c.sa("ah_sha").unwrap().ah_auth_alg,
        [AuthAlgName::HmacSha2_256, AuthAlgName::HmacSha1]
    );

    let bgp = c.selector("bgp_out").unwrap();
    assert_eq!(
        (bgp.src_port, bgp.dst_port, bgp.upper_layer_protocol),
        (None, Some(179), Some(6))
    );
    let transport = c.policy("bgp_transport").unwrap();
    assert_eq!(
        transport.ipsec_mode,
        Some(IpsecMode::Transport),
        "from default"
    );
    assert_eq!(
        transport.ipsec_level,
        Some(IpsecLevel::Require),
        "from default"
    );
    let esp = c.ipsec("ipsec_esp").unwrap();
    assert_eq!(esp.ipsec_sa_lifetime_time, Some(Lifetime::Seconds(1800)));
    assert_eq!(esp.ext_sequence, Some(true));
    let esp_cbc = c.sa("esp_cbc").unwrap();
    assert_eq!(esp_cbc.esp_enc_alg, [EncAlgName::Aes128Cbc], "from default");
    assert_eq!(
        esp_cbc.esp_auth_alg,
        [AuthAlgName::HmacSha2_256],
        "from default"
    );

    let dhcp = c.selector("dhcp_bypass").unwrap();
    assert_eq!(dhcp.src, IpPrefix::new(ip("0.0.0.0"), 0).unwrap());
    assert_eq!(
        c.policy(&dhcp.policy_index).unwrap().action,
        PolicyAction::None
    );
}

#[test]
fn ipv6_from_testdata() {
    let c = load_testdata("racoon3.conf").config;
    let h6 = &c.remote("host6").unwrap().ikev2;
    assert_eq!(h6.kmp_enc_alg, [EncAlgName::Chacha20Poly1305]);
    assert_eq!(
        h6.kmp_dh_group,
        [DhGroupName::Ecp384, DhGroupName::Curve25519]
    );
    assert_eq!(h6.nonce_size, Some(32));
    assert_eq!(
        h6.my_id,
        Some(Identity {
            kind: IdKind::Email,
            value: "racoon@example.org".to_owned()
        })
    );
    assert_eq!(
        h6.peers_id,
        Some(Identity {
            kind: IdKind::KeyidTag,
            value: "host6-key".to_owned()
        })
    );
    assert_eq!(
        h6.peers_ipaddr,
        Some(PeerAddr::Addr {
            addr: ip("2001:db8:b::6"),
            port: Some(4500)
        })
    );
    let sel = c.selector("host6_in").unwrap();
    assert_eq!(sel.src, IpPrefix::host(ip("2001:db8:b::6")));
    assert_eq!(sel.upper_layer_protocol, Some(58));
    assert_eq!(
        c.policy("host6_policy").unwrap().ipsec_level,
        Some(IpsecLevel::Unique)
    );

    let rw = &c.remote("roadwarrior6").unwrap().ikev2;
    assert_eq!(rw.peers_ipaddr, Some(PeerAddr::RoadWarrior));
    assert_eq!(rw.kmp_sa_lifetime_time, Some(Lifetime::Infinite));
    let rw_out = c.selector("rw6_out").unwrap();
    assert_eq!(
        rw_out.src,
        IpPrefix::new(ip("2001:db8:a:100::"), 56).unwrap()
    );
    assert_eq!(rw_out.dst, IpPrefix::new(ip("::"), 0).unwrap());
    let rw_policy = c.policy("rw6_policy").unwrap();
    assert!(rw_policy.peers_sa_ipaddr.unwrap().is_unspecified());
    assert_eq!(rw_policy.my_sa_ipaddr, Some(ip("2001:db8:a::1")));
}

#[test]
fn testdata_interface_defaults_and_warnings() {
    let loaded = load_testdata("racoon3.conf");
    let c = &loaded.config;
    let listen: Vec<(IpAddr, Option<u16>)> =
        c.interface.ike.iter().map(|l| (l.addr, l.port)).collect();
    assert_eq!(
        listen,
        [
            (ip("0.0.0.0"), Some(500)),
            (ip("::"), Some(500)),
            (ip("0.0.0.0"), Some(4500)),
            (ip("::"), Some(4500))
        ]
    );
    assert_eq!(c.interface.spmd, ["/run/racoon3/spmif"]);
    assert_eq!(c.interface.spmd_password, Some(testdata().join("spmd.pwd")));
    let names: Vec<&str> = c.remotes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["host_b", "gw_b", "host6", "roadwarrior6"],
        "sorted include order"
    );
    let default = c.default_remote.as_ref().unwrap();
    assert_eq!(default.name, "default");
    assert_eq!(default.ikev2.max_retry_to_send, Some(3));
    // Quiet values (logmode normal, *_lifetime_byte infinite, resolver
    // off, application_bypass on) do not warn; the key length does.
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let net = testdata()
        .join("peers/20-net-to-net.conf")
        .display()
        .to_string();
    assert_eq!(
        w,
        [format!(
            "{net}:10: key length and key after 'aes128_cbc' are ignored"
        )]
    );
}

#[test]
fn legacy_constructs_parse_with_warnings() {
    let loaded = load_testdata("legacy.conf");
    let file = testdata().join("legacy.conf").display().to_string();
    let cookies: Vec<_> = loaded
        .config
        .remotes
        .iter()
        .map(|r| r.ikev2.cookie_required)
        .collect();
    assert!(
        cookies.contains(&Some(true)),
        "cookie_required is implemented now: {cookies:?}"
    );
    let expected: Vec<String> = [
        (13, "treated as MY_IPV6 (every IPv6 address)"),
        (
            15,
            "spmd over TCP (a racoon2 debug feature) is not implemented; ignored",
        ),
        (
            16,
            "'application_bypass' is understood but not implemented by racoon3; ignored",
        ),
        (
            20,
            "'resolver' is understood but not implemented by racoon3; ignored",
        ),
        (
            21,
            "'nameserver' is understood but not implemented by racoon3; ignored",
        ),
        (
            22,
            "'dns_query' is understood but not implemented by racoon3; ignored",
        ),
        (
            28,
            "IKEv1 is not implemented by racoon3; the ikev1 block is checked and ignored",
        ),
        (
            49,
            "'random_pad_content' is understood but not implemented by racoon3; ignored",
        ),
        (
            50,
            "'max_padlen' is understood but not implemented by racoon3; ignored",
        ),
        (
            51,
            "'kmp_sa_nego_time_limit' is understood but not implemented by racoon3; ignored",
        ),
        (55, "'nonce_size' has no meaning for KINK; kinkd ignores it"),
        (69, "racoon3 uses only the first of the 2 identities"),
        (
            72,
            "'kmp_sa_lifetime_byte' is understood but not implemented by racoon3; ignored",
        ),
        (
            73,
            "'my_public_key' is understood but not implemented by racoon3; ignored",
        ),
        (
            74,
            "'peers_public_key' is understood but not implemented by racoon3; ignored",
        ),
        (
            75,
            "'provide' is understood but not implemented by racoon3; ignored",
        ),
        (
            80,
            "'request' is understood but not implemented by racoon3; ignored",
        ),
        (
            85,
            "'mobility_role' is understood but not implemented by racoon3; ignored",
        ),
        (
            96,
            "'order' is understood but not implemented by racoon3; ignored",
        ),
        (
            100,
            "ICMP type/code selectors are not implemented by racoon3; ignored",
        ),
        (
            101,
            "'tagged' is understood but not implemented by racoon3; ignored",
        ),
        (
            109,
            "'next_header_including' is understood but not implemented by racoon3; ignored",
        ),
        (
            125,
            "'action static_ipsec' is not implemented (nor was it in racoon2)",
        ),
        (
            126,
            "'install' is understood but not implemented by racoon3; ignored",
        ),
        (
            131,
            "'ipsec_sa_lifetime_byte' is understood but not implemented by racoon3; ignored",
        ),
        (
            137,
            "'spi' is understood but not implemented by racoon3; ignored",
        ),
        (
            142,
            "'ipcomp_alg' is understood but not implemented by racoon3; ignored",
        ),
    ]
    .iter()
    .map(|(line, msg)| format!("{file}:{line}: {msg}"))
    .collect();
    let got: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(got, expected);

    let c = &loaded.config;
    let listen: Vec<(IpAddr, Option<u16>)> =
        c.interface.ike.iter().map(|l| (l.addr, l.port)).collect();
    assert_eq!(listen, [(ip("0.0.0.0"), Some(500)), (ip("::"), None)]);
    assert_eq!(c.interface.kink[0].addr, ip("203.0.113.1"));
    assert_eq!(c.interface.spmd, ["/run/racoon3/spmif"]);
    let peer = c.remote("peer").unwrap();
    assert_eq!(peer.ikev2.my_id.as_ref().unwrap().kind, IdKind::Fqdn);
    assert_eq!(
        peer.ikev2.kmp_hash_alg,
        [AuthAlgName::Sha1],
        "bare hash name kept as written"
    );
    assert_eq!(
        c.policy("peer_policy").unwrap().my_sa_ipaddr,
        Some(ip("0.0.0.0"))
    );
    assert_eq!(c.sa("comp").unwrap().sa_protocol, SaProtocol::Ipcomp);
    assert_eq!(
        (
            peer.ikev2.scripts.get(HookEvent::Phase1Up),
            peer.ikev2.scripts.get(HookEvent::Phase2Up)
        ),
        (
            Some(Path::new("/etc/racoon3/hook/ikesa-up")),
            Some(Path::new("/etc/racoon3/hook/child-up"))
        ),
        "script is implemented: ike_sa_up and child_up are phase1_up and phase2_up"
    );
    let pool = c.addresspool("pool").unwrap();
    assert_eq!(
        pool.ranges,
        [
            AddressRange {
                start: ip("10.8.1.10"),
                end: ip("10.8.1.99")
            },
            AddressRange {
                start: ip("2001:db8:8::100"),
                end: ip("2001:db8:8::1ff")
            }
        ]
    );
}

#[test]
fn testdata_model_serializes_with_config_spellings() {
    let c = load_testdata("racoon3.conf").config;
    let json = serde_json::to_value(&c).unwrap();
    let host6 = &json["remotes"][2];
    assert_eq!(host6["name"], "host6");
    assert_eq!(host6["ikev2"]["kmp_enc_alg"][0], "chacha20_poly1305");
    assert!(
        host6["span"]
            .as_str()
            .unwrap()
            .ends_with("30-ipv6.conf:3:1")
    );
}

#[test]
fn read_psk_keeps_every_byte() {
    assert_eq!(
        read_psk(&testdata().join("psk/gw-b.psk")).unwrap(),
        b"gw-b shared secret, one line\n"
    );
    assert_eq!(
        read_psk(&testdata().join("psk/host6.psk")).unwrap(),
        b"\x00\x01binary\xffkey\n"
    );
    let missing = testdata().join("psk/absent.psk");
    let err = read_psk(&missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("pre-shared key file {}: ", missing.display())),
        "{err}"
    );
    let dir = include::tests::TempDir::new("psk");
    let empty = dir.write("empty.psk", "");
    let err = read_psk(&empty).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("pre-shared key file {}: the file is empty", empty.display())
    );
}

// ---- lexical level: variables and includes ----------------------------------

#[test]
fn setval_variables_expand_anywhere_after_reading() {
    let text = format!(
        "{BASE}
selector s1 {{ direction outbound; src \"${{NET}}\"; dst ${{PEER}} port ${{PORT}}; policy_index ${{POL}}; }};
policy p1 {{ action none; }};
setval {{ NET \"10.0.${{SUB}}.0/24\"; PEER \"192.0.2.7\"; }};
setval SUB 3;
setval {{ PORT \"443\"; POL p1; }};
"
    );
    let c = config(&text);
    let s = c.selector("s1").unwrap();
    assert_eq!(s.src, IpPrefix::new(ip("10.0.3.0"), 24).unwrap());
    assert_eq!((s.dst.addr, s.dst_port), (ip("192.0.2.7"), Some(443)));
    assert_eq!(s.policy_index, "p1");
}

#[test]
fn environment_substitution_is_injectable() {
    let env = |name: &str| match name {
        "KEYS" => Some("/etc/keys".to_owned()),
        "PEER" => Some("192.0.2.99".to_owned()),
        _ => None,
    };
    let text = "setval { PSK \"$[KEYS]/peer.psk\"; };
remote r { acceptable_kmp ikev1; ikev2 { pre_shared_key \"${PSK}\"; peers_ipaddr $[PEER]; }; };";
    let loaded = parse_str(text, "e.conf", &env).unwrap();
    let v2 = &loaded.config.remote("r").unwrap().ikev2;
    assert_eq!(v2.pre_shared_key, Some(PathBuf::from("/etc/keys/peer.psk")));
    assert_eq!(
        v2.peers_ipaddr,
        Some(PeerAddr::Addr {
            addr: ip("192.0.2.99"),
            port: None
        })
    );
    let err = parse_str(
        "remote r { acceptable_kmp ikev2; ikev2 { pre_shared_key \"$[NOPE]\"; }; };",
        "e.conf",
        &env,
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "e.conf:1:57: environment variable $[NOPE] is not set"
    );
}

#[test]
fn setval_errors() {
    let msg = error("setval { A \"x\"; };\n\nsetval { A \"y\"; };");
    assert!(
        msg.starts_with("t.conf:3:10: duplicate variable 'A' (first at t.conf:1:10)"),
        "{msg}"
    );
    let msg = error("setval { lower \"x\"; };");
    assert!(msg.contains("'lower' is not a variable name"), "{msg}");
    let msg = error("setval { A; };");
    assert!(msg.contains("expected NAME \"value\";"), "{msg}");
    let msg = error("setval A;");
    assert!(
        msg.contains("expected setval { NAME \"value\"; ... };"),
        "{msg}"
    );
    let msg = error(&format!(
        "{BASE}\npolicy p {{ action none; remote_index \"${{R}}\"; }};"
    ));
    assert!(msg.ends_with("undefined variable ${R}"), "{msg}");
    let msg = error(
        "setval { A \"${B}\"; B \"${A}\"; };\npolicy p { action none; remote_index \"${A}\"; };",
    );
    assert!(msg.starts_with("t.conf:2:38: variable expansion:"), "{msg}");
}

#[test]
fn includes_with_globs_setval_across_files_and_loops() {
    let dir = include::tests::TempDir::new("e2e");
    dir.write("vals.conf", "setval { NET \"10.5.0.0/16\"; };\n");
    dir.write("conf.d/a.conf", "policy p1 { action discard; };\n");
    dir.write(
        "conf.d/b.conf",
        "selector s1 { direction inbound; src ${NET}; dst 10.6.0.0/16; policy_index p1; };\n",
    );
    let top = dir.write(
        "top.conf",
        "include \"conf.d/*.conf\";\ninclude \"vals.conf\";\n",
    );
    let c = load(&top).unwrap().config;
    assert_eq!(
        c.selector("s1").unwrap().src,
        IpPrefix::new(ip("10.5.0.0"), 16).unwrap()
    );
    assert_eq!(c.policy("p1").unwrap().action, PolicyAction::Discard);

    let abs = format!("include \"{}/conf.d/a.conf\";", dir.0.display());
    assert!(parse(&abs).is_ok(), "absolute include from parse_str");

    dir.write("loop.conf", "include \"top2.conf\";\n");
    let top2 = dir.write(
        "top2.conf",
        "policy q { action none; };\ninclude \"loop.conf\";\n",
    );
    let err = load(&top2).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("loop.conf:1:1: include: loop: "), "{msg}");

    let err = error("remote r { include \"x.conf\"; };");
    assert_eq!(
        err,
        "t.conf:1:12: 'include' is not valid in remote 'r' (it belongs in the top level)"
    );
}

// ---- directive families --------------------------------------------------------

#[test]
fn interface_directives() {
    let c = config(
        "interface { ike { 192.0.2.1; 2001:db8::1 port 500; }; ike MY_IPV4; kink { MY_IPV6 port 910; }; \
         spmd unix \"/run/spmif\"; spmd_password \"/etc/spmd.pwd\"; };",
    );
    let ike: Vec<(IpAddr, Option<u16>)> =
        c.interface.ike.iter().map(|l| (l.addr, l.port)).collect();
    assert_eq!(
        ike,
        [
            (ip("192.0.2.1"), None),
            (ip("2001:db8::1"), Some(500)),
            (ip("0.0.0.0"), None)
        ]
    );
    assert_eq!(
        c.interface.kink,
        [ListenAddr {
            addr: ip("::"),
            port: Some(910)
        }]
    );
    assert_eq!(
        c.interface.spmd_password,
        Some(PathBuf::from("/etc/spmd.pwd"))
    );
    assert_eq!(
        error("interface {\n ike MY_IP port any; };"),
        "t.conf:2:6: invalid value for 'ike': 'port any' cannot be listened on"
    );
    assert!(
        error("interface { ike eth0; };")
            .contains("'eth0' is not an IP address (racoon3 does not resolve host")
    );
    assert!(error("interface { ike IP_RW; };").contains("expected an IP address or MY_IP"));
    assert!(
        error("interface { spmd_password \"a\"; spmd_password \"b\"; };")
            .contains("duplicate directive 'spmd_password'")
    );
    assert!(
        error("interface { };\ninterface { };")
            .starts_with("t.conf:2:1: duplicate block 'interface' (first at t.conf:1:1)")
    );
    assert_eq!(
        warnings("interface { ike MY_IP%eth0; };"),
        ["t.conf:1: '%eth0' is ignored: racoon3 listens on every interface"]
    );
}

#[test]
fn remote_and_ikev2_directives() {
    let text = format!(
        "{BASE}
remote r2 {{
    acceptable_kmp {{ ikev2; ikev1; }};
    ikev2 {{
        my_id keyid file \"/etc/keyid\";
        peers_id rfc822 \"peer@example.org\";
        peers_ipaddr {{ 192.0.2.1 port 4500; 192.0.2.2; }};
        kmp_enc_alg {{ aes128_gcm16; aes256_cbc; }};
        kmp_hash_alg {{ sha2_256; aes_xcbc; }};
        kmp_prf_alg {{ aes_cmac; hmac_sha2_512; }};
        kmp_dh_group {{ 1; 2; 5; 15; 16; 17; 18; 19; 20; 21; modp3072; }};
        kmp_auth_method {{ rsasig; psk; dss; ecdsasig; }};
        kmp_sa_lifetime_time 1 day;
        ipsec_sa_lifetime_time 90 mins;
        dpd_delay 0;
        max_retry_to_send 0x10;
        interval_to_send 2 seconds;
        times_per_send 2;
        nonce_size 256 B;
        nat_traversal off;
        need_pfs yes;
        force_udp_encap on;
        pre_shared_key \"/k2\";
    }};
}};"
    );
    let loaded = parse(&text).unwrap();
    let r = loaded.config.remote("r2").unwrap();
    assert_eq!(r.acceptable_kmp, [Kmp::Ikev2, Kmp::Ikev1]);
    let p = &r.ikev2;
    assert_eq!(
        p.my_id.as_ref().map(|i| (i.kind, i.value.as_str())),
        Some((IdKind::Keyid, "/etc/keyid"))
    );
    assert_eq!(p.peers_id.as_ref().map(|i| i.kind), Some(IdKind::Email));
    assert_eq!(
        p.peers_ipaddr,
        Some(PeerAddr::Addr {
            addr: ip("192.0.2.1"),
            port: Some(4500)
        })
    );
    assert_eq!(
        p.kmp_hash_alg,
        [AuthAlgName::Sha2_256, AuthAlgName::AesXcbc]
    );
    assert_eq!(
        p.kmp_prf_alg,
        [AuthAlgName::AesCmac, AuthAlgName::HmacSha2_512]
    );
    let numbers: Vec<u16> = p.kmp_dh_group.iter().map(DhGroupName::number).collect();
    assert_eq!(numbers, [1, 2, 5, 15, 16, 17, 18, 19, 20, 21, 15]);
    assert_eq!(
        p.kmp_auth_method,
        [
            AuthMethod::RsaSig,
            AuthMethod::Psk,
            AuthMethod::DssSig,
            AuthMethod::EcdsaSig
        ]
    );
    assert_eq!(p.kmp_sa_lifetime_time, Some(Lifetime::Seconds(86400)));
    assert_eq!(p.ipsec_sa_lifetime_time, Some(Lifetime::Seconds(5400)));
    assert_eq!(p.dpd_delay, Some(Duration::ZERO));
    assert_eq!(
        (p.max_retry_to_send, p.times_per_send, p.nonce_size),
        (Some(16), Some(2), Some(256))
    );
    assert_eq!(p.interval_to_send, Some(Duration::from_secs(2)));
    assert_eq!((p.nat_traversal, p.need_pfs), (Some(false), Some(true)));
    assert_eq!(p.force_udp_encap, Some(true));
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        ["t.conf:17: racoon3 uses only the first of the 2 addresses"]
    );
}

#[test]
fn script_blocks_resolve_synonyms_and_merge_default() {
    let text = format!(
        "{BASE}
default {{ remote {{ ikev2 {{
    kmp_enc_alg aes128_cbc; kmp_hash_alg hmac_sha1; kmp_prf_alg hmac_sha1;
    kmp_dh_group 14; kmp_auth_method psk;
    script {{ phase1_down \"/def/p1-down\"; migration \"/def/migrate\"; }};
}}; }}; }};
remote all {{
    acceptable_kmp ikev2;
    ikev2 {{
        pre_shared_key \"/k\";
        script {{
            phase1_up \"/h/p1-up\";
            ike_sa_rekey \"/h/p1-rekey\";
            child_up \"/h/p2-up\";
            phase2_down \"/h/p2-down\";
            child_rekey \"hooks/p2-rekey\";
        }};
    }};
}};
remote one {{
    acceptable_kmp ikev2;
    ikev2 {{ pre_shared_key \"/k\"; script ike_sa_down \"/h/own-down\"; }};
}};"
    );
    let loaded = parse(&text).unwrap();
    let all = &loaded.config.remote("all").unwrap().ikev2.scripts;
    let expected = [
        (HookEvent::Phase1Up, Some("/h/p1-up")),
        (HookEvent::Phase1Down, Some("/def/p1-down")),
        (HookEvent::Phase1Rekey, Some("/h/p1-rekey")),
        (HookEvent::Phase2Up, Some("/h/p2-up")),
        (HookEvent::Phase2Down, Some("/h/p2-down")),
        (HookEvent::Phase2Rekey, Some("hooks/p2-rekey")),
        (HookEvent::Migration, Some("/def/migrate")),
    ];
    for (event, path) in expected {
        assert_eq!(all.get(event), path.map(Path::new), "{event:?}");
    }
    let one = &loaded.config.remote("one").unwrap().ikev2.scripts;
    assert_eq!(
        one.get(HookEvent::Phase1Down),
        Some(Path::new("/h/own-down"))
    );
    assert_eq!(
        one.get(HookEvent::Migration),
        Some(Path::new("/def/migrate"))
    );
    assert_eq!(one.get(HookEvent::Phase1Up), None);
    // Kept as written, but a relative path depends on iked's working
    // directory: the operator hears about it.
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "t.conf:26: script path 'hooks/p2-rekey' is relative: it is resolved against the daemon's working directory"
        ]
    );
}

#[test]
fn script_errors_are_positioned() {
    let wrap = |body: &str| format!("remote r {{ acceptable_kmp ikev2; ikev2 {{\n{body}\n}}; }};");
    let cases = [
        (
            "script { phase1_up \"/a\"; ike_sa_up \"/b\"; };",
            "t.conf:2:26: duplicate script for event 'phase1_up' (first at t.conf:2:10)",
        ),
        (
            "script { child_down \"\"; };",
            "t.conf:2:21: invalid value for 'script': the script path is empty",
        ),
        (
            "script { child_down; };",
            "t.conf:2:10: invalid value for 'child_down': missing a script path",
        ),
        (
            "script { child_down \"/a\" \"/b\"; };",
            "t.conf:2:26: invalid value for 'child_down': unexpected '/b'",
        ),
        (
            "script phase2_up;",
            "t.conf:2:1: invalid value for 'script': missing a script path",
        ),
        (
            "script { phase2_up { \"/a\"; }; };",
            "t.conf:2:20: invalid value for 'phase2_up': does not take a { } list",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(error(&wrap(body)), expected, "{body}");
    }
}

#[test]
fn ikev2_value_errors_are_positioned() {
    let wrap = |body: &str| format!("remote r {{ acceptable_kmp ikev2; ikev2 {{\n{body}\n}}; }};");
    let cases = [
        (
            "kmp_enc_alg hmac_sha1;",
            "t.conf:2:13: invalid value for 'kmp_enc_alg': 'hmac_sha1' is not an encryption algorithm",
        ),
        (
            "kmp_hash_alg { aes128_cbc; };",
            "t.conf:2:16: invalid value for 'kmp_hash_alg': 'aes128_cbc' is not an integrity algorithm",
        ),
        (
            "kmp_dh_group 13;",
            "t.conf:2:14: invalid value for 'kmp_dh_group': unknown DH group '13'",
        ),
        (
            "kmp_auth_method eap;",
            "t.conf:2:17: invalid value for 'kmp_auth_method': 'eap' is not an authentication method",
        ),
        (
            "kmp_sa_lifetime_time 10 weeks;",
            "t.conf:2:25: invalid value for 'kmp_sa_lifetime_time': unexpected 'weeks'",
        ),
        (
            "interval_to_send infinite;",
            "t.conf:2:1: invalid value for 'interval_to_send': must be a finite, non-zero time",
        ),
        (
            "nonce_size 8;",
            "t.conf:2:1: invalid value for 'nonce_size': must be between 16 and 256 bytes",
        ),
        (
            "my_id ipaddr \"gw.example.org\";",
            "t.conf:2:14: invalid value for 'my_id': 'gw.example.org' is not an IP address",
        ),
        (
            "my_id fqdn tag \"x\";",
            "t.conf:2:12: invalid value for 'my_id': 'tag' applies only to keyid",
        ),
        (
            "my_id dn \"x\";",
            "t.conf:2:7: invalid value for 'my_id': unknown identity type 'dn' (ipaddr, fqdn, email, keyid, x509_subject)",
        ),
        (
            "peers_ipaddr MY_IP;",
            "t.conf:2:14: invalid value for 'peers_ipaddr': expected the peer's IP address or IP_RW",
        ),
        (
            "need_pfs maybe;",
            "t.conf:2:10: invalid value for 'need_pfs': expected on or off, found 'maybe'",
        ),
        (
            "max_retry_to_send 3 4;",
            "t.conf:2:21: invalid value for 'max_retry_to_send': unexpected '4'",
        ),
        (
            "kmp_enc_alg { };",
            "t.conf:2:13: invalid value for 'kmp_enc_alg': the list is empty",
        ),
        (
            "kmp_enc_alg;",
            "t.conf:2:1: invalid value for 'kmp_enc_alg': missing an encryption algorithm",
        ),
        (
            "pre_shared_key { \"a\"; };",
            "t.conf:2:16: invalid value for 'pre_shared_key': does not take a { } list",
        ),
        (
            "need_pfs on; need_pfs off;",
            "t.conf:2:14: duplicate directive 'need_pfs' (first at t.conf:2:1)",
        ),
        (
            "exchange_mode main;",
            "t.conf:2:1: 'exchange_mode' is not valid in the ikev2 block of remote 'r' (it belongs in an ikev1 block)",
        ),
        (
            "my_principal \"a@B\";",
            "t.conf:2:1: 'my_principal' is not valid in the ikev2 block of remote 'r' (it belongs in a kink block)",
        ),
        (
            "frobnicate on;",
            "t.conf:2:1: unknown directive 'frobnicate' in the ikev2 block of remote 'r'",
        ),
        (
            "passive sometimes;",
            "t.conf:2:9: invalid value for 'passive': expected on or off, found 'sometimes'",
        ),
        (
            "script { boot \"/x\"; };",
            "t.conf:2:10: invalid value for 'script': expected one of phase1_up, phase1_down, phase1_rekey, phase2_up, phase2_down, phase2_rekey, ike_sa_up, ike_sa_down, ike_sa_rekey, child_up, child_down, child_rekey, migration, found 'boot'",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(error(&wrap(body)), expected, "{body}");
    }
}

#[test]
fn ikev2_needs_its_algorithms_unless_aead() {
    let remote = |body: &str| format!("remote r {{ acceptable_kmp ikev2; ikev2 {{ {body} }}; }};");
    let full =
        "kmp_prf_alg hmac_sha2_256; kmp_dh_group 19; kmp_auth_method psk; pre_shared_key \"/k\";";
    // AEAD only: no kmp_hash_alg needed.
    let c = config(&remote(&format!(
        "kmp_enc_alg {{ aes128_gcm16; chacha20_poly1305; }}; {full}"
    )));
    assert!(c.remote("r").unwrap().ikev2.kmp_hash_alg.is_empty());
    // A CBC cipher in the list: it is.
    let msg = error(&remote(&format!(
        "kmp_enc_alg {{ aes128_gcm16; aes128_cbc; }}; {full}"
    )));
    assert_eq!(
        msg,
        "t.conf:1:1: remote 'r': missing 'kmp_hash_alg' (required unless every kmp_enc_alg is an AEAD cipher: \
         aes128_gcm16, aes256_gcm16, chacha20_poly1305)"
    );
    let msg = error(&remote("kmp_enc_alg aes256_gcm16;"));
    assert!(msg.contains("missing 'kmp_prf_alg'"), "{msg}");
    let msg = error(&remote(
        "kmp_enc_alg aes256_gcm16; kmp_prf_alg hmac_sha1; kmp_dh_group 14; kmp_auth_method psk;",
    ));
    assert!(
        msg.contains("missing 'pre_shared_key' (kmp_auth_method psk needs a key file)"),
        "{msg}"
    );
    let msg = error("remote r { ikev2 { }; };");
    assert_eq!(msg, "t.conf:1:1: remote 'r': missing 'acceptable_kmp'");
    // Not checked when the remote does not speak IKEv2.
    assert!(
        parse("remote r { acceptable_kmp kink; kink { peers_principal \"kink/x@Y\"; }; };").is_ok()
    );
    // The default remote fills the gaps.
    let text = format!(
        "default {{ remote {{ acceptable_kmp ikev2; ikev2 {{ kmp_enc_alg aes128_cbc; kmp_hash_alg hmac_sha1; {full} }}; }}; }};
remote r {{ ikev2 {{ kmp_enc_alg aes256_gcm16; }}; }};"
    );
    let c = config(&text);
    let r = c.remote("r").unwrap();
    assert_eq!(r.ikev2.kmp_enc_alg, [EncAlgName::Aes256Gcm16]);
    assert_eq!(r.ikev2.kmp_hash_alg, [AuthAlgName::HmacSha1]);
    assert_eq!(r.acceptable_kmp, [Kmp::Ikev2]);
}

#[test]
fn remote_level_errors() {
    assert_eq!(
        error("remote r { acceptable_kmp { ikev2; ikev3; }; };"),
        "t.conf:1:36: invalid value for 'acceptable_kmp': expected ikev2, ikev1 or kink, found 'ikev3'"
    );
    assert_eq!(
        error("remote r { acceptable_kmp { ikev2; ikev2; }; };"),
        "t.conf:1:12: invalid value for 'acceptable_kmp': 'ikev2' is listed twice"
    );
    assert_eq!(
        error(&format!("{BASE}remote r1 {{ acceptable_kmp ikev2; }};")),
        "t.conf:11:1: duplicate remote 'r1' (first at t.conf:4:1)"
    );
    assert_eq!(
        error("remote r {\n  acceptable_kmp kink;\n  kink { dpd on; };\n};"),
        "t.conf:3:10: 'dpd' is not valid in the kink block of remote 'r' (it belongs in an ikev1 block)"
    );
    assert_eq!(
        error("remote r {\n  acceptable_kmp kink;\n  ikev1 { peers_ipaddr gw.example.org; };\n};"),
        "t.conf:3:24: invalid value for 'peers_ipaddr': 'gw.example.org' is not an IP address \
         (racoon3 does not resolve host or interface names)"
    );
    assert_eq!(
        error("remote r ikev2;"),
        "t.conf:1:1: invalid value for 'remote': expected remote NAME { ... };"
    );
    assert_eq!(
        error("remote { };"),
        "t.conf:1:1: invalid value for 'remote': expected remote NAME { ... };"
    );
    assert_eq!(
        error("remote r { ikev2 x { }; };"),
        "t.conf:1:12: invalid value for 'ikev2': expected ikev2 { ... };"
    );
    assert_eq!(
        error("remote r { policy_index p; };"),
        "t.conf:1:12: 'policy_index' is not valid in remote 'r' (it belongs in a selector block)"
    );
}

#[test]
fn selector_directives_and_errors() {
    let text = format!(
        "{BASE}
policy p1 {{ action discard; }};
selector s1 {{ direction inbound; src 192.0.2.0/24 port 80; dst 198.51.100.7 port any;
    upper_layer_protocol \"udp\"; policy_index p1; reqid 7; }};
selector s2 {{ direction outbound; src ::1; dst IP_RW; upper_layer_protocol any; policy_index p1; }};"
    );
    let c = config(&text);
    let s1 = c.selector("s1").unwrap();
    assert_eq!(s1.direction, Direction::Inbound);
    assert_eq!(
        (s1.src.to_string(), s1.src_port),
        ("192.0.2.0/24".to_owned(), Some(80))
    );
    assert_eq!(
        (s1.dst.to_string(), s1.dst_port),
        ("198.51.100.7/32".to_owned(), None)
    );
    assert_eq!((s1.upper_layer_protocol, s1.reqid), (Some(17), Some(7)));
    let s2 = c.selector("s2").unwrap();
    assert_eq!(
        (s2.dst.to_string(), s2.upper_layer_protocol),
        ("::/0".to_owned(), None)
    );

    let sel = |body: &str| format!("policy p1 {{ action none; }};\nselector s {{\n{body}\n}};");
    let full = "direction outbound; src 10.0.0.0/8; dst 10.1.0.0/16; policy_index p1;";
    assert_eq!(
        error(&sel("src 10.0.0.0/8; dst 10.1.0.0/16; policy_index p1;")),
        "t.conf:2:1: selector 's': missing 'direction'"
    );
    assert_eq!(
        error(&sel("direction outbound; dst ::/0; policy_index p1;")),
        "t.conf:2:1: selector 's': missing 'src'"
    );
    assert_eq!(
        error(&sel("direction outbound; src ::/0; policy_index p1;")),
        "t.conf:2:1: selector 's': missing 'dst'"
    );
    assert_eq!(
        error(&sel("direction outbound; src ::/0; dst ::/0;")),
        "t.conf:2:1: selector 's': missing 'policy_index'"
    );
    assert_eq!(
        error(&sel(
            "direction outbound; src ::/0; dst 10.0.0.0/8; policy_index p1;"
        )),
        "t.conf:3:35: selector 's': src ::/0 and dst 10.0.0.0/8 are of different address families"
    );
    assert_eq!(
        error(&sel("direction sideways;")),
        "t.conf:3:11: invalid value for 'direction': expected inbound or outbound, found 'sideways'"
    );
    assert_eq!(
        error(&sel("src 10.0.0.0/40;")),
        "t.conf:3:5: invalid value for 'src': bad prefix length '/40' (at most 32)"
    );
    assert_eq!(
        error(&sel("src MY_IP;")),
        "t.conf:3:5: invalid value for 'src': expected an IP address, a prefix, IP_ANY or IP_RW \
         (MY_IP macros are not supported in selectors)"
    );
    assert_eq!(
        error(&sel("src { 10.0.0.1; 10.0.0.2; };")),
        "t.conf:3:5: invalid value for 'src': does not take a { } list"
    );
    assert_eq!(
        error(&sel("upper_layer_protocol \"carrier-pigeon\";")),
        "t.conf:3:22: invalid value for 'upper_layer_protocol': unknown protocol 'carrier-pigeon'; write its number"
    );
    assert_eq!(
        error(&sel(&format!("{full} reqid 4294967296;"))),
        "t.conf:3:77: invalid value for 'reqid': 4294967296 is too large"
    );
    assert_eq!(
        error(&sel(&format!("{full} direction inbound;"))),
        "t.conf:3:71: duplicate directive 'direction' (first at t.conf:3:1)"
    );
    assert_eq!(
        warnings(&sel(
            "direction outbound; src IP_ANY; dst IP_ANY; policy_index p1;"
        )),
        ["t.conf:3: src and dst are both IP_ANY: the selector matches IPv4 only"]
    );
}

#[test]
fn policy_directives_and_errors() {
    let text = format!(
        "{BASE}
default {{ policy {{ ipsec_level use; remote_index r1; }}; }};
policy p1 {{ action auto_ipsec; ipsec_index {{ ips1; }}; ipsec_mode tunnel;
    my_sa_ipaddr 192.0.2.1; peers_sa_ipaddr IP_ANY; install on; }};
policy p2 {{ action bypass; }};"
    );
    let c = config(&text);
    let p1 = c.policy("p1").unwrap();
    assert_eq!(p1.ipsec_level, Some(IpsecLevel::Use));
    assert_eq!(p1.remote_index.as_deref(), Some("r1"));
    assert_eq!(p1.peers_sa_ipaddr, Some(ip("0.0.0.0")));
    assert_eq!(c.policy("p2").unwrap().action, PolicyAction::None);

    let pol = |body: &str| format!("{BASE}policy p {{\n{body}\n}};");
    assert_eq!(
        error(&pol("ipsec_mode transport;")),
        "t.conf:11:1: policy 'p': missing 'action'"
    );
    assert_eq!(
        error(&pol("action auto_ipsec;")),
        "t.conf:11:1: policy 'p': missing 'ipsec_index' (action auto_ipsec needs one)"
    );
    assert_eq!(
        error(&pol(
            "action auto_ipsec; ipsec_index ips1; ipsec_mode tunnel; peers_sa_ipaddr 192.0.2.2;"
        )),
        "t.conf:11:1: policy 'p': missing 'my_sa_ipaddr' (ipsec_mode tunnel needs both SA end points)"
    );
    assert_eq!(
        error(&pol(
            "action auto_ipsec; ipsec_index ips1; ipsec_mode tunnel; my_sa_ipaddr 192.0.2.2;"
        )),
        "t.conf:11:1: policy 'p': missing 'peers_sa_ipaddr' (ipsec_mode tunnel needs both SA end points)"
    );
    assert_eq!(
        error(&pol("action encrypt;")),
        "t.conf:12:8: invalid value for 'action': expected auto_ipsec, static_ipsec, discard or none, found 'encrypt'"
    );
    assert_eq!(
        error(&pol("action none; peers_sa_ipaddr MY_IP;")),
        "t.conf:12:30: invalid value for 'peers_sa_ipaddr': expected an IP address, IP_RW or IP_ANY"
    );
    assert_eq!(
        error(&pol("action none; my_sa_ipaddr 10.0.0.1/8;")),
        "t.conf:12:27: invalid value for 'my_sa_ipaddr': a prefix length is not allowed here"
    );
    assert_eq!(
        error(&pol("action none; ipsec_level maybe;")),
        "t.conf:12:26: invalid value for 'ipsec_level': expected require, use or unique, found 'maybe'"
    );
}

#[test]
fn ipsec_and_sa_directives_and_errors() {
    let c = config(
        "sa a { sa_protocol ah; ah_auth_alg hmac_sha2_512; };
sa e { sa_protocol esp; esp_enc_alg { chacha20_poly1305; }; };
sa n { sa_protocol esp; esp_enc_alg null_enc; esp_auth_alg hmac_sha2_384; };
sa c { sa_protocol ipcomp; };
ipsec b { ipsec_sa_lifetime_time 0; ext_sequence off; sa_index { a; e; c; }; };",
    );
    let b = c.ipsec("b").unwrap();
    assert_eq!(b.sa_index, ["a", "e", "c"]);
    assert_eq!(b.ipsec_sa_lifetime_time, Some(Lifetime::Infinite));
    assert_eq!(b.ext_sequence, Some(false));
    assert_eq!(
        c.sa("e").unwrap().esp_auth_alg,
        [] as [AuthAlgName; 0],
        "AEAD: no esp_auth_alg"
    );
    assert_eq!(c.sa("n").unwrap().esp_enc_alg, [EncAlgName::NullEnc]);

    assert_eq!(
        error("sa s { esp_enc_alg aes128_cbc; };"),
        "t.conf:1:1: sa 's': missing 'sa_protocol'"
    );
    assert_eq!(
        error("sa s { sa_protocol esp; };"),
        "t.conf:1:1: sa 's': missing 'esp_enc_alg' (sa_protocol esp needs one)"
    );
    assert_eq!(
        error("sa s { sa_protocol esp; esp_enc_alg { aes256_gcm16; aes256_cbc; }; };"),
        "t.conf:1:1: sa 's': missing 'esp_auth_alg' (required unless every esp_enc_alg is an AEAD cipher: \
         aes128_gcm16, aes256_gcm16, chacha20_poly1305)"
    );
    assert_eq!(
        error("sa s { sa_protocol ah; };"),
        "t.conf:1:1: sa 's': missing 'ah_auth_alg' (sa_protocol ah needs one)"
    );
    assert_eq!(
        error("sa s { sa_protocol gre; };"),
        "t.conf:1:20: invalid value for 'sa_protocol': expected esp, ah or ipcomp, found 'gre'"
    );
    assert_eq!(
        error("sa s { sa_protocol ah; ah_auth_alg aes256_cbc; };"),
        "t.conf:1:36: invalid value for 'ah_auth_alg': 'aes256_cbc' is not an authentication algorithm"
    );
    assert_eq!(
        error("sa s { sa_protocol esp; ipcomp_alg zip; };"),
        "t.conf:1:36: invalid value for 'ipcomp_alg': expected one of oui, deflate, lzs, found 'zip'"
    );
    assert_eq!(
        error("ipsec i { ext_sequence on; };"),
        "t.conf:1:1: ipsec 'i': missing 'sa_index'"
    );
    assert_eq!(
        error("ipsec i { sa_index { a; b; c; d; }; };"),
        "t.conf:1:11: invalid value for 'sa_index': a bundle has at most three SAs (AH, ESP, IPComp)"
    );
    assert_eq!(
        error(
            "sa e1 { sa_protocol esp; esp_enc_alg aes128_gcm16; };\nsa e2 { sa_protocol esp; esp_enc_alg aes256_gcm16; };\n\
             ipsec i { sa_index { e1; e2; }; };"
        ),
        "t.conf:3:26: sa_index: a bundle has at most one esp SA, and 'e2' is another"
    );
    assert_eq!(
        warnings(
            "sa s { sa_protocol esp; esp_enc_alg { aes_ctr,256; aes128_cbc,,0x00112233; }; esp_auth_alg hmac_sha1; };"
        ),
        [
            "t.conf:1: key length and key after 'aes_ctr' are ignored",
            "t.conf:1: key length and key after 'aes128_cbc' are ignored"
        ]
    );
}

#[test]
fn addresspool_ranges() {
    let c = config("addresspool p { 10.0.0.1 - 10.0.0.1; \"fd00::1\" - \"fd00::ff\"; };");
    assert_eq!(c.addresspool("p").unwrap().ranges.len(), 2);
    assert_eq!(
        error("addresspool p { 10.0.0.9 - 10.0.0.1; };"),
        "t.conf:1:28: invalid value for 'addresspool': 10.0.0.9 - 10.0.0.1 is not a range"
    );
    assert_eq!(
        error("addresspool p { 10.0.0.1 - fd00::1; };"),
        "t.conf:1:28: invalid value for 'addresspool': 10.0.0.1 - fd00::1 is not a range"
    );
    assert_eq!(
        error("addresspool p { 10.0.0.1-10.0.0.9; };"),
        "t.conf:1:17: invalid value for 'addresspool': '10.0.0.1-10.0.0.9' is not an IP address \
         (racoon3 does not resolve host or interface names)"
    );
    assert_eq!(
        error("addresspool p { 10.0.0.1 to 10.0.0.9; };"),
        "t.conf:1:26: invalid value for 'addresspool': expected '-' (with spaces around it), found 'to'"
    );
}

#[test]
fn every_index_must_name_a_block() {
    let cases = [
        (
            format!(
                "{BASE}selector s {{ direction inbound; src ::/0; dst ::/0;\n policy_index nope; }};"
            ),
            "t.conf:12:15: 'policy_index' refers to policy 'nope', which is not defined",
        ),
        (
            format!("{BASE}policy p {{ action none;\n remote_index nope; }};"),
            "t.conf:12:15: 'remote_index' refers to remote 'nope', which is not defined",
        ),
        (
            format!("{BASE}policy p {{ action auto_ipsec;\n ipsec_index {{ ips1; nope; }}; }};"),
            "t.conf:12:22: 'ipsec_index' refers to ipsec 'nope', which is not defined",
        ),
        (
            format!("{BASE}ipsec i {{\n sa_index {{ esp1; nope; }}; }};"),
            "t.conf:12:19: 'sa_index' refers to sa 'nope', which is not defined",
        ),
        (
            format!("{BASE}remote r2 {{ acceptable_kmp kink;\n selector_index nope; }};"),
            "t.conf:12:17: 'selector_index' refers to selector 'nope', which is not defined",
        ),
        (
            format!(
                "default {{ policy {{\n remote_index nope; }}; }};\n{BASE}policy p {{ action none; }};"
            ),
            "t.conf:2:15: 'remote_index' refers to remote 'nope', which is not defined",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(&text), expected);
    }
}

// ---- the top level -----------------------------------------------------------

#[test]
fn unknown_and_misplaced_directives() {
    assert_eq!(
        error("\n  frobnicate { };"),
        "t.conf:2:3: unknown directive 'frobnicate' in the top level"
    );
    assert_eq!(
        error("interface {\n\tike MY_IP;\n\tlisten 1;\n};"),
        "t.conf:3:2: unknown directive 'listen' in the interface block"
    );
    assert_eq!(
        error("kmp_enc_alg aes128_cbc;"),
        "t.conf:1:1: 'kmp_enc_alg' is not valid in the top level (it belongs in ikev1, ikev2 or kink blocks)"
    );
    assert_eq!(
        error("sa s { sa_protocol esp; direction inbound; };"),
        "t.conf:1:25: 'direction' is not valid in sa 's' (it belongs in a selector block)"
    );
    assert_eq!(
        error("default { selector { }; };"),
        "t.conf:1:11: 'selector' is not valid in the default block (it belongs in the top level)"
    );
    assert_eq!(
        error("\"quoted\" thing;"),
        "t.conf:1:1: syntax error: expected a directive name, found \"quoted\""
    );
    assert_eq!(
        error("resolver { nameserver 1.2.3.4; dns_query 5.6.7.8; fake on; };"),
        "t.conf:1:51: unknown directive 'fake' in the resolver block"
    );
    assert_eq!(
        error("default { };\ndefault { };"),
        "t.conf:2:1: duplicate block 'default' (first at t.conf:1:1)"
    );
    assert_eq!(
        error("default { sa { }; sa { }; };"),
        "t.conf:1:19: duplicate directive 'sa' (first at t.conf:1:11)"
    );
    assert_eq!(
        error("default remote;"),
        "t.conf:1:1: invalid value for 'default': expected default { ... };"
    );
}

#[test]
fn syntax_and_lexical_errors_are_positioned() {
    assert_eq!(
        error("sa s {\n sa_protocol esp\n};"),
        "t.conf:3:1: syntax error: expected ';', found '}'"
    );
    assert_eq!(
        error("sa s { };\n}"),
        "t.conf:2:1: syntax error: expected a directive, found '}'"
    );
    assert_eq!(
        error("a \"open;\n"),
        "t.conf:1:3: unterminated quoted string"
    );
    assert_eq!(
        error("policy p { action = none; };"),
        "t.conf:1:19: unexpected character '='"
    );
}

#[test]
fn warnings_name_file_and_line() {
    let w = warnings("\n\nremote r {\n acceptable_kmp ikev1;\n ikev1 { exchange_mode main; };\n};");
    assert_eq!(
        w,
        ["t.conf:5: IKEv1 is not implemented by racoon3; the ikev1 block is checked and ignored"]
    );
    let w = warnings(&format!(
        "{BASE}policy p {{ action none;\n install off; }};"
    ));
    assert_eq!(
        w,
        ["t.conf:12: 'install' is understood but not implemented by racoon3; ignored"]
    );
    let loaded = parse(&format!(
        "{BASE}policy p {{ action none;\n install off; }};"
    ))
    .unwrap();
    assert_eq!(loaded.warnings[0].span.line, 12);
    assert_eq!(loaded.warnings[0].span.col, 2);
}

// ---- robustness ------------------------------------------------------------------

#[test]
fn fuzz_body_survives_samples_and_corpus() {
    let mut inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{".to_vec(),
        b"setval { A \"${A}${A}\"; }; remote \"${A}\" { };".to_vec(),
        b"include \"/etc/*\";".to_vec(),
        b"\xff\xfe remote r { ikev2 { kmp_dh_group 99999999999999999999; }; };".to_vec(),
        b"sa s { esp_enc_alg a,,,,,,; };".to_vec(),
    ];
    let mut paths = vec![testdata()];
    paths.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/conf_parse"));
    while let Some(dir) = paths.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                paths.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                inputs.push(bytes);
            }
        }
    }
    for input in &inputs {
        fuzzing::parse(input);
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n]{0,300}") {
        fuzzing::parse(text.as_bytes());
    }

    #[test]
    fn mutated_samples_never_panic(cut in 0usize..4000, len in 0usize..40, insert in "[{};,\"$#a-z0-9 ]{0,8}") {
        let sample = std::fs::read_to_string(testdata().join("legacy.conf")).unwrap();
        let mut bytes = sample.into_bytes();
        let at = cut.min(bytes.len());
        let end = (at + len).min(bytes.len());
        bytes.splice(at..end, insert.bytes());
        fuzzing::parse(&bytes);
    }
}

#[test]
fn kink_block_settings_and_default_inheritance() {
    let text = "default { remote { kink {
    my_principal \"kink/a.example@EXAMPLE\";
    interval_to_send 2 sec;
    user_to_user on;
}; }; };
remote r {
    acceptable_kmp kink;
    kink {
        peers_principal \"kink/b.example@EXAMPLE\";
        peers_ipaddr 198.51.100.2 port 9100;
        max_retry_to_send 3;
    };
};
remote s { acceptable_kmp kink; kink { my_principal \"kink/own@EXAMPLE\"; user_to_user off; }; };";
    let loaded = parse(text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let r = loaded.config.remote("r").unwrap();
    assert_eq!(
        r.kink,
        KinkParams {
            my_principal: Some("kink/a.example@EXAMPLE".into()),
            peers_principal: Some("kink/b.example@EXAMPLE".into()),
            peers_ipaddr: Some(PeerAddr::Addr {
                addr: ip("198.51.100.2"),
                port: Some(9100)
            }),
            max_retry_to_send: Some(3),
            interval_to_send: Some(Duration::from_secs(2)),
            user_to_user: Some(true),
        }
    );
    let s = loaded.config.remote("s").unwrap();
    assert_eq!(s.kink.my_principal.as_deref(), Some("kink/own@EXAMPLE"));
    assert_eq!(s.kink.user_to_user, Some(false), "own value beats default");
    assert_eq!(s.kink.peers_principal, None);
}

#[test]
fn kink_block_warns_about_what_kink_does_not_use() {
    let w = warnings(
        "remote r { acceptable_kmp kink; kink {
    nonce_size 16 B;
    kmp_enc_alg aes128_cbc;
    logmode debug;
    peers_principal \"kink/b@X\";
}; };",
    );
    assert_eq!(
        w,
        [
            "t.conf:2: 'nonce_size' has no meaning for KINK; kinkd ignores it",
            "t.conf:3: 'kmp_enc_alg' has no meaning for KINK; kinkd ignores it",
            "t.conf:4: 'logmode' is understood but not implemented by racoon3; ignored",
        ]
    );
    // Still checked like everywhere else.
    assert_eq!(
        error("remote r { acceptable_kmp kink; kink { nonce_size 4 B; }; };"),
        "t.conf:1:40: invalid value for 'nonce_size': must be between 16 and 256 bytes"
    );
    assert!(
        error("remote r { acceptable_kmp kink; kink { my_principal \"\"; }; };")
            .contains("the principal is empty")
    );
    assert_eq!(
        error("remote r { acceptable_kmp ikev2; ikev2 { user_to_user on; }; };"),
        "t.conf:1:42: 'user_to_user' is not valid in the ikev2 block of remote 'r' (it belongs in a kink block)"
    );
}
