//! rexec_server: the listening socket, single-instance lock, signal handling (SIGHUP
//! reloads the whitelist), and the first frame of every connection (REXEC_EXEC opens a
//! session, REXEC_ATTACH hands the connection to an existing one).
//!
//! One thread per session: each runs one poll loop over its own descriptors, so a
//! session streaming gigabytes or blocked on a slow reader never delays another, no
//! locks are taken on the data path, and a session's state needs no synchronisation.
//! Sessions are few (one per VM or command) and mostly idle, so threads cost little.

pub mod session;
pub mod spawn;
pub mod whitelist;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use qtfs_proto::{FrameHeader, HEADER_SIZE, MAX_PAYLOAD, Op, RexecAttachReq, RexecStarted, Wire};

use crate::error::{Context, Error, Result};
use crate::sys::{self, ExitKind};
use session::Session;
use whitelist::Whitelist;

pub const DEFAULT_SOCKET: &str = "/var/run/rexec/rexec_uds.sock";
pub const DEFAULT_WHITELIST: &str = "/etc/rexec/whitelist";

/// Server configuration (from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub whitelist: PathBuf,
    /// How long a detached session waits for REXEC_ATTACH.
    pub grace: Duration,
    /// How long a session whose connection reached EOF waits for REXEC_ATTACH before
    /// its group is killed (0 = EOF means the client died).
    pub eof_grace: Duration,
    /// Loader variables (LD_*, GCONV_PATH) let through.
    pub allow_env: Vec<String>,
    /// Receive window per stream announced to clients.
    pub window: u32,
}

/// A connection that asked to rejoin a session.
pub struct Attach {
    pub conn: UnixStream,
    pub received: u64,
    pub id: u64,
    pub peer: String,
}

/// What a session registers so that REXEC_ATTACH can find it.
pub struct SessionHandle {
    pub token: [u8; 16],
    pub tx: Sender<Attach>,
    pub wake: Arc<OwnedFd>,
}

/// State shared by the accept loop and the sessions.
pub struct Shared {
    pub cfg: Config,
    pub whitelist: RwLock<Whitelist>,
    pub sessions: Mutex<HashMap<i32, SessionHandle>>,
    pub seq: AtomicU64,
    /// RLIMIT_NOFILE at start, restored in children.
    pub nofile: (u64, u64),
    pub path_env: String,
}

/// The lock file beside the socket (`rexec_uds.sock` → `rexec_uds.lock`).
pub fn lock_path(socket: &Path) -> PathBuf {
    match socket.extension() {
        Some(e) if e == "sock" => socket.with_extension("lock"),
        _ => PathBuf::from(format!("{}.lock", socket.display())),
    }
}

/// True for variables that make the dynamic loader (or iconv) load code.
pub fn is_loader_var(key: &[u8]) -> bool {
    key.starts_with(b"LD_") || key == b"GCONV_PATH"
}

/// Runs the server until SIGTERM/SIGINT. Errors are startup failures.
pub fn run(cfg: Config) -> Result<()> {
    let wl = Whitelist::load(&cfg.whitelist)?;
    sys::umask(0o077);
    sys::ignore_sigpipe();
    let mask = sys::block_signals(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT]).ctx(|| "sigprocmask".into())?;
    let sigfd = sys::signalfd(&mask).ctx(|| "signalfd".into())?;
    let dir = cfg.socket.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !dir.exists() {
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let lock = lock_path(&cfg.socket);
    let lockf = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .ctx(|| format!("open {}", lock.display()))?;
    if sys::flock(lockf.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB).is_err() {
        return Err(Error::Usage(format!("another rexec_server is running ({} is locked)", lock.display())));
    }
    // We hold the lock: a socket file left there is stale.
    let _ = std::fs::remove_file(&cfg.socket);
    let listener = sys::unix_listen(&cfg.socket, 128).ctx(|| format!("listen on {}", cfg.socket.display()))?;
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("chmod {}", cfg.socket.display()))?;
    // Sessions relay many descriptors; children get the original limit back.
    let nofile = sys::nofile_limit();
    sys::set_nofile_soft(nofile.1.min(1 << 20));
    let shared = Arc::new(Shared {
        whitelist: RwLock::new(wl),
        sessions: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
        nofile,
        path_env: std::env::var("PATH")
            .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        cfg,
    });
    tracing::info!(
        socket = %shared.cfg.socket.display(),
        whitelist = %shared.cfg.whitelist.display(),
        entries = shared.whitelist.read().map(|w| w.len()).unwrap_or(0),
        grace_s = shared.cfg.grace.as_secs_f64(),
        "rexec_server ready"
    );
    loop {
        let mut pfds = [
            libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        sys::poll(&mut pfds, -1).ctx(|| "poll".into())?;
        if pfds[1].revents != 0 {
            while let Some(sig) = sys::signalfd_read(sigfd.as_raw_fd()) {
                if sig == libc::SIGHUP {
                    reload(&shared);
                } else {
                    tracing::info!(sig, "rexec_server stopping (running commands are left alone)");
                    let _ = std::fs::remove_file(&shared.cfg.socket);
                    return Ok(());
                }
            }
        }
        if pfds[0].revents != 0 {
            match sys::accept(listener.as_raw_fd()) {
                Ok(fd) => {
                    let shared = shared.clone();
                    let conn = UnixStream::from(fd);
                    let r = std::thread::Builder::new().name("rexec-session".into()).spawn(move || serve(shared, conn));
                    if let Err(e) = r {
                        tracing::error!(error = %e, "cannot start a session thread");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "accept"),
            }
        }
    }
}

fn reload(shared: &Shared) {
    match Whitelist::load(&shared.cfg.whitelist) {
        Ok(wl) => {
            tracing::info!(entries = wl.len(), "whitelist reloaded");
            *shared.whitelist.write().unwrap_or_else(|e| e.into_inner()) = wl;
        }
        Err(e) => tracing::error!(error = %e, "whitelist reload failed; keeping the previous one"),
    }
}

fn error_frame(conn: &mut UnixStream, op: u16, id: u64, errno: i32) {
    let mut out = Vec::new();
    FrameHeader::error(op, id, errno).push(&mut out);
    let _ = conn.write_all(&out);
}

/// Reads the first frame of a connection (bounded in size and time).
fn read_first(conn: &mut UnixStream) -> std::io::Result<Option<(FrameHeader, Vec<u8>)>> {
    let mut hb = [0u8; HEADER_SIZE];
    conn.read_exact(&mut hb)?;
    let Ok(h) = FrameHeader::decode(&hb, MAX_PAYLOAD) else { return Ok(None) };
    let mut payload = vec![0u8; h.len as usize];
    conn.read_exact(&mut payload)?;
    Ok(Some((h, payload)))
}

/// Handles one accepted connection (its own thread).
fn serve(shared: Arc<Shared>, mut conn: UnixStream) {
    let _ = conn.set_nonblocking(false);
    let peer = match sys::peer_cred(conn.as_raw_fd()) {
        Ok((pid, uid, gid)) => format!("pid={pid} uid={uid} gid={gid}"),
        Err(_) => "unknown".into(),
    };
    // A client that connects and says nothing must not hold a thread forever.
    let _ = sys::set_recv_timeout(conn.as_raw_fd(), 30_000);
    let (h, payload) = match read_first(&mut conn) {
        Ok(Some(x)) => x,
        Ok(None) => {
            tracing::warn!(%peer, "bad frame header; closing");
            return;
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection closed before a request");
            return;
        }
    };
    let _ = sys::set_recv_timeout(conn.as_raw_fd(), 0);
    match h.op() {
        Some(Op::REXEC_EXEC) if h.is_request() => exec(shared, conn, &h, &payload, peer),
        Some(Op::REXEC_ATTACH) if h.is_request() => attach(&shared, conn, &h, &payload, peer),
        _ => {
            tracing::warn!(%peer, op = h.op, "unexpected first frame; closing");
            if h.is_request() {
                error_frame(&mut conn, h.op, h.id, libc::EPROTO);
            }
        }
    }
}

fn attach(shared: &Shared, mut conn: UnixStream, h: &FrameHeader, payload: &[u8], peer: String) {
    let Ok(req) = RexecAttachReq::decode(payload) else {
        error_frame(&mut conn, h.op, h.id, libc::EBADMSG);
        return;
    };
    let sessions = shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let Some(s) = sessions.get(&req.pid) else {
        drop(sessions);
        tracing::info!(%peer, pid = req.pid, "REXEC_ATTACH to an unknown session");
        error_frame(&mut conn, h.op, h.id, libc::ESRCH);
        return;
    };
    // Constant-time comparison: the token is the session's only secret.
    let diff = s.token.iter().zip(req.token.iter()).fold(0u8, |a, (x, y)| a | (x ^ y));
    if diff != 0 {
        drop(sessions);
        tracing::warn!(%peer, pid = req.pid, "REXEC_ATTACH with a wrong token");
        error_frame(&mut conn, h.op, h.id, libc::EACCES);
        return;
    }
    match s.tx.send(Attach { conn, received: req.received, id: h.id, peer }) {
        Ok(()) => sys::eventfd_signal(s.wake.as_raw_fd()),
        // The session's thread is gone (it cannot take connections any more).
        Err(e) => {
            drop(sessions);
            let mut conn = e.0.conn;
            error_frame(&mut conn, h.op, h.id, libc::ESRCH);
        }
    }
}

fn exec(shared: Arc<Shared>, mut conn: UnixStream, h: &FrameHeader, payload: &[u8], peer: String) {
    let mut req = match spawn::ExecRequest::parse(payload) {
        Ok(r) => r,
        Err(inv) => {
            tracing::warn!(%peer, errno = inv.errno, why = %inv.why, "REXEC_EXEC refused: malformed");
            error_frame(&mut conn, h.op, h.id, inv.errno);
            return;
        }
    };
    let argv_text: Vec<String> = req.argv.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let cwd_text = String::from_utf8_lossy(&req.cwd).into_owned();
    // Loader variables are dropped unless the operator allowed them by name.
    let allow = &shared.cfg.allow_env;
    req.env.retain(|e| {
        let key = &e[..e.iter().position(|&c| c == b'=').unwrap_or(e.len())];
        !is_loader_var(key) || allow.iter().any(|a| a.as_bytes() == key)
    });
    let wake = match sys::eventfd() {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(%peer, error = %e, "eventfd");
            error_frame(&mut conn, h.op, h.id, sys::errno_of(&e));
            return;
        }
    };
    let (ends, child_ends) = match spawn::make_pipes(&req) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(%peer, error = %e, "cannot create pipes");
            error_frame(&mut conn, h.op, h.id, sys::errno_of(&e));
            return;
        }
    };
    let allowed = shared.whitelist.read().map(|w| w.allows(req.binary())).unwrap_or(false);
    let mut refusal: Option<String> = None;
    let mut spawned = None;
    let mut listeners = Vec::new();
    if !allowed {
        // Nothing runs: the process ends of the pipes go now, so the client sees EOF.
        drop(child_ends);
        refusal = Some(format!(
            "rexec_server: {} is not in the whitelist {} on the HOST\n",
            argv_text[0],
            shared.cfg.whitelist.display()
        ));
    } else {
        let tag = format!("{}-{}", std::process::id(), shared.seq.fetch_add(1, Ordering::Relaxed));
        let dir = shared.cfg.socket.parent().unwrap_or(Path::new("/tmp"));
        match spawn::prepare(&req, child_ends, dir, &tag, &shared.path_env, shared.nofile) {
            Err(text) => refusal = Some(format!("rexec_server: {text}\n")),
            Ok(plan) => {
                listeners = plan.listeners.clone();
                match spawn::spawn(plan) {
                    Ok(s) => spawned = Some(s),
                    Err(e) => refusal = Some(format!("rexec_server: cannot start {}: {e}\n", argv_text[0])),
                }
            }
        }
    }
    let pid = spawned.as_ref().map_or(0, |s| s.pid);
    let mut token = [0u8; 16];
    if pid != 0 {
        let _ = getrandom::fill(&mut token);
    }
    let window = shared.cfg.window;
    let mut out = Vec::new();
    qtfs_proto::push_frame(&mut out, FrameHeader::response(h.op, h.id, 0), &RexecStarted { pid, window, token });
    match &refusal {
        Some(text) => {
            tracing::warn!(%peer, argv = ?argv_text, cwd = %cwd_text, "refused: {}", text.trim_end())
        }
        None => tracing::info!(%peer, argv = ?argv_text, cwd = %cwd_text, pid, "started"),
    }
    let mut s = Session::new(shared.clone(), pid, req.argv[0].clone(), conn, spawned, req.window, window);
    s.add_pipes(ends);
    s.listeners = listeners.into_iter().collect();
    if let Some(text) = refusal {
        s.message = Some(text);
        s.exit = Some(ExitKind::Exited(126));
    } else {
        let (tx, rx) = channel();
        let wake = Arc::new(wake);
        shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, SessionHandle { token, tx, wake: wake.clone() });
        s.attach_rx = Some(rx);
        s.wake = Some(wake);
    }
    if let Some(c) = &mut s.conn
        && let Err(e) = c.write_all(&out)
    {
        tracing::warn!(pid, error = %e, "cannot answer REXEC_EXEC");
    }
    let status = s.run();
    match status {
        Some(k) => tracing::info!(pid, argv0 = %argv_text[0], status = k.status(), "exited"),
        None => tracing::info!(pid, argv0 = %argv_text[0], "ended"),
    }
}
