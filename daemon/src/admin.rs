//! The admin socket every daemon serves to `qtcfg`/`qtinfo`: a unix stream socket (mode
//! 0600) carrying QTP frames. One plain thread accepts; each connection gets a thread:
//! admin traffic is rare and must never touch a daemon's serving loops.
//!
//! The requests are answered here, the same way for every daemon (what is malformed,
//! which whitelist groups exist, how records are encoded); the daemon supplies only its
//! state, through [`Admin`].
//!
//! Accept failures that repeat at once while the connection waits in the backlog
//! (EMFILE, ENFILE, ENOMEM) pause the loop, 10 ms doubling to 1 s, and are logged at
//! most once a second: otherwise one exhausted descriptor table turns into a busy loop
//! writing hundreds of thousands of log lines a second.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::{
    AdminInfo, ChannelsRsp, ConnInfo, ConnsRsp, CountersReq, CountersRsp, Empty, FrameHeader, HEADER_SIZE, LogLevelReq,
    LogLevelRsp, MAX_NAME, MAX_PAYLOAD, Name, Op, OpCounter, Rest, VERSION, Wire, WlAddReq, WlAddRsp, WlDelReq,
    WlEntry, WlListReq, WlListRsp, push_frame, wire,
};

/// A daemon's state as its admin socket reads and changes it. Requests are decoded and
/// checked before these are called (a whitelist group is one of [`Admin::WL_TYPES`]).
pub trait Admin: Send + Sync {
    /// The whitelist groups this daemon holds: `WL_ALL` lists these, others are refused
    /// with EOPNOTSUPP.
    const WL_TYPES: &'static [WlType];
    /// ADMIN_INFO: [`info`] with this daemon's counts filled in.
    fn info(&self) -> AdminInfo<'static>;
    /// ADMIN_LOG_LEVEL: the level now, and the function that changes it.
    fn log_level(&self) -> (&AtomicU32, &(dyn Fn(u32) + Send + Sync));
    /// ADMIN_WL_LIST: calls `each` with (group, index, path as written) for every entry
    /// of `types`, in that order, from one snapshot of the whitelist.
    fn wl_list(&self, types: &[WlType], each: &mut dyn FnMut(WlType, u32, &[u8]));
    /// ADMIN_WL_ADD: adds `path` to group `t` (to the whitelist file too with `persist`);
    /// returns the entry's index.
    fn wl_add(&self, t: WlType, path: &[u8], persist: bool) -> Result<u32, i32>;
    /// ADMIN_WL_DEL: deletes entry `index` of group `t`; returns the path it held.
    fn wl_del(&self, t: WlType, index: u32, persist: bool) -> Result<Vec<u8>, i32>;
    /// ADMIN_COUNTERS: the counters and the window they cover (ms); cleared after reading
    /// with `clear`.
    fn counters(&self, clear: bool) -> (Vec<OpCounter>, u64);
    /// ADMIN_CLEAR: clears the counters.
    fn clear(&self);
    /// ADMIN_CONNS: calls `each` with every connection's state (the peer is cut to
    /// `MAX_NAME` here).
    fn conns(&self, each: &mut dyn FnMut(ConnInfo<'_>));
    /// ADMIN_CHANNELS: the ChanInfo records and their count (`qtfs_chan::listing::records`).
    fn channels(&self) -> (Vec<u8>, u32);
}

/// Binds the admin socket at `path` (mode 0600): refuses if a running process serves it,
/// replaces a stale one.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by a running process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves admin connections for `admin` until `shutdown` is set (checked after each
/// accept: the daemon connects once to wake the loop). `name` names the per-connection
/// threads.
pub fn serve<A: Admin + 'static>(listener: UnixListener, shutdown: &AtomicBool, name: &str, admin: Arc<A>) {
    let mut pause = Duration::ZERO;
    let mut last_log: Option<Instant> = None;
    for conn in listener.incoming() {
        if shutdown.load(Ordering::Acquire) {
            break;
        }
        match conn {
            Ok(s) => {
                pause = Duration::ZERO;
                let a = admin.clone();
                let _ = std::thread::Builder::new().name(name.into()).spawn(move || serve_conn(s, &*a));
            }
            Err(e) => {
                pause = (pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_log = Some(Instant::now());
                    tracing::warn!(pause_ms = pause.as_millis() as u64, "admin accept: {e}");
                }
                std::thread::sleep(pause);
            }
        }
    }
}

fn serve_conn<A: Admin>(mut s: UnixStream, admin: &A) {
    let mut buf = Vec::new();
    loop {
        let Some(h) = read_frame(&mut s, &mut buf) else { return };
        let mut out = Vec::new();
        if let Err(e) = handle(admin, &h, &buf, &mut out) {
            out.clear();
            FrameHeader::error(h.op, h.id, e).push(&mut out);
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

fn read_frame(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<FrameHeader> {
    let mut hb = [0u8; HEADER_SIZE];
    s.read_exact(&mut hb).ok()?;
    let h = FrameHeader::decode(&hb, MAX_PAYLOAD).ok()?;
    buf.clear();
    buf.resize(h.len as usize, 0);
    s.read_exact(buf).ok()?;
    Some(h)
}

/// Answers one admin request: appends the response frame to `out`, or returns the errno
/// to answer with.
fn handle<A: Admin>(a: &A, h: &FrameHeader, p: &[u8], out: &mut Vec<u8>) -> Result<(), i32> {
    if !h.is_request() {
        return Err(errno::EPROTO);
    }
    let bad = |_| errno::EBADMSG;
    match h.op().ok_or(errno::ENOSYS)? {
        Op::ADMIN_INFO => respond(out, h, &a.info()),
        Op::ADMIN_WL_LIST => {
            let m = WlListReq::decode(p).map_err(bad)?;
            let one;
            let types = if m.wl_type == consts::WL_ALL {
                A::WL_TYPES
            } else {
                one = [wl_type::<A>(m.wl_type)?];
                &one[..]
            };
            let (mut recs, mut count) = (Vec::new(), 0u32);
            a.wl_list(types, &mut |t, index, path| {
                WlEntry { wl_type: t as u32, index, path: qtfs_proto::Path(path) }.encode(&mut recs);
                count += 1;
            });
            respond(out, h, &WlListRsp { count, entries: Rest(&recs) });
        }
        Op::ADMIN_WL_ADD => {
            let m = WlAddReq::decode(p).map_err(bad)?;
            let t = wl_type::<A>(m.wl_type)?;
            let index = a.wl_add(t, m.path.0, m.flags & consts::WL_PERSIST != 0)?;
            tracing::info!(group = t.section(), path = %m.path.display(), index, "whitelist entry added");
            respond(out, h, &WlAddRsp { index });
        }
        Op::ADMIN_WL_DEL => {
            let m = WlDelReq::decode(p).map_err(bad)?;
            let t = wl_type::<A>(m.wl_type)?;
            let gone = a.wl_del(t, m.index, m.flags & consts::WL_PERSIST != 0)?;
            tracing::info!(group = t.section(), path = %String::from_utf8_lossy(&gone), "whitelist entry deleted");
            respond(out, h, &Empty {});
        }
        Op::ADMIN_LOG_LEVEL => {
            let (level, set) = a.log_level();
            log_level(out, h, p, level, set)?;
        }
        Op::ADMIN_COUNTERS => {
            let m = CountersReq::decode(p).map_err(bad)?;
            let (counters, window_ms) = a.counters(m.flags & consts::COUNTERS_CLEAR != 0);
            let recs = counter_records(&counters);
            respond(out, h, &CountersRsp { count: counters.len() as u32, window_ms, records: Rest(&recs) });
        }
        Op::ADMIN_CLEAR => {
            a.clear();
            respond(out, h, &Empty {});
        }
        Op::ADMIN_CONNS => {
            let (mut recs, mut count) = (Vec::new(), 0u32);
            a.conns(&mut |c| {
                let peer = c.peer.0;
                ConnInfo { peer: Name(&peer[..peer.len().min(MAX_NAME)]), ..c }.encode(&mut recs);
                count += 1;
            });
            respond(out, h, &ConnsRsp { count, records: Rest(&recs) });
        }
        Op::ADMIN_CHANNELS => {
            let (recs, count) = a.channels();
            respond(out, h, &ChannelsRsp { count, records: Rest(&recs) });
        }
        _ => return Err(errno::ENOSYS),
    }
    Ok(())
}

/// The whitelist group a request names: EINVAL if none, EOPNOTSUPP if this daemon does
/// not hold it.
fn wl_type<A: Admin>(t: u32) -> Result<WlType, i32> {
    let t = WlType::from_u32(t).ok_or(errno::EINVAL)?;
    if A::WL_TYPES.contains(&t) { Ok(t) } else { Err(errno::EOPNOTSUPP) }
}

/// Appends the response to request `h` carrying `m`.
fn respond<'m, M: Wire<'m>>(out: &mut Vec<u8>, h: &FrameHeader, m: &M) {
    push_frame(out, FrameHeader::response(h.op, h.id, 0), m);
}

/// The ADMIN_INFO answer as every daemon gives it: its `component` name, this build's
/// version, the process, the uptime since `started`, the log level now; the counts (cores,
/// sessions, connections, channels) are zero, for the daemon to fill in.
pub fn info(component: &'static [u8], started: Instant, log_level: &AtomicU32) -> AdminInfo<'static> {
    AdminInfo {
        proto_version: VERSION as u16,
        pid: std::process::id(),
        cores: 0,
        uptime_ms: started.elapsed().as_millis() as u64,
        sessions: 0,
        connections: 0,
        channels: 0,
        log_level: log_level.load(Ordering::Relaxed),
        component: Name(component),
        version: Name(env!("CARGO_PKG_VERSION").as_bytes()),
    }
}

/// Answers ADMIN_LOG_LEVEL (`payload`): unless it only asks (`LOG_QUERY`), sets the level
/// through `set` and keeps it in `level`; the answer carries the level now.
fn log_level(
    out: &mut Vec<u8>,
    h: &FrameHeader,
    payload: &[u8],
    level: &AtomicU32,
    set: &(dyn Fn(u32) + Send + Sync),
) -> Result<(), i32> {
    let m = LogLevelReq::decode(payload).map_err(|_| errno::EBADMSG)?;
    if m.level != consts::LOG_QUERY {
        if m.level > consts::LOG_DEBUG {
            return Err(errno::EINVAL);
        }
        set(m.level);
        level.store(m.level, Ordering::Relaxed);
    }
    respond(out, h, &LogLevelRsp { level: level.load(Ordering::Relaxed) });
    Ok(())
}

/// The records of an ADMIN_COUNTERS answer: `counters`, one after the other.
fn counter_records(counters: &[OpCounter]) -> Vec<u8> {
    let size = OpCounter::DESC.size;
    let mut recs = vec![0u8; counters.len() * size];
    for (c, r) in counters.iter().zip(recs.chunks_exact_mut(size)) {
        wire::Fixed::put(c, r);
    }
    recs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon holding only the udsconnect group, one connection with a long peer name.
    struct Fake(AtomicU32);

    impl Admin for Fake {
        const WL_TYPES: &'static [WlType] = &[WlType::Udsconnect];
        fn info(&self) -> AdminInfo<'static> {
            info(b"fake", Instant::now(), &self.0)
        }
        fn log_level(&self) -> (&AtomicU32, &(dyn Fn(u32) + Send + Sync)) {
            (&self.0, &|_| {})
        }
        fn wl_list(&self, types: &[WlType], each: &mut dyn FnMut(WlType, u32, &[u8])) {
            assert_eq!(types, &[WlType::Udsconnect][..]);
            each(WlType::Udsconnect, 0, b"/run/a");
        }
        fn wl_add(&self, _t: WlType, _path: &[u8], _persist: bool) -> Result<u32, i32> {
            Ok(7)
        }
        fn wl_del(&self, _t: WlType, _index: u32, _persist: bool) -> Result<Vec<u8>, i32> {
            Ok(b"/run/a".to_vec())
        }
        fn counters(&self, _clear: bool) -> (Vec<OpCounter>, u64) {
            (Vec::new(), 0)
        }
        fn clear(&self) {}
        fn conns(&self, each: &mut dyn FnMut(ConnInfo<'_>)) {
            let peer = vec![b'p'; MAX_NAME + 10];
            each(ConnInfo {
                conn_id: 1,
                session: 0,
                core: 0,
                state: 0,
                inflight: 0,
                channels: 0,
                handles: 0,
                requests: 0,
                bytes_in: 0,
                bytes_out: 0,
                peer: Name(&peer),
            });
        }
        fn channels(&self) -> (Vec<u8>, u32) {
            (Vec::new(), 0)
        }
    }

    /// The answer to `op` carrying `m`: the response payload or the errno.
    fn ask<'m, M: Wire<'m>>(op: Op, m: &M) -> Result<Vec<u8>, i32> {
        let mut req = Vec::new();
        m.encode(&mut req);
        let h = FrameHeader::request(op, 1, req.len() as u32);
        let mut out = Vec::new();
        handle(&Fake(AtomicU32::new(consts::LOG_INFO)), &h, &req, &mut out)?;
        Ok(out[HEADER_SIZE..].to_vec())
    }

    #[test]
    fn whitelist_groups_are_checked_once_for_every_daemon() {
        let add = |wl_type| WlAddReq { wl_type, flags: 0, path: qtfs_proto::Path(b"/x") };
        assert_eq!(ask(Op::ADMIN_WL_ADD, &add(99)), Err(errno::EINVAL));
        assert_eq!(ask(Op::ADMIN_WL_ADD, &add(WlType::Open as u32)), Err(errno::EOPNOTSUPP));
        let r = ask(Op::ADMIN_WL_ADD, &add(WlType::Udsconnect as u32)).unwrap();
        assert_eq!(WlAddRsp::decode(&r).unwrap().index, 7);
        let r = ask(Op::ADMIN_WL_LIST, &WlListReq { wl_type: consts::WL_ALL }).unwrap();
        assert_eq!(WlListRsp::decode(&r).unwrap().count, 1);
        assert_eq!(ask(Op::ADMIN_WL_LIST, &WlListReq { wl_type: WlType::Open as u32 }), Err(errno::EOPNOTSUPP));
    }

    #[test]
    fn a_long_peer_is_cut_to_a_name() {
        let r = ask(Op::ADMIN_CONNS, &Empty {}).unwrap();
        let l = ConnsRsp::decode(&r).unwrap();
        assert_eq!(l.count, 1);
        let c = qtfs_proto::RecordIter::<ConnInfo>::new(l.records.0).next().unwrap().unwrap();
        assert_eq!(c.peer.0.len(), MAX_NAME);
    }
}
