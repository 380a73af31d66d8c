//! rexec_server: the listening socket, single-instance lock, signal handling (SIGHUP
//! reloads the whitelist and the environment allow-list file), and the first frame of
//! every connection (REXEC_EXEC opens a session, REXEC_ATTACH hands the connection to an
//! existing one).
//!
//! The client is not trusted: a command runs like a setuid program would, with only the
//! allowed environment ([`env`]), the fixed PATH, and the file its whitelist entry
//! resolved to at load ([`whitelist`], [`spawn`]).
//!
//! One thread per session: each runs one poll loop over its own descriptors, so a
//! session streaming gigabytes or blocked on a slow reader never delays another, no
//! locks are taken on the data path, and a session's state needs no synchronisation.
//! Sessions are few (one per VM or command) and mostly idle, so threads cost little.

pub mod env;
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
use env::EnvPolicy;
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
    /// Environment variables let through besides [`env::DEFAULT_ALLOW`] (`NAME` or
    /// `PREFIX*`): `--env-allow` (alias `--allow-env`).
    pub env_allow: Vec<String>,
    /// More of them, one per line (`--env-allow-file`; re-read on SIGHUP).
    pub env_allow_file: Option<PathBuf>,
    /// The PATH of every command, and where bare-name whitelist entries are looked up.
    pub path: String,
    /// Receive window per stream announced to clients.
    pub window: u32,
    /// `--allow-group`: the socket is 0660 with this group (else 0600).
    pub allow_group: Option<u32>,
}

/// Who is at the other end of a connection, as the kernel recorded it at connect time
/// (`SO_PEERCRED`, `SO_PEERGROUPS`). Through udsproxyd this is the DPU caller's identity:
/// the engine connects with it.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Peer {
    pub fn of(conn: &UnixStream) -> std::io::Result<Peer> {
        let (pid, uid, gid) = sys::peer_cred(conn.as_raw_fd())?;
        // Without SO_PEERGROUPS (Linux < 4.13) the peer gets no supplementary groups.
        let groups = sys::peer_groups(conn.as_raw_fd()).unwrap_or_default();
        Ok(Peer { pid, uid, gid, groups })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid={} uid={} gid={}", self.pid, self.uid, self.gid)
    }
}

/// The identity a command runs with, when not rexec_server's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        write!(f, "uid={} gid={} groups={}", self.uid, self.gid, g.join(","))
    }
}

/// The identity a peer's commands run with: a root peer as rexec_server itself (root,
/// as before), anyone else as themselves (`None` = rexec_server's own identity). A
/// rexec_server that is not root can only serve its own uid (and root).
pub fn run_as(peer: &Peer) -> std::result::Result<Option<Ident>, String> {
    let (euid, _) = sys::euid_egid();
    if peer.uid == 0 || (euid != 0 && peer.uid == euid) {
        return Ok(None);
    }
    if euid != 0 {
        return Err(format!("rexec_server runs as uid {euid} and cannot run commands as uid {}", peer.uid));
    }
    Ok(Some(Ident { uid: peer.uid, gid: peer.gid, groups: peer.groups.clone() }))
}

/// A connection that asked to rejoin a session.
pub struct Attach {
    pub conn: UnixStream,
    pub received: u64,
    pub id: u64,
    pub peer: Peer,
}

/// What a session registers so that REXEC_ATTACH can find it.
pub struct SessionHandle {
    /// The uid of the peer that started it: only that uid may reattach.
    pub owner: u32,
    pub token: [u8; 16],
    pub tx: Sender<Attach>,
    pub wake: Arc<OwnedFd>,
}

/// State shared by the accept loop and the sessions.
pub struct Shared {
    pub cfg: Config,
    pub whitelist: RwLock<Whitelist>,
    pub env: RwLock<EnvPolicy>,
    pub sessions: Mutex<HashMap<i32, SessionHandle>>,
    pub seq: AtomicU64,
    /// RLIMIT_NOFILE at start, restored in children.
    pub nofile: (u64, u64),
}

/// The lock file beside the socket (`rexec_uds.sock` → `rexec_uds.lock`).
pub fn lock_path(socket: &Path) -> PathBuf {
    match socket.extension() {
        Some(e) if e == "sock" => socket.with_extension("lock"),
        _ => PathBuf::from(format!("{}.lock", socket.display())),
    }
}

/// The environment policy of a configuration (the allow-list file read now).
pub fn env_policy(cfg: &Config) -> Result<EnvPolicy> {
    let mut names = cfg.env_allow.clone();
    if let Some(f) = &cfg.env_allow_file {
        names.extend(env::load_names(f).map_err(|e| Error::Usage(format!("--env-allow-file {e}")))?);
    }
    EnvPolicy::new(&names, &cfg.path).map_err(|e| Error::Usage(format!("environment allow-list: {e}")))
}

/// Runs the server until SIGTERM/SIGINT. Errors are startup failures.
pub fn run(cfg: Config) -> Result<()> {
    let env = env_policy(&cfg)?;
    let wl = Whitelist::load(&cfg.whitelist, &cfg.path)?;
    sys::umask(0o077);
    sys::ignore_sigpipe();
    // Started under `nohup`, SIGHUP would be ignored and never reach the signalfd.
    sys::default_signals(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT]);
    let mask = sys::block_signals(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT]).ctx(|| "sigprocmask".into())?;
    let sigfd = sys::signalfd(&mask).ctx(|| "signalfd".into())?;
    let dir = cfg.socket.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !dir.exists() {
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if let Some(g) = cfg.allow_group {
            // The group may reach the socket, not list the directory.
            std::os::unix::fs::chown(&dir, None, Some(g)).ctx(|| format!("chown {}", dir.display()))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710))
                .ctx(|| format!("chmod {}", dir.display()))?;
        }
    } else if let Some(g) = cfg.allow_group {
        make_traversable(&dir, g)?;
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
    if let Some(g) = cfg.allow_group {
        std::os::unix::fs::chown(&cfg.socket, None, Some(g)).ctx(|| format!("chown {}", cfg.socket.display()))?;
    }
    let mode = if cfg.allow_group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", cfg.socket.display()))?;
    // Sessions relay many descriptors; children get the original limit back.
    let nofile = sys::nofile_limit();
    sys::set_nofile_soft(nofile.1.min(1 << 20));
    let shared = Arc::new(Shared {
        whitelist: RwLock::new(wl),
        env: RwLock::new(env),
        sessions: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
        nofile,
        cfg,
    });
    tracing::info!(
        socket = %shared.cfg.socket.display(),
        allow_group = ?shared.cfg.allow_group,
        whitelist = %shared.cfg.whitelist.display(),
        entries = shared.whitelist.read().map(|w| w.len()).unwrap_or(0),
        path = %shared.cfg.path,
        env_allow = ?shared.cfg.env_allow,
        env_allow_file = ?shared.cfg.env_allow_file,
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

/// `--allow-group` with an existing socket directory: if we own it and the group cannot
/// traverse it, we let it (g+x when it is already the directory's group, else o+x: others
/// may then traverse but not list it, and the 0660 socket still admits only the group).
/// A directory of someone else's is left as it is.
fn make_traversable(dir: &Path, gid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
    let mode = md.mode() & 0o7777;
    if mode & 0o001 != 0 || (md.gid() == gid && mode & 0o010 != 0) {
        return Ok(());
    }
    if md.uid() != sys::euid_egid().0 {
        tracing::warn!(dir = %dir.display(), gid, "the group cannot traverse this directory (not ours: left alone)");
        return Ok(());
    }
    let new = if md.gid() == gid { mode | 0o010 } else { mode | 0o001 };
    tracing::info!(dir = %dir.display(), mode = format!("{new:o}"), "socket directory made traversable");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(new)).ctx(|| format!("chmod {}", dir.display()))
}

/// SIGHUP: the whitelist is read and resolved again, and so is the environment
/// allow-list file; either one that fails keeps its previous version.
fn reload(shared: &Shared) {
    match Whitelist::load(&shared.cfg.whitelist, &shared.cfg.path) {
        Ok(wl) => {
            tracing::info!(entries = wl.len(), "whitelist reloaded");
            *shared.whitelist.write().unwrap_or_else(|e| e.into_inner()) = wl;
        }
        Err(e) => tracing::error!(error = %e, "whitelist reload failed; keeping the previous one"),
    }
    if shared.cfg.env_allow_file.is_some() {
        match env_policy(&shared.cfg) {
            Ok(p) => {
                tracing::info!("environment allow-list reloaded");
                *shared.env.write().unwrap_or_else(|e| e.into_inner()) = p;
            }
            Err(e) => tracing::error!(error = %e, "environment allow-list reload failed; keeping the previous one"),
        }
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
    let peer = match Peer::of(&conn) {
        Ok(p) => p,
        Err(e) => {
            // Without the peer's identity nothing may run.
            tracing::warn!(error = %e, "SO_PEERCRED failed; closing");
            return;
        }
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

fn attach(shared: &Shared, mut conn: UnixStream, h: &FrameHeader, payload: &[u8], peer: Peer) {
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
    if s.owner != peer.uid {
        drop(sessions);
        tracing::warn!(%peer, pid = req.pid, "REXEC_ATTACH from another user than the session's");
        error_frame(&mut conn, h.op, h.id, libc::EPERM);
        return;
    }
    // Constant-time comparison: the token is the session's only secret.
    let diff = s.token.iter().zip(req.token.iter()).fold(0u8, |a, (x, y)| a | (x ^ y));
    if diff != 0 {
        drop(sessions);
        tracing::warn!(%peer, pid = req.pid, "REXEC_ATTACH with a wrong token");
        error_frame(&mut conn, h.op, h.id, libc::EACCES);
        return;
    }
    match s.tx.send(Attach { conn, received: req.received, id: h.id, peer }) {
        Ok(()) => sys::eventfd_kick(s.wake.as_raw_fd()),
        // The session's thread is gone (it cannot take connections any more).
        Err(e) => {
            drop(sessions);
            let mut conn = e.0.conn;
            error_frame(&mut conn, h.op, h.id, libc::ESRCH);
        }
    }
}

fn exec(shared: Arc<Shared>, mut conn: UnixStream, h: &FrameHeader, payload: &[u8], peer: Peer) {
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
    // Only allowed variables, and the fixed PATH. Names of the rest are logged, never
    // their values (a client may pass secrets in its environment).
    let (env, dropped) = shared.env.read().unwrap_or_else(|e| e.into_inner()).apply(&req.env);
    req.env = env;
    if !dropped.is_empty() {
        tracing::debug!(%peer, argv0 = %argv_text[0], ?dropped, "environment variables dropped");
    }
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
    // What the entry spelled as BINARY resolved to at load is what runs. The spelling is
    // resolved again only to warn that it now names something else.
    let target = shared.whitelist.read().unwrap_or_else(|e| e.into_inner()).lookup(req.binary()).cloned();
    let allowed = target.is_some();
    let exe_text = match &target {
        Some(Ok(t)) => t.display().to_string(),
        Some(Err(e)) => format!("none ({})", sys::errstr(&std::io::Error::from_raw_os_error(*e))),
        None => "none".into(),
    };
    if let Some(Ok(t)) = &target {
        let now = whitelist::resolve(req.binary(), &shared.cfg.path);
        if now.as_ref() != Ok(t) {
            let now_text = match &now {
                Ok(p) => p.display().to_string(),
                Err(e) => sys::errstr(&std::io::Error::from_raw_os_error(*e)),
            };
            tracing::warn!(
                %peer,
                binary = %argv_text[0],
                at_load = %t.display(),
                now = %now_text,
                "whitelist entry resolves elsewhere than at load; running what it named at load (SIGHUP re-resolves)"
            );
        }
    }
    let ident = run_as(&peer);
    let as_text = match &ident {
        Ok(Some(i)) => i.to_string(),
        Ok(None) => {
            let (u, g) = sys::euid_egid();
            format!("uid={u} gid={g} (rexec_server's own)")
        }
        Err(_) => "none".into(),
    };
    let mut refusal: Option<String> = None;
    let mut spawned = None;
    let mut listeners = Vec::new();
    if let Err(why) = &ident {
        drop(child_ends);
        refusal = Some(format!("rexec_server: {why}\n"));
    } else if !allowed {
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
        let ident = ident.clone().unwrap_or_default();
        let target = target.unwrap_or(Err(libc::ENOENT));
        match spawn::prepare(&req, child_ends, dir, &tag, &target, shared.nofile, ident) {
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
            tracing::warn!(%peer, run_as = %as_text, argv = ?argv_text, cwd = %cwd_text, "refused: {}", text.trim_end())
        }
        None => {
            tracing::info!(%peer, run_as = %as_text, argv = ?argv_text, exe = %exe_text, cwd = %cwd_text, pid, "started")
        }
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
            .insert(pid, SessionHandle { owner: peer.uid, token, tx, wake: wake.clone() });
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
