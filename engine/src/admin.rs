//! The admin socket (`/var/run/qtfs/engine.sock`, mode 0600) for `qtcfg` and `qtinfo`:
//! whitelist list/add/delete, log level, counters, connection and channel states. Served
//! by one plain thread: admin traffic is rare and must never touch the cores' loops,
//! which pick whitelist changes up through the generation counter.

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::*;

use crate::Shared;
use crate::whitelist::{Entry, Whitelist};

pub use qtfs_daemon::admin::bind;
use qtfs_daemon::admin::{counter_records, info, log_level, respond};

/// Serves admin connections until the engine shuts down.
pub fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let sh = shared.clone();
    let handler = Arc::new(move |h: &FrameHeader, p: &[u8], out: &mut Vec<u8>| handle(&sh, h, p, out));
    qtfs_daemon::admin::serve(listener, &shared.shutdown, "qtfs-admin-conn", handler);
}

/// Applies `f` to a copy of the whitelist and publishes the result to every core.
fn update_whitelist<T>(
    shared: &Shared,
    persist: bool,
    f: impl FnOnce(&mut Whitelist) -> Result<T, i32>,
) -> Result<T, i32> {
    let mut guard = shared.whitelist.write();
    let mut wl = (**guard).clone();
    let r = f(&mut wl)?;
    if persist && let Err(e) = wl.persist(&shared.cfg.whitelist) {
        tracing::error!(file = %shared.cfg.whitelist.display(), "cannot persist the whitelist: {e}");
        return Err(e.raw_os_error().unwrap_or(errno::EIO));
    }
    *guard = Arc::new(wl);
    shared.wl_gen.fetch_add(1, Ordering::AcqRel);
    Ok(r)
}

fn handle(shared: &Shared, h: &FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<(), i32> {
    if !h.is_request() {
        return Err(errno::EPROTO);
    }
    let op = h.op().ok_or(errno::ENOSYS)?;
    let bad = |_| errno::EBADMSG;
    match op {
        Op::ADMIN_INFO => {
            let base = info(b"engine", shared.started, &shared.log_level);
            let conns = shared.conns.lock().len() as u32;
            let rsp = AdminInfo {
                cores: shared.cfg.cores as u32,
                sessions: shared.sessions.len() as u32,
                connections: conns,
                channels: shared.chans.lock().len() as u32,
                ..base
            };
            respond(out, h, &rsp);
        }
        Op::ADMIN_WL_LIST => {
            let m = WlListReq::decode(payload).map_err(bad)?;
            let wl = shared.whitelist.read().clone();
            let types: Vec<WlType> = if m.wl_type == consts::WL_ALL {
                WlType::ALL.to_vec()
            } else {
                vec![WlType::from_u32(m.wl_type).ok_or(errno::EINVAL)?]
            };
            let mut recs = Vec::new();
            let mut count = 0;
            for t in types {
                for (i, e) in wl.entries(t).iter().enumerate() {
                    // As written: a symlinked entry is listed with the user's spelling.
                    WlEntry { wl_type: t as u32, index: i as u32, path: Path(e.path()) }.encode(&mut recs);
                    count += 1;
                }
            }
            respond(out, h, &WlListRsp { count, entries: Rest(&recs) });
        }
        Op::ADMIN_WL_ADD => {
            let m = WlAddReq::decode(payload).map_err(bad)?;
            let t = WlType::from_u32(m.wl_type).ok_or(errno::EINVAL)?;
            // Resolved (file system work that may block) before the whitelist lock is taken.
            let entry = Entry::new(t, m.path.0).map_err(|e| e.errno())?;
            let index = update_whitelist(shared, m.flags & consts::WL_PERSIST != 0, |wl| {
                wl.insert(t, entry).map_err(|e| e.errno())
            })?;
            tracing::info!(group = t.section(), path = %m.path.display(), index, "whitelist entry added");
            respond(out, h, &WlAddRsp { index });
        }
        Op::ADMIN_WL_DEL => {
            let m = WlDelReq::decode(payload).map_err(bad)?;
            let t = WlType::from_u32(m.wl_type).ok_or(errno::EINVAL)?;
            let gone = update_whitelist(shared, m.flags & consts::WL_PERSIST != 0, |wl| {
                wl.delete(t, m.index).map_err(|e| e.errno())
            })?;
            tracing::info!(group = t.section(), path = %String::from_utf8_lossy(gone.path()), "whitelist entry deleted");
            respond(out, h, &Empty {});
        }
        Op::ADMIN_LOG_LEVEL => log_level(out, h, payload, &shared.log_level, &*shared.set_log_level)?,
        Op::ADMIN_COUNTERS => {
            let m = CountersReq::decode(payload).map_err(bad)?;
            let (counters, window_ms) = crate::stats::merge(&shared.stats, m.flags & consts::COUNTERS_CLEAR != 0);
            let recs = counter_records(&counters);
            respond(out, h, &CountersRsp { count: counters.len() as u32, window_ms, records: Rest(&recs) });
        }
        Op::ADMIN_CLEAR => {
            crate::stats::merge(&shared.stats, true);
            respond(out, h, &Empty {});
        }
        Op::ADMIN_CONNS => {
            let conns: Vec<_> = shared.conns.lock().values().cloned().collect();
            let mut recs = Vec::new();
            let mut count = 0u32;
            for c in conns {
                let session = c.session.load(Ordering::Relaxed);
                let handles = if session != 0 { shared.sessions.open_handles() as u32 } else { 0 };
                let peer = c.peer.as_bytes();
                ConnInfo {
                    conn_id: c.id,
                    session,
                    core: c.core,
                    state: c.state.load(Ordering::Relaxed),
                    inflight: c.inflight.load(Ordering::Relaxed),
                    channels: c.channels.load(Ordering::Relaxed),
                    handles,
                    requests: c.requests.load(Ordering::Relaxed),
                    bytes_in: c.bytes_in.load(Ordering::Relaxed),
                    bytes_out: c.bytes_out.load(Ordering::Relaxed),
                    peer: Name(&peer[..peer.len().min(MAX_NAME)]),
                }
                .encode(&mut recs);
                count += 1;
            }
            respond(out, h, &ConnsRsp { count, records: Rest(&recs) });
        }
        Op::ADMIN_CHANNELS => {
            let mut chans: Vec<_> = shared.chans.lock().values().cloned().collect();
            chans.sort_by_key(|c| (c.conn_id, c.channel));
            let recs = qtfs_chan::listing::records(chans.iter().map(|c| &**c));
            respond(out, h, &qtfs_chan::listing::response(&recs));
        }
        _ => return Err(errno::ENOSYS),
    }
    Ok(())
}
