use super::*;

/// A racoon2.conf with one KINK remote `peer`; the pieces can be replaced.
struct Conf {
    interface: &'static str,
    kink: &'static str,
    policy: &'static str,
    sa: &'static str,
    extra: &'static str,
}

const BASE: Conf = Conf {
    interface: "kink { 192.0.2.1; 2001:db8::1 port 9100; };",
    kink: "my_principal \"kink/a.example@EXAMPLE\"; peers_principal \"kink/b.example@EXAMPLE\";",
    policy: "ipsec_mode tunnel; my_sa_ipaddr 192.0.2.1; peers_sa_ipaddr 192.0.2.2;",
    sa: "sa_protocol esp; esp_enc_alg { aes256_gcm16; aes128_cbc; 3des_cbc; }; esp_auth_alg { hmac_sha2_256; hmac_sha1; };",
    extra: "",
};

impl Conf {
    fn text(&self) -> String {
        format!(
            "interface {{ {} }};
remote peer {{ acceptable_kmp {{ kink; }}; kink {{ {} }}; }};
selector out {{ direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24 port 80;
  upper_layer_protocol tcp; policy_index pol; }};
selector in {{ direction inbound; dst 198.51.100.0/24; src 203.0.113.0/24;
  upper_layer_protocol tcp; policy_index pol; }};
policy pol {{ action auto_ipsec; remote_index peer; ipsec_index {{ ie; }}; ipsec_level require; {} }};
ipsec ie {{ ipsec_sa_lifetime_time 100 sec; sa_index esp; }};
sa esp {{ {} }};
{}",
            self.interface, self.kink, self.policy, self.sa, self.extra
        )
    }

    fn translate(&self) -> anyhow::Result<DaemonConfig> {
        let loaded = libracoon::config::parse_str(&self.text(), "t.conf", &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.text()));
        translate(&loaded.config)
    }

    fn error(&self) -> String {
        match self.translate() {
            Ok(c) => panic!("translated: {c:?}"),
            Err(e) => format!("{e:#}"),
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_tunnel_remote_translates() {
    let c = BASE.translate().unwrap();
    assert_eq!(
        c.listen,
        [
            "192.0.2.1:910".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:9100".parse().unwrap()
        ]
    );
    assert_eq!(c.principal, "kink/a.example@EXAMPLE");
    let p = &c.peers[0];
    assert_eq!(p.name, "peer");
    assert_eq!(p.address, "192.0.2.2:910".parse().unwrap());
    assert_eq!(p.local, ip("192.0.2.1"));
    assert_eq!(p.principal, "kink/b.example@EXAMPLE");
    assert_eq!(p.reqid, 1, "Config::default_reqid, as spmd");
    assert_eq!(p.mode, IpsecMode::Tunnel);
    assert_eq!(
        p.selector,
        Selector {
            src: (ip("198.51.100.0"), ip("198.51.100.255")),
            dst: (ip("203.0.113.0"), ip("203.0.113.255")),
            proto: 6,
            src_port: 0,
            dst_port: 80,
        }
    );
    let gcm = EspEncr {
        id: 20,
        key_bits: 256,
    };
    let cbc = EspEncr {
        id: 12,
        key_bits: 128,
    };
    assert_eq!(
        p.proposals,
        [
            EspProposal {
                encr: gcm,
                auth: None
            },
            EspProposal {
                encr: cbc,
                auth: Some(EspAuth { id: 12 })
            },
            EspProposal {
                encr: cbc,
                auth: Some(EspAuth { id: 2 })
            },
        ]
    );
    assert_eq!(p.lifetime.hard_time, Some(Duration::from_secs(100)));
    assert_eq!(p.lifetime.soft_time, Some(Duration::from_secs(80)));
    assert_eq!((p.lifetime.hard_bytes, p.lifetime.soft_bytes), (None, None));
    assert!(!p.user_to_user);
    assert_eq!(p.retransmit_base, Duration::from_secs(1));
    assert_eq!(p.retransmit_tries, 5);
    assert_eq!(
        c.notes,
        ["remote peer: esp_enc_alg 3des_cbc is not implemented by racoon3 and is skipped"]
    );
}

#[test]
fn kink_block_overrides_address_retransmission_and_ticket_kind() {
    let c = Conf {
        kink: "my_principal \"kink/a@X\"; peers_principal \"kink/b@X\";
            peers_ipaddr 192.0.2.7 port 1910; max_retry_to_send 3; interval_to_send 2 sec;
            user_to_user on;",
        policy: "ipsec_mode transport;",
        ..BASE
    }
    .translate()
    .unwrap();
    let p = &c.peers[0];
    assert_eq!(p.address, "192.0.2.7:1910".parse().unwrap());
    assert_eq!(p.local, ip("192.0.2.1"), "the listen address of the family");
    assert_eq!(p.mode, IpsecMode::Transport);
    assert!(p.user_to_user);
    assert_eq!(
        (p.retransmit_base, p.retransmit_tries),
        (Duration::from_secs(2), 3)
    );
}

#[test]
fn the_selector_reqid_wins_and_an_inbound_selector_is_turned_around() {
    let text = BASE.text().replace(
        "selector out { direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24 port 80;\n  upper_layer_protocol tcp; policy_index pol; };",
        "",
    );
    let text = format!(
        "{}\n",
        text.replace(
            "remote peer { acceptable_kmp { kink; };",
            "remote peer { acceptable_kmp { kink; }; selector_index in;"
        )
        .replace(
            "policy_index pol; };\npolicy",
            "policy_index pol; reqid 77; };\npolicy"
        )
    );
    let loaded = libracoon::config::parse_str(&text, "t.conf", &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let c = translate(&loaded.config).unwrap();
    let p = &c.peers[0];
    assert_eq!(p.reqid, 77);
    assert_eq!(p.selector.src, (ip("198.51.100.0"), ip("198.51.100.255")));
    assert_eq!(p.selector.dst, (ip("203.0.113.0"), ip("203.0.113.255")));
}

#[test]
fn listen_errors() {
    assert_eq!(
        Conf {
            interface: "ike 192.0.2.1;",
            ..BASE
        }
        .error(),
        "interface { kink { ADDRESS; }; }: list the addresses kinkd should listen on"
    );
    assert_eq!(
        Conf {
            interface: "kink MY_IPV4;",
            ..BASE
        }
        .error(),
        "interface { kink { 0.0.0.0; }; }: list concrete addresses, not a wildcard"
    );
}

#[test]
fn principal_errors() {
    assert_eq!(
        Conf {
            kink: "peers_principal \"kink/b@X\";",
            ..BASE
        }
        .error(),
        "remote peer: kink { my_principal \"kink/HOST@REALM\"; } is required (our principal, whose key is in the keytab)"
    );
    assert_eq!(
        Conf {
            kink: "my_principal \"kink/a@X\";",
            ..BASE
        }
        .error(),
        "remote peer: kink { peers_principal \"kink/PEER@REALM\"; } is required (the principal we get tickets for)"
    );
    assert_eq!(
        Conf {
            extra: "remote other { acceptable_kmp kink; kink { my_principal \"kink/c@X\"; peers_principal \"kink/d@X\"; }; };",
            ..BASE
        }
        .error(),
        "remote other: my_principal \"kink/c@X\" differs from \"kink/a.example@EXAMPLE\" of remote peer: kinkd has one principal, so every KINK remote must name the same"
    );
}

#[test]
fn no_kink_remote_or_no_selector() {
    let text = "interface { kink 192.0.2.1; };
remote r { acceptable_kmp ikev2; ikev2 { kmp_enc_alg aes128_gcm16; kmp_prf_alg hmac_sha2_256;
  kmp_dh_group 19; kmp_auth_method psk; pre_shared_key \"/k\"; }; };";
    let loaded = libracoon::config::parse_str(text, "t.conf", &|_| None).unwrap();
    assert_eq!(
        format!("{:#}", translate(&loaded.config).unwrap_err()),
        "no remote block lists kink in acceptable_kmp: nothing for kinkd to negotiate"
    );
    let c = Conf {
        extra: "remote other { acceptable_kmp kink; kink { my_principal \"kink/a.example@EXAMPLE\"; peers_principal \"kink/d@X\"; }; };",
        ..BASE
    };
    assert_eq!(
        c.error(),
        "remote other: no selector and policy refer to this remote (policy remote_index, or the remote's selector_index), so there are no SAs to negotiate"
    );
}

#[test]
fn peer_address_errors() {
    assert_eq!(
        Conf {
            policy: "ipsec_mode transport;",
            ..BASE
        }
        .error(),
        "remote peer: no peer address: set kink { peers_ipaddr ADDRESS; } (or, in tunnel mode, policy pol's peers_sa_ipaddr)"
    );
    assert_eq!(
        Conf {
            kink: "my_principal \"kink/a@X\"; peers_principal \"kink/b@X\"; peers_ipaddr IP_RW;",
            ..BASE
        }
        .error(),
        "remote peer: kink { peers_ipaddr IP_RW; }: kinkd needs the peer's address (KINK has no road warriors)"
    );
    assert_eq!(
        Conf {
            interface: "kink 2001:db8::1;",
            kink: "my_principal \"kink/a@X\"; peers_principal \"kink/b@X\"; peers_ipaddr 192.0.2.2;",
            policy: "ipsec_mode transport;",
            ..BASE
        }
        .error(),
        "remote peer: no interface { kink { ...; }; } address of the family of the peer 192.0.2.2"
    );
}

#[test]
fn algorithm_errors() {
    assert_eq!(
        Conf {
            sa: "sa_protocol ah; ah_auth_alg hmac_sha1;",
            ..BASE
        }
        .error(),
        "remote peer: ipsec ie uses AH (sa esp): kinkd negotiates ESP only; use an ESP sa block"
    );
    assert_eq!(
        Conf {
            sa: "sa_protocol esp; esp_enc_alg 3des_cbc; esp_auth_alg hmac_sha1;",
            ..BASE
        }
        .error(),
        "remote peer: sa esp: none of its esp_enc_alg is implemented (aes128_cbc, aes256_cbc, aes128_gcm16, aes256_gcm16, chacha20_poly1305)"
    );
    assert_eq!(
        Conf {
            sa: "sa_protocol esp; esp_enc_alg aes128_cbc; esp_auth_alg hmac_md5;",
            ..BASE
        }
        .error(),
        "remote peer: sa esp: a non-AEAD esp_enc_alg needs an implemented esp_auth_alg (hmac_sha1, hmac_sha2_256, hmac_sha2_384, hmac_sha2_512)"
    );
}

#[test]
fn retry_and_reqid_errors() {
    assert_eq!(
        Conf {
            kink: "my_principal \"kink/a@X\"; peers_principal \"kink/b@X\"; max_retry_to_send 0;",
            ..BASE
        }
        .error(),
        "remote peer: max_retry_to_send 0: a KINK command must be sent at least once"
    );
    let text = BASE
        .text()
        .replace("policy_index pol; };\nselector in", "policy_index pol; reqid 9; };\nselector in")
        + "remote two { acceptable_kmp kink; kink { my_principal \"kink/a.example@EXAMPLE\"; peers_principal \"kink/c@X\"; }; };
selector two_out { direction outbound; src 198.51.100.0/24; dst 192.0.2.128/25; policy_index pol2; reqid 9; };
policy pol2 { action auto_ipsec; remote_index two; ipsec_index { ie; }; ipsec_mode tunnel; my_sa_ipaddr 192.0.2.1; peers_sa_ipaddr 192.0.2.3; };";
    let loaded = libracoon::config::parse_str(&text, "t.conf", &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        format!("{:#}", translate(&loaded.config).unwrap_err()),
        "remote peer and remote two use the same reqid 9: give each selector its own"
    );
}
