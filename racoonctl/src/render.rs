//! Answers as text: tables for people, or with `--json` the daemon's
//! answer as one line of JSON (the `ResponseBody`, or one `EventRecord` per
//! line for `watch`), exactly as `docs/control-protocol.md` describes it.

use std::fmt::Write as _;

use libracoon::ctl::proto::{
    ChildSaStatus, DaemonStatus, EventRecord, IkeSaStatus, KinkSaStatus, PolicyStatus, ResponseBody,
};
use serde::Serialize;

/// A response body, as a table or JSON.
pub(crate) fn body(body: &ResponseBody, as_json: bool) -> String {
    if as_json {
        return json(body);
    }
    match body {
        ResponseBody::Sas(sas) => ike_sas(sas),
        ResponseBody::KinkSas(sas) => kink_sas(sas),
        ResponseBody::Status(status) => daemon_status(status),
        ResponseBody::Done { message } => message.clone(),
        ResponseBody::Policies(p) => policies(p),
        ResponseBody::Kernel(k) => json(k),
    }
}

/// The `show policy` table.
fn policies(list: &[PolicyStatus]) -> String {
    if list.is_empty() {
        return "no policies".to_owned();
    }
    let header = [
        "SOURCE", "DIR", "SRC", "DST", "PROTO", "ACTION", "REQID", "TUNNEL",
    ]
    .map(String::from);
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|p| {
            let action = match &p.mode {
                Some(mode) => format!("{} {mode}", p.action),
                None => p.action.clone(),
            };
            [
                match &p.remote {
                    Some(r) => format!("{} ({r})", p.source),
                    None => p.source.clone(),
                },
                p.direction.clone(),
                p.src.clone(),
                p.dst.clone(),
                if p.proto == 0 {
                    "any".to_owned()
                } else {
                    p.proto.to_string()
                },
                action,
                p.reqid.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                p.tunnel.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let widths = column_widths(std::iter::once(&header).chain(&rows));
    let mut out = table_line(&header, &widths);
    for row in &rows {
        out.push_str(&table_line(row, &widths));
    }
    out
}

/// kinkd's `show sa` table: one row per SA pair or negotiation.
fn kink_sas(sas: &[KinkSaStatus]) -> String {
    if sas.is_empty() {
        return "no KINK SAs".to_owned();
    }
    let header = ["PEER", "STATE", "ROLE", "SPI IN", "SPI OUT", "ALGORITHMS"].map(String::from);
    let rows: Vec<[String; 6]> = sas
        .iter()
        .map(|s| {
            [
                s.peer.clone(),
                s.state.clone(),
                s.role.clone(),
                s.spi_in.clone(),
                s.spi_out.clone(),
                if s.esp_algs.is_empty() {
                    "-".to_owned()
                } else {
                    s.esp_algs.clone()
                },
            ]
        })
        .collect();
    let widths = column_widths(std::iter::once(&header).chain(&rows));
    let mut out = table_line(&header, &widths);
    for row in &rows {
        out.push_str(&table_line(row, &widths));
    }
    out
}

/// An event as one line.
pub(crate) fn event(event: &EventRecord, as_json: bool) -> String {
    if as_json {
        return json(event);
    }
    let sa = event
        .sa
        .as_deref()
        .map(|spi| format!(" [{spi}]"))
        .unwrap_or_default();
    format!("{} {}{sa} {}", event.time, event.kind, event.message)
}

/// Compact JSON on one line.
pub(crate) fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("control messages serialize: plain structs and strings")
}

/// The `show sa` table: one row per IKE SA, each followed by its SPIs and
/// its CHILD SAs, indented.
fn ike_sas(sas: &[IkeSaStatus]) -> String {
    if sas.is_empty() {
        return "no IKE SAs".to_owned();
    }
    let header = ["NAME", "STATE", "PEER", "ALGORITHMS", "AGE"].map(String::from);
    let rows: Vec<[String; 5]> = sas.iter().map(ike_row).collect();
    let widths = column_widths(std::iter::once(&header).chain(&rows));
    let mut out = table_line(&header, &widths);
    for (sa, row) in sas.iter().zip(&rows) {
        out.push_str(&table_line(row, &widths));
        out.push_str(&ike_details(sa));
        for child in &sa.children {
            out.push_str(&child_sa(child));
        }
    }
    out
}

fn ike_row(sa: &IkeSaStatus) -> [String; 5] {
    let peer = if sa.peer_id.is_empty() {
        sa.remote.clone()
    } else {
        format!("{} ({})", sa.remote, sa.peer_id)
    };
    [
        sa.name.clone(),
        sa.state.clone(),
        peer,
        sa.ike_algs.clone(),
        duration(sa.age_secs),
    ]
}

fn ike_details(sa: &IkeSaStatus) -> String {
    format!(
        "    {}  SPIs {}_i {}_r  local {}\n",
        sa.role, sa.spi_i, sa.spi_r, sa.local
    )
}

fn child_sa(child: &ChildSaStatus) -> String {
    let encap = if child.encap { " UDP-encap" } else { "" };
    let mut out = format!(
        "    CHILD  in {}  out {}  {}{encap}  {}\n",
        child.spi_in, child.spi_out, child.mode, child.esp_algs
    );
    let indent = "           ";
    let (local, remote) = (child.local_ts.join(", "), child.remote_ts.join(", "));
    let _ = writeln!(out, "{indent}{local} === {remote}");
    let _ = writeln!(
        out,
        "{indent}in {}, {} packets  out {}, {} packets",
        bytes(child.in_bytes),
        child.in_packets,
        bytes(child.out_bytes),
        child.out_packets
    );
    out
}

/// `show status` as aligned `label  value` lines.
fn daemon_status(s: &DaemonStatus) -> String {
    let backend = if s.carries_traffic {
        format!("{} (carries traffic)", s.kernel_backend)
    } else {
        format!("{} (SAs carry no traffic)", s.kernel_backend)
    };
    let listen = if s.listen.is_empty() {
        "nothing".to_owned()
    } else {
        s.listen.join(", ")
    };
    // kinkd has no IKE SAs: the same counts are its SA pairs.
    let sas = if s.daemon == "kinkd" {
        format!(
            "SA pairs        {} ({} negotiating)",
            s.ike_sas, s.half_open
        )
    } else {
        format!("IKE SAs         {} ({} half-open)", s.ike_sas, s.half_open)
    };
    let mut out = format!(
        "{} {}, pid {}, up {}\n\
         kernel backend  {backend}\n\
         {sas}\n\
         listening on    {listen}\n",
        s.daemon,
        s.version,
        s.pid,
        duration(s.uptime_secs),
    );
    if !s.counters.is_empty() {
        let list: Vec<String> = s.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "counters        {}", list.join(", "));
    }
    out
}

/// The widest cell of each column.
fn column_widths<'a, const N: usize>(rows: impl Iterator<Item = &'a [String; N]>) -> [usize; N] {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    widths
}

/// Cells padded to their column, two spaces apart, no trailing blanks.
fn table_line<const N: usize>(cells: &[String; N], widths: &[usize; N]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        let _ = write!(line, "{cell:<width$}  ");
    }
    let mut line = line.trim_end().to_owned();
    line.push('\n');
    line
}

/// `42s`, `5m 03s`, `1h 02m 03s`, `2d 03h 04m`.
fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h:02}h {m:02}m"),
    }
}

/// `512 B`, `120.6 KiB`, `1.5 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Display only: f64's 53 bits are plenty for one decimal.
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Rounds to 1024.0 at one decimal: say 1.0 of the next unit instead.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests;
