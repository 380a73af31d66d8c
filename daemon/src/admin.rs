//! The admin socket every daemon serves to `qtcfg`/`qtinfo`: a unix stream socket (mode
//! 0600) carrying QTP frames. One plain thread accepts; each connection gets a thread:
//! admin traffic is rare and must never touch a daemon's serving loops.
//!
//! Accept failures that repeat at once while the connection waits in the backlog
//! (EMFILE, ENFILE, ENOMEM) pause the loop, 10 ms doubling to 1 s, and are logged at
//! most once a second: otherwise one exhausted descriptor table turns into a busy loop
//! writing hundreds of thousands of log lines a second.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use qtfs_proto::consts::{self, errno};
use qtfs_proto::{
    AdminInfo, FrameHeader, HEADER_SIZE, LogLevelReq, LogLevelRsp, MAX_PAYLOAD, Name, OpCounter, VERSION, Wire,
    push_frame, wire,
};

/// Answers one admin request: appends the response frame(s) to `out`, or returns the
/// errno to answer with.
pub type Handler = dyn Fn(&FrameHeader, &[u8], &mut Vec<u8>) -> Result<(), i32> + Send + Sync;

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

/// Serves admin connections until `shutdown` is set (checked after each accept: the
/// daemon connects once to wake the loop). `name` names the per-connection threads.
pub fn serve(listener: UnixListener, shutdown: &AtomicBool, name: &str, handler: std::sync::Arc<Handler>) {
    let mut pause = Duration::ZERO;
    let mut last_log: Option<Instant> = None;
    for conn in listener.incoming() {
        if shutdown.load(Ordering::Acquire) {
            break;
        }
        match conn {
            Ok(s) => {
                pause = Duration::ZERO;
                let h = handler.clone();
                let _ = std::thread::Builder::new().name(name.into()).spawn(move || serve_conn(s, &*h));
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

fn serve_conn(mut s: UnixStream, handler: &Handler) {
    let mut buf = Vec::new();
    loop {
        let Some(h) = read_frame(&mut s, &mut buf) else { return };
        let mut out = Vec::new();
        if let Err(e) = handler(&h, &buf, &mut out) {
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

/// Appends the response to request `h` carrying `m`.
pub fn respond<'m, M: Wire<'m>>(out: &mut Vec<u8>, h: &FrameHeader, m: &M) {
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
pub fn log_level(
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
pub fn counter_records(counters: &[OpCounter]) -> Vec<u8> {
    let size = OpCounter::DESC.size;
    let mut recs = vec![0u8; counters.len() * size];
    for (c, r) in counters.iter().zip(recs.chunks_exact_mut(size)) {
        wire::Fixed::put(c, r);
    }
    recs
}
