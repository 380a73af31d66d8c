//! The admin socket (`--admin-socket`, mode 0600): the engine's admin framing, so that
//! `qtcfg`/`qtinfo` speak to udsproxyd exactly as to the engine. udsproxyd holds only
//! the udsconnect whitelist, kept in memory (the original's client-side whitelist was
//! runtime-only too): other groups and `WL_PERSIST` are refused with EOPNOTSUPP.
//!
//! One plain thread per admin connection; admin traffic never touches a relay loop.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use qtfs_proto::consts::{self, WlType};
use qtfs_proto::*;

use qtfs_daemon::admin::{counter_records, info, log_level, respond};

use crate::{Shared, sys};

pub fn serve(listener: OwnedFd, sh: Arc<Shared>) {
    let _ = sys::set_nonblock(listener.as_raw_fd(), false);
    let l = std::os::unix::net::UnixListener::from(listener);
    let shared = sh.clone();
    let handler = Arc::new(move |h: &FrameHeader, p: &[u8], out: &mut Vec<u8>| handle(&shared, h, p, out));
    qtfs_daemon::admin::serve(l, &sh.shutdown, "udsproxyd-admin-conn", handler);
}

fn udsconnect_only(t: u32) -> Result<(), i32> {
    if t == WlType::Udsconnect as u32 { Ok(()) } else { Err(errno::EOPNOTSUPP) }
}

fn handle(sh: &Shared, h: &FrameHeader, p: &[u8], out: &mut Vec<u8>) -> Result<(), i32> {
    if !h.is_request() {
        return Err(errno::EPROTO);
    }
    let bad = |_| errno::EBADMSG;
    match h.op().ok_or(errno::ENOSYS)? {
        Op::ADMIN_INFO => {
            let connected = sh.loops.iter().filter(|l| l.connected.load(Ordering::Relaxed)).count() as u32;
            let base = info(b"udsproxyd", sh.started, &sh.log_level);
            let rsp = AdminInfo {
                cores: sh.loops.len() as u32,
                sessions: connected,
                connections: connected,
                channels: sh.chans.lock().len() as u32,
                ..base
            };
            respond(out, h, &rsp);
        }
        Op::ADMIN_WL_LIST => {
            let m = WlListReq::decode(p).map_err(bad)?;
            if m.wl_type != consts::WL_ALL {
                udsconnect_only(m.wl_type)?;
            }
            let wl = sh.wl.read().clone();
            let mut recs = Vec::new();
            for (i, e) in wl.entries().iter().enumerate() {
                WlEntry { wl_type: WlType::Udsconnect as u32, index: i as u32, path: Path(e) }.encode(&mut recs);
            }
            respond(out, h, &WlListRsp { count: wl.entries().len() as u32, entries: Rest(&recs) });
        }
        Op::ADMIN_WL_ADD => {
            let m = WlAddReq::decode(p).map_err(bad)?;
            udsconnect_only(m.wl_type)?;
            if m.flags & consts::WL_PERSIST != 0 {
                return Err(errno::EOPNOTSUPP);
            }
            let index = sh.wl.write().add(m.path.0)?;
            tracing::info!(path = %m.path.display(), index, "udsconnect entry added");
            respond(out, h, &WlAddRsp { index });
        }
        Op::ADMIN_WL_DEL => {
            let m = WlDelReq::decode(p).map_err(bad)?;
            udsconnect_only(m.wl_type)?;
            if m.flags & consts::WL_PERSIST != 0 {
                return Err(errno::EOPNOTSUPP);
            }
            let gone = sh.wl.write().delete(m.index)?;
            tracing::info!(path = %String::from_utf8_lossy(&gone), "udsconnect entry deleted");
            respond(out, h, &Empty {});
        }
        Op::ADMIN_LOG_LEVEL => log_level(out, h, p, &sh.log_level, &*sh.set_log_level)?,
        Op::ADMIN_COUNTERS => {
            let m = CountersReq::decode(p).map_err(bad)?;
            let recs = counters(sh);
            let window_ms = sh.stats.since.lock().elapsed().as_millis() as u64;
            let b = counter_records(&recs);
            respond(out, h, &CountersRsp { count: recs.len() as u32, window_ms, records: Rest(&b) });
            if m.flags & consts::COUNTERS_CLEAR != 0 {
                sh.stats.clear();
            }
        }
        Op::ADMIN_CLEAR => {
            sh.stats.clear();
            respond(out, h, &Empty {});
        }
        Op::ADMIN_CONNS => {
            let mut recs = Vec::new();
            for (i, l) in sh.loops.iter().enumerate() {
                let up = l.connected.load(Ordering::Relaxed);
                let peer = sh.cfg.server.to_string();
                ConnInfo {
                    conn_id: i as u64,
                    session: l.conn_id.load(Ordering::Relaxed),
                    core: i as u32,
                    state: if up { consts::CONN_ACTIVE } else { consts::CONN_RECONNECTING },
                    inflight: 0,
                    channels: l.channels.load(Ordering::Relaxed),
                    handles: 0,
                    requests: l.frames.load(Ordering::Relaxed),
                    bytes_in: l.bytes_in.load(Ordering::Relaxed),
                    bytes_out: 0,
                    peer: Name(&peer.as_bytes()[..peer.len().min(MAX_NAME)]),
                }
                .encode(&mut recs);
            }
            respond(out, h, &ConnsRsp { count: sh.loops.len() as u32, records: Rest(&recs) });
        }
        Op::ADMIN_CHANNELS => {
            let mut chans: Vec<_> = sh.chans.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
            chans.sort_by_key(|(k, _)| *k);
            let recs = qtfs_chan::listing::records(chans.iter().map(|(_, c)| &**c));
            respond(out, h, &qtfs_chan::listing::response(&recs));
        }
        _ => return Err(errno::ENOSYS),
    }
    Ok(())
}

/// The counters as OpCounter records, in the rows `qtinfo -u` shows: CHAN_OPEN
/// (requests = requests on the request socket; errors = those not proxied or refused by
/// the engine; latency = engine round trip of the opens), CHAN_DATA (bytes from the
/// engine / to the engine), CHAN_SCM (descriptors passed), CHAN_CLOSE (channels closed on
/// an error). Engine reconnects are logged.
fn counters(sh: &Shared) -> Vec<OpCounter> {
    let s = &sh.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let hist = s.open_lat.lock();
    let zero = |op: Op| OpCounter {
        op: op as u16,
        requests: 0,
        errors: 0,
        bytes_in: 0,
        bytes_out: 0,
        lat_p50_ns: 0,
        lat_p99_ns: 0,
        lat_p999_ns: 0,
        lat_max_ns: 0,
    };
    vec![
        OpCounter {
            requests: l(&s.requests),
            errors: l(&s.passed) + l(&s.open_errors),
            lat_p50_ns: hist.value_at_quantile(0.5),
            lat_p99_ns: hist.value_at_quantile(0.99),
            lat_p999_ns: hist.value_at_quantile(0.999),
            lat_max_ns: hist.max(),
            ..zero(Op::CHAN_OPEN)
        },
        OpCounter { bytes_in: l(&s.bytes_down), bytes_out: l(&s.bytes_up), ..zero(Op::CHAN_DATA) },
        OpCounter { requests: l(&s.scm), ..zero(Op::CHAN_SCM) },
        OpCounter { errors: l(&s.chan_errors), ..zero(Op::CHAN_CLOSE) },
    ]
}
