//! spmd as an operator meets it: policies from the configuration shown by
//! `racoonctl show policy`, `reload` adding and removing a policy without
//! touching an unrelated SA, a SIGKILLed spmd whose successor cleans
//! up and lets negotiation work again, and an iked restarted under a
//! running spmd that gets its port 4500 back.
//!
//! Ignored by default (needs root and namespaces); CI runs them with
//! `cargo nextest run --run-ignored all`.

use std::time::Duration;

use interop::racoon2conf::{self, Algs, Family};
use interop::{Iked, Lab, require_root_and_tools};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn algs() -> Algs {
    Algs {
        ike_enc: "aes128_gcm16",
        ike_hash: "hmac_sha2_256",
        dh: "curve25519",
        esp_enc: "aes128_gcm16",
        esp_auth: "",
    }
}

/// Both peers up, the tunnel negotiated on the first packets from A.
fn tunnel_up(lab: &Lab) -> (Iked, Iked) {
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(lab, Family::V4, &algs(), "tunnel");
    let b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    let a = Iked::start(&lab.dir, &lab.a.netns, "a", &conf_a, None).expect("iked a");
    for d in [&a, &b] {
        d.wait_for_log("iked started", WAIT).expect("up");
    }
    ping_passes(lab, &a, &b);
    (a, b)
}

fn ping_passes(lab: &Lab, a: &Iked, b: &Iked) {
    let passed = interop::wait_for(
        || racoon2conf::ping_lan(&lab.a, &lab.b, Family::V4).is_ok(),
        WAIT,
    );
    assert!(
        passed,
        "no ping passed:\n--- A ---\n{}\n--- A spmd ---\n{}\n--- B ---\n{}",
        a.log(),
        a.spmd_log(),
        b.log()
    );
}

/// `racoonctl --json ARGS` on `d`, parsed.
fn ctl_json(d: &Iked, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = d.racoonctl(&all).expect("racoonctl runs");
    assert_eq!(code, 0, "racoonctl {args:?}: {out}{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn policies(d: &Iked) -> Vec<Value> {
    match ctl_json(d, &["show", "policy"]) {
        Value::Object(mut o) => match o.remove("policies") {
            Some(Value::Array(list)) => list,
            other => panic!("no policy list: {other:?}"),
        },
        other => panic!("unexpected answer {other}"),
    }
}

/// The inbound and outbound SPIs of every CHILD SA iked shows.
fn child_spis(d: &Iked) -> Vec<(String, String)> {
    let sas = ctl_json(d, &["show", "sa"]);
    let mut out = Vec::new();
    for sa in sas["sas"].as_array().into_iter().flatten() {
        for c in sa["children"].as_array().into_iter().flatten() {
            out.push((c["spi_in"].to_string(), c["spi_out"].to_string()));
        }
    }
    out
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn show_policy_lists_the_configured_selectors() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (a, _b) = tunnel_up(&lab);
    let list = policies(&a);
    assert_eq!(list.len(), 2, "{list:?}");
    let out = &list[0];
    assert_eq!(out["source"], "sel_out");
    assert_eq!(out["remote"], "peer");
    assert_eq!(out["direction"], "out");
    assert_eq!(out["src"], lab.a.lan_net_v4.to_string());
    assert_eq!(out["action"], "protect");
    assert_eq!(out["mode"], "tunnel");
    assert_eq!(out["reqid"], 1);
    let (code, table, _) = a.racoonctl(&["show", "policy"]).expect("racoonctl");
    assert_eq!(code, 0);
    assert!(table.starts_with("SOURCE"), "{table}");
    assert!(table.contains("sel_in (peer)"), "{table}");
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn reload_adds_and_removes_a_policy_without_touching_an_unrelated_sa() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (a, b) = tunnel_up(&lab);
    let before = child_spis(&a);
    assert_eq!(before.len(), 1, "one CHILD SA: {before:?}");
    let conf = std::fs::read_to_string(&a.paths().conf).expect("conf");
    let extra = "selector extra { direction outbound; src 198.51.100.0/24; dst 192.0.2.99; \
                 upper_layer_protocol \"any\"; policy_index pass; };\n\
                 policy pass { action none; };\n";
    std::fs::write(&a.paths().conf, format!("{conf}{extra}")).expect("write conf");
    let answer = ctl_json(&a, &["reload"]);
    assert_eq!(
        answer["done"]["message"], "reloaded: 1 policies added, 0 removed, 2 unchanged",
        "{answer}"
    );
    let list = policies(&a);
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(
        list.iter()
            .any(|p| p["source"] == "extra" && p["action"] == "bypass")
    );

    std::fs::write(&a.paths().conf, &conf).expect("restore conf");
    let answer = ctl_json(&a, &["reload"]);
    assert_eq!(
        answer["done"]["message"], "reloaded: 0 policies added, 1 removed, 2 unchanged",
        "{answer}"
    );
    assert_eq!(policies(&a).len(), 2);
    assert_eq!(child_spis(&a), before, "the CHILD SA was not touched");
    racoon2conf::ping_lan(&lab.a, &lab.b, Family::V4).expect("traffic still flows");

    // A broken configuration is refused and the running one stays.
    std::fs::write(&a.paths().conf, format!("{conf}selector broken {{")).expect("write");
    let (code, out, err) = a.racoonctl(&["reload"]).expect("racoonctl");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("racoon2.conf"),
        "the error names the file: {err}"
    );
    assert_eq!(policies(&a).len(), 2);
    drop(b);
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn spmd_killed_and_restarted_leaves_no_stale_policy_and_negotiation_works_again() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (mut a, b) = tunnel_up(&lab);
    a.crash_and_restart_spmd().expect("restart spmd");
    a.wait_for_log("lost spmd", WAIT)
        .expect("iked notices the crash");
    a.wait_for_log("spmd is back", WAIT)
        .expect("iked reconnects");
    assert!(
        a.spmd_log()
            .contains("removed 2 policies a previous spmd left behind"),
        "the successor cleans up after the journal:\n{}",
        a.spmd_log()
    );
    assert_eq!(policies(&a).len(), 2, "no stale or doubled policy");
    let rules = lab.a.netns.ip(&["rule", "show"]).expect("ip rule");
    assert_eq!(
        rules.matches("lookup 3948").count(),
        1,
        "one datapath rule:\n{rules}"
    );
    // iked deleted its IKE SA with the datapath; the next packets
    // negotiate a new one through the new spmd.
    ping_passes(&lab, &a, &b);
    assert_eq!(
        a.log().matches("initiating IKE SA").count(),
        2,
        "a second negotiation:\n{}",
        a.log()
    );
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn a_road_warrior_gets_dynamic_policies_from_the_responder_for_the_life_of_its_sa() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    let a_outer = lab.a.outer_v4.to_string();
    let rw = format!("peers_sa_ipaddr {a_outer};");
    assert!(conf_b.contains(&rw), "{conf_b}");
    let conf_b = conf_b.replace(&rw, "peers_sa_ipaddr IP_RW;");
    let b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    b.wait_for_log("iked started", WAIT).expect("b up");
    assert!(
        b.spmd_log().contains("no fixed peer address (IP_RW)"),
        "{}",
        b.spmd_log()
    );
    assert!(policies(&b).is_empty(), "nothing static for a road warrior");
    let a = Iked::start(
        &lab.dir,
        &lab.a.netns,
        "a",
        &conf_a,
        Some(lab.b.outer_v4.into()),
    )
    .expect("iked a");
    b.wait_for_log("dynamic policies", WAIT)
        .expect("B adds policies");
    let list = policies(&b);
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|p| p["source"] == "iked"), "{list:?}");
    let tunnel = format!("{} -> {a_outer}", lab.b.outer_v4);
    assert!(
        list.iter()
            .any(|p| p["direction"] == "out" && p["tunnel"] == tunnel.as_str()),
        "{list:?}"
    );
    ping_passes(&lab, &a, &b);
    let (code, out, err) = a.racoonctl(&["terminate", "all"]).expect("terminate");
    assert_eq!(code, 0, "{out}{err}");
    let gone = interop::wait_for(|| policies(&b).is_empty(), WAIT);
    assert!(
        gone,
        "B's dynamic policies go with the SA: {:?}",
        policies(&b)
    );
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn iked_restarted_under_a_running_spmd_gets_port_4500_back_and_carries_esp_in_udp() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    // ESP in UDP 4500, so that B's spmd reads the port iked hands it.
    let conf_a = conf_a.replacen("  ikev2 {\n", "  ikev2 {\n    force_udp_encap on;\n", 1);
    let mut b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    b.wait_for_log("iked's readers pause", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", b.log(), b.spmd_log()));
    // The old iked goes; spmd must let go of its copy of the socket, or
    // the new iked cannot bind port 4500 again.
    b.restart().expect("restart iked b");
    let started_twice = interop::wait_for(
        || b.log().matches("iked's readers pause").count() == 2,
        WAIT,
    );
    assert!(
        started_twice,
        "the restarted iked did not get port 4500 back:\n{}\n{}",
        b.log(),
        b.spmd_log()
    );
    assert!(b.spmd_log().contains("iked let go of"), "{}", b.spmd_log());
    let a = Iked::start(&lab.dir, &lab.a.netns, "a", &conf_a, None).expect("iked a");
    a.wait_for_log("iked started", WAIT).expect("a up");
    ping_passes(&lab, &a, &b);
    for (side, d) in [("A", &a), ("B", &b)] {
        assert!(
            d.log().contains("UDP-encapsulated Tunnel ESP"),
            "{side}: the CHILD SA is not in UDP:\n{}",
            d.log()
        );
    }
}
