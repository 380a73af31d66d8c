//! qtinfo's diagnostics: a [`Snapshot`] of one target (owned copies of its admin
//! records), the `-a` table view, the `--json` form and the duration format.

use std::io::Write;

use qtfs_proto::consts;
use qtfs_proto::*;

use crate::Failure;
use crate::target::{Conn, Target, refused};

/// Owned copies of the admin records (the wire types borrow their buffers).
struct InfoRow {
    component: String,
    version: String,
    pid: u32,
    cores: u32,
    uptime_ms: u64,
    sessions: u32,
    connections: u32,
    channels: u32,
    log_level: u32,
}

struct Snapshot {
    info: Option<InfoRow>,
    counters: Vec<OpCounter>,
    window_ms: u64,
    /// The records of the connection and channel listings, as they came (empty when the
    /// target does not answer a listing: an older daemon).
    conns: Vec<u8>,
    chans: Vec<u8>,
}

impl Snapshot {
    fn conns(&self) -> impl Iterator<Item = ConnInfo<'_>> {
        RecordIter::new(&self.conns).filter_map(Result::ok)
    }

    fn chans(&self) -> impl Iterator<Item = ChanInfo<'_>> {
        RecordIter::new(&self.chans).filter_map(Result::ok)
    }
}

fn snapshot(target: &Target) -> Result<Snapshot, Failure> {
    let mut c = Conn::open(target)?;
    let info = c.call(Op::ADMIN_INFO, &Empty {}).ok().and_then(|r| {
        let i = r.decode::<AdminInfo>().ok()?;
        Some(InfoRow {
            component: i.component.display().into_owned(),
            version: i.version.display().into_owned(),
            pid: i.pid,
            cores: i.cores,
            uptime_ms: i.uptime_ms,
            sessions: i.sessions,
            connections: i.connections,
            channels: i.channels,
            log_level: i.log_level,
        })
    });
    let r = c.call(Op::ADMIN_COUNTERS, &CountersReq { flags: 0 }).map_err(|e| refused(target, "counters", e))?;
    let cr = r.decode::<CountersRsp>().map_err(|e| refused(target, "counters", e))?;
    let counters: Vec<OpCounter> =
        cr.records.0.chunks_exact(OpCounter::DESC.size).map(<OpCounter as wire::Fixed>::get).collect();
    let window_ms = cr.window_ms;
    let conns =
        c.call(Op::ADMIN_CONNS, &Empty {}).ok().and_then(|r| Some(r.decode::<ConnsRsp>().ok()?.records.0.to_vec()));
    let chans = c
        .call(Op::ADMIN_CHANNELS, &Empty {})
        .ok()
        .and_then(|r| Some(r.decode::<ChannelsRsp>().ok()?.records.0.to_vec()));
    Ok(Snapshot { info, counters, window_ms, conns: conns.unwrap_or_default(), chans: chans.unwrap_or_default() })
}

fn op_name(op: u16) -> String {
    Op::from_u16(op).map(|o| o.name().to_string()).unwrap_or_else(|| format!("op{op:#06x}"))
}

pub(crate) fn show_all(target: &Target, proxy: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let s = snapshot(target)?;
    if let Some(i) = &s.info {
        let _ = writeln!(
            out,
            "qtfs {} {} (pid {}, {} cores, up {}) — log level {}",
            i.component,
            i.version,
            i.pid,
            i.cores,
            fmt_dur(i.uptime_ms),
            consts::log_level_name(i.log_level)
        );
        let _ = writeln!(out, "sessions {}, connections {}, channels {}", i.sessions, i.connections, i.channels);
    }
    let _ = writeln!(out, "\ncounters over the last {}:", fmt_dur(s.window_ms));
    let _ = writeln!(
        out,
        "{:<18} {:>10} {:>8} {:>12} {:>12} {:>9} {:>9} {:>9}",
        "operation", "requests", "errors", "bytes in", "bytes out", "p50 µs", "p99 µs", "p999 µs"
    );
    let mut total = (0u64, 0u64);
    for c in &s.counters {
        total.0 += c.requests;
        total.1 += c.errors;
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>8} {:>12} {:>12} {:>9.1} {:>9.1} {:>9.1}",
            op_name(c.op),
            c.requests,
            c.errors,
            c.bytes_in,
            c.bytes_out,
            c.lat_p50_ns as f64 / 1e3,
            c.lat_p99_ns as f64 / 1e3,
            c.lat_p999_ns as f64 / 1e3
        );
    }
    let _ = writeln!(out, "{:<18} {:>10} {:>8}", "total", total.0, total.1);
    if !proxy || !s.conns.is_empty() {
        let head = format!(
            "{:>6} {:>5} {:<12} {:>16} {:>8} {:>10} {:>12} {:>12}  peer",
            "id", "core", "state", "session", "inflight", "requests", "bytes in", "bytes out"
        );
        let rows = s.conns().map(|c| {
            let state = consts::conn_state_name(c.state);
            let (id, core, session, inflight, requests) = (c.conn_id, c.core, c.session, c.inflight, c.requests);
            let (bytes_in, bytes_out, peer) = (c.bytes_in, c.bytes_out, c.peer.display());
            format!(
                "{id:>6} {core:>5} {state:<12} {session:>16x} {inflight:>8} {requests:>10} {bytes_in:>12} {bytes_out:>12}  {peer}"
            )
        });
        table(out, "connections", &head, rows);
    }
    if proxy || !s.chans.is_empty() {
        let head = format!(
            "{:>6} {:>10} {:>5} {:>6} {:>10} {:>10} {:>12} {:>12}  path",
            "conn", "channel", "kind", "state", "credit tx", "credit rx", "bytes in", "bytes out"
        );
        let rows = s.chans().map(|c| {
            let (conn, channel, kind, state, tx, rx) =
                (c.conn_id, c.channel, c.kind, c.state, c.credit_tx, c.credit_rx);
            let (bytes_in, bytes_out, path) = (c.bytes_in, c.bytes_out, c.path.display());
            format!(
                "{conn:>6} {channel:>10x} {kind:>5} {state:>6} {tx:>10} {rx:>10} {bytes_in:>12} {bytes_out:>12}  {path}"
            )
        });
        table(out, "channels", &head, rows);
    }
    Ok(())
}

/// A titled table: a blank line, `title:`, the heading line, one line per row.
fn table(out: &mut dyn Write, title: &str, head: &str, rows: impl Iterator<Item = String>) {
    let _ = writeln!(out, "\n{title}:\n{head}");
    for r in rows {
        let _ = writeln!(out, "{r}");
    }
}

pub(crate) fn all_json(target: &Target) -> Result<serde_json::Value, Failure> {
    let s = snapshot(target)?;
    Ok(serde_json::json!({
        "target": target.label(),
        "info": s.info.as_ref().map(|i| serde_json::json!({
            "component": i.component, "version": i.version, "pid": i.pid, "cores": i.cores,
            "uptime_ms": i.uptime_ms, "sessions": i.sessions, "connections": i.connections,
            "channels": i.channels, "log_level": consts::log_level_name(i.log_level),
        })),
        "window_ms": s.window_ms,
        "counters": s.counters.iter().map(|c| serde_json::json!({
            "op": op_name(c.op), "requests": c.requests, "errors": c.errors,
            "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
            "p50_ns": c.lat_p50_ns, "p99_ns": c.lat_p99_ns, "p999_ns": c.lat_p999_ns, "max_ns": c.lat_max_ns,
        })).collect::<Vec<_>>(),
        "connections": s.conns().map(|c| serde_json::json!({
            "id": c.conn_id, "session": format!("{:x}", c.session), "core": c.core,
            "state": consts::conn_state_name(c.state), "inflight": c.inflight, "channels": c.channels,
            "requests": c.requests, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out, "peer": c.peer.display(),
        })).collect::<Vec<_>>(),
        "channels": s.chans().map(|c| serde_json::json!({
            "conn": c.conn_id, "channel": c.channel, "kind": c.kind, "state": c.state,
            "credit_tx": c.credit_tx, "credit_rx": c.credit_rx, "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out, "path": c.path.display(),
        })).collect::<Vec<_>>(),
    }))
}

fn fmt_dur(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{:01}s", s, ms % 1000 / 100)
    }
}
