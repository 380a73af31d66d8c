//! # qtfs-engine — the HOST side of qtfs
//!
//! `engine --cores N` serves file operations (and, multiplexed on the same connections,
//! unix-socket channels) to DPU clients. N threads each own one io_uring and the
//! connections they accepted: a reactor that knows no service ([`ring`]) and the
//! services a core glues to it ([`worker`]): file requests become batches of ring
//! operations ([`fsops`]) performed beneath the export root with the caller's identity
//! ([`creds`]), channels carry unix sockets (`udsmux`); a plain thread serves the admin
//! socket ([`admin`]). Cores share only read-mostly configuration (the [`whitelist`],
//! swapped atomically), sessions and counters.
//!
//! Layering: no module of the crate imports a module that imports it (the crate root,
//! which declares them all, aside); `tests/layers.rs` checks it.

pub mod admin;
pub mod config;
pub mod creds;
pub mod devices;
pub mod fsops;
pub mod notify;
pub mod path;
pub(crate) mod ring;
pub mod session;
pub mod stats;
pub mod sys;
pub(crate) mod udsmux;
pub mod wakeup;
pub mod whitelist;
pub(crate) mod worker;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use qtfs_proto::consts::WlType;
use qtfs_proto::{Addr, Psk};

pub use config::Config;
use session::Sessions;
use stats::{ChanRegistry, ConnShared, CoreStats};
use whitelist::Whitelist;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration or whitelist is unusable.
    #[error("{0}")]
    Config(String),
    /// A system call failed while starting.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// Another engine holds the lock file.
    #[error("another engine is running (lock {0} is held)")]
    Locked(PathBuf),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EngineError {
    let context = context.into();
    move |source| EngineError::Io { context, source }
}

/// State shared by the cores and the admin thread.
pub struct Shared {
    pub cfg: Config,
    /// The pre-shared key (shared with each handshake, wiped when the engine is dropped).
    pub psk: Option<Psk>,
    pub whitelist: RwLock<Arc<Whitelist>>,
    /// Bumped on every whitelist change; cores reload when it moves.
    pub wl_gen: AtomicU64,
    pub sessions: Arc<Sessions>,
    /// Mounts made through SYSMOUNT: the only ones a client may move, remount or unmount.
    pub sysmounts: fsops::mounts::SysMounts,
    pub stats: Vec<Mutex<CoreStats>>,
    pub conns: Mutex<HashMap<u64, Arc<ConnShared>>>,
    /// Live unix-socket channels (for ADMIN_CHANNELS and ADMIN_INFO).
    pub chans: ChanRegistry,
    pub next_conn_id: AtomicU64,
    pub log_level: AtomicU32,
    pub set_log_level: Box<dyn Fn(u32) + Send + Sync>,
    pub started: Instant,
    pub shutdown: AtomicBool,
    /// The export watcher behind INVAL (None: not available here, `feat::INVAL` is not
    /// offered).
    pub notify: Option<Arc<notify::Notify>>,
    /// Each core's wake-up eventfd and why another thread kicked it.
    pub wakeups: wakeup::Wakeups,
}

impl Shared {
    /// The features this engine offers in the handshake.
    pub fn features(&self) -> u64 {
        use qtfs_proto::consts::feat;
        let mut f = feat::ALL | feat::DIR_ATTR | feat::LIST_ATTR | feat::XATTR_NONE;
        if self.notify.is_some() {
            f |= feat::INVAL | feat::NO_ECHO;
        }
        f
    }
}

/// Options for embedding the engine (tests, benches).
pub struct StartOptions {
    /// Applies a new log level (`LOG_*`); the binary wires it to its tracing filter.
    pub set_log_level: Box<dyn Fn(u32) + Send + Sync>,
    /// Runs first thing on every core thread (tests use it to mark engine threads).
    pub on_core_start: Option<fn()>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions { set_log_level: Box::new(|_| {}), on_core_start: None }
    }
}

/// A running engine.
pub struct Engine {
    shared: Arc<Shared>,
    cores: Vec<JoinHandle<()>>,
    wakes: Vec<OwnedFd>,
    admin: Option<(JoinHandle<()>, PathBuf)>,
    bound: Vec<Addr>,
    unix_paths: Vec<PathBuf>,
    _listeners: Vec<Arc<OwnedFd>>,
    _lock: Option<std::fs::File>,
}

fn lock_file(path: &std::path::Path) -> Result<std::fs::File, EngineError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(format!("open lock file {}", path.display())))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(EngineError::Locked(path.to_path_buf()));
    }
    Ok(f)
}

/// The listening sockets of every core, what they are bound to, and the unix socket
/// files to remove at exit.
type Listeners = (Vec<Vec<ring::ListenFd>>, Vec<Addr>, Vec<PathBuf>);

/// Creates the listening sockets: TCP gets one SO_REUSEPORT socket per core (port 0 is
/// resolved by the first), unix and vsock one socket shared by every core.
fn listeners(cfg: &Config) -> Result<Listeners, EngineError> {
    let mut per_core: Vec<Vec<ring::ListenFd>> = (0..cfg.cores).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    let mut unix_paths = Vec::new();
    for a in &cfg.listen {
        match a {
            Addr::Tcp(sa) => {
                let mut sa = *sa;
                for (i, core) in per_core.iter_mut().enumerate() {
                    let fd = sys::tcp_listener(&sa, 1024).map_err(io_err(format!("listen on {a}")))?;
                    if i == 0 {
                        // Port 0: every other core must bind the port the first one got.
                        sa = sys::local_addr(fd.as_raw_fd()).map_err(io_err("getsockname"))?;
                        bound.push(Addr::Tcp(sa));
                    }
                    core.push(ring::ListenFd { fd: Arc::new(fd), tcp: true, name: format!("tcp:{sa}") });
                }
            }
            Addr::Unix(p) => {
                if p.exists() {
                    if std::os::unix::net::UnixStream::connect(p).is_ok() {
                        return Err(EngineError::Config(format!("{} is in use by a running process", p.display())));
                    }
                    std::fs::remove_file(p).map_err(io_err(format!("remove stale {}", p.display())))?;
                }
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
                }
                let l = std::os::unix::net::UnixListener::bind(p).map_err(io_err(format!("listen on {a}")))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_err(format!("chmod {}", p.display())))?;
                let fd = Arc::new(OwnedFd::from(l));
                for core in per_core.iter_mut() {
                    core.push(ring::ListenFd { fd: fd.clone(), tcp: false, name: a.to_string() });
                }
                bound.push(a.clone());
                unix_paths.push(p.clone());
            }
            Addr::Vsock { cid, port } => {
                let fd = Arc::new(sys::vsock_listener(*cid, *port, 1024).map_err(io_err(format!("listen on {a}")))?);
                for core in per_core.iter_mut() {
                    core.push(ring::ListenFd { fd: fd.clone(), tcp: false, name: a.to_string() });
                }
                bound.push(a.clone());
            }
        }
    }
    Ok((per_core, bound, unix_paths))
}

/// Loads and checks the whitelist file.
pub fn load_whitelist(path: &std::path::Path) -> Result<(Whitelist, Vec<String>), EngineError> {
    let (wl, warnings) = Whitelist::load(path).map_err(|e| {
        EngineError::Config(format!(
            "cannot read whitelist {}: {e} (see `engine --help` for the format)",
            path.display()
        ))
    })?;
    if wl.entries(WlType::Mount).is_empty() {
        return Err(EngineError::Config(format!(
            "whitelist {} has no [Mount] entry: nothing could be exported",
            path.display()
        )));
    }
    Ok((wl, warnings))
}

impl Engine {
    /// Starts the engine: lock, whitelist, listeners, admin socket, cores.
    pub fn start(cfg: Config, opts: StartOptions) -> Result<Engine, EngineError> {
        let lock = match &cfg.lock_file {
            Some(p) => Some(lock_file(p)?),
            None => None,
        };
        let (wl, warnings) = load_whitelist(&cfg.whitelist)?;
        for w in warnings {
            tracing::warn!("whitelist {}: {w}", cfg.whitelist.display());
        }
        if !creds::can_impersonate() {
            tracing::warn!("not running as root: requests run with the engine's own identity, not the caller's");
        }
        sys::raise_nofile();
        // New files get exactly the mode the client computed (it applies its umask).
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(0) };
        let (per_core, bound, unix_paths) = listeners(&cfg)?;
        let keep: Vec<Arc<OwnedFd>> = per_core.iter().flatten().map(|l| l.fd.clone()).collect();
        let psk = cfg.psk.clone();
        let admin_listener = match &cfg.admin_socket {
            Some(p) => Some((admin::bind(p).map_err(io_err(format!("admin socket {}", p.display())))?, p.clone())),
            None => None,
        };
        // Prompt invalidations need fanotify with file handles (root, Linux >= 5.9).
        let notify = match notify::Notify::new() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("cannot watch exports ({e}): clients see HOST changes after their timeouts");
                None
            }
        };
        let wakeups = wakeup::Wakeups::new(cfg.cores).map_err(io_err("eventfd"))?;
        let shared = Arc::new(Shared {
            notify,
            wakeups,
            psk,
            whitelist: RwLock::new(Arc::new(wl)),
            wl_gen: AtomicU64::new(1),
            sessions: Arc::new(Sessions::default()),
            sysmounts: Default::default(),
            stats: (0..cfg.cores).map(|_| Mutex::new(CoreStats::default())).collect(),
            conns: Mutex::new(HashMap::new()),
            chans: Mutex::new(HashMap::new()),
            next_conn_id: AtomicU64::new(1),
            log_level: AtomicU32::new(cfg.log_level),
            set_log_level: opts.set_log_level,
            started: Instant::now(),
            shutdown: AtomicBool::new(false),
            cfg,
        });
        let cpus = sys::allowed_cpus();
        let mut cores = Vec::new();
        let mut wakes = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        // Bounds on connections that have not authenticated, shared by every core.
        let preauth = Arc::new(ring::gate::PreAuthGate::default());
        for (i, ls) in per_core.into_iter().enumerate() {
            let gate = preauth.clone();
            let wake = shared.wakeups.fd(i).map_err(io_err("dup eventfd"))?;
            wakes.push(wake.try_clone().map_err(io_err("dup eventfd"))?);
            let shared = shared.clone();
            let cpu = cpus.get(i % cpus.len().max(1)).copied();
            let ready = ready_tx.clone();
            let hook = opts.on_core_start;
            let h = std::thread::Builder::new()
                .name(format!("qtfs-core{i}"))
                .spawn(move || {
                    if let Some(f) = hook {
                        f();
                    }
                    if shared.cfg.pin
                        && let Some(c) = cpu
                        && let Err(e) = sys::pin_to_cpu(c)
                    {
                        tracing::warn!(core = i, cpu = c, "cannot pin: {e}");
                    }
                    match ring::Reactor::new(i, shared, ls, wake, gate).map(worker::Core::new) {
                        Ok(core) => {
                            let _ = ready.send(Ok(()));
                            // Serves until the engine stops. A bug reached by one
                            // connection closes that connection; a loop that dies anyway
                            // (a panic outside one connection's handling, a ring that keeps
                            // failing) is rebuilt on the same listeners with its
                            // connections closed (`worker::supervise` lists what is dropped);
                            // only a core that cannot be rebuilt ends the engine, with exit
                            // status 70, never a process that looks alive with a dead core.
                            worker::supervise(core);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(format!("core {i}: io_uring setup failed: {e}")));
                        }
                    }
                })
                .map_err(io_err("spawn core thread"))?;
            cores.push(h);
        }
        drop(ready_tx);
        if let Some(n) = &shared.notify {
            let dups: io::Result<Vec<OwnedFd>> = wakes.iter().map(|w| w.try_clone()).collect();
            dups.and_then(|d| n.start(d, shared.sessions.clone())).map_err(io_err("start the export watcher"))?;
        }
        let mut engine = Engine {
            shared: shared.clone(),
            cores,
            wakes,
            admin: None,
            bound,
            unix_paths,
            _listeners: keep,
            _lock: lock,
        };
        for _ in 0..engine.cores.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    engine.stop();
                    return Err(EngineError::Config(e));
                }
                Err(_) => {
                    engine.stop();
                    return Err(EngineError::Config("a core thread died while starting".into()));
                }
            }
        }
        if let Some((l, p)) = admin_listener {
            let sh = shared.clone();
            let h = std::thread::Builder::new()
                .name("qtfs-admin".into())
                .spawn(move || admin::serve(l, sh))
                .map_err(io_err("spawn admin thread"))?;
            engine.admin = Some((h, p));
        }
        Ok(engine)
    }

    /// Where the engine listens (TCP port 0 resolved to the real port).
    pub fn addrs(&self) -> &[Addr] {
        &self.bound
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets in-flight requests finish (5 s at most), closes everything.
    pub fn stop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for w in &self.wakes {
            sys::eventfd_kick(w.as_raw_fd());
        }
        for h in self.cores.drain(..) {
            let _ = h.join();
        }
        if let Some(n) = &self.shared.notify {
            n.stop();
        }
        if let Some((h, p)) = self.admin.take() {
            // Wake the blocking accept with a throwaway connection.
            let _ = std::os::unix::net::UnixStream::connect(&p);
            let _ = h.join();
            let _ = std::fs::remove_file(&p);
        }
        for p in self.unix_paths.drain(..) {
            let _ = std::fs::remove_file(p);
        }
        self.shared.sessions.clear();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.cores.is_empty() {
            self.stop();
        }
    }
}
