//! # udsproxyd — the DPU end of the unix-socket proxy
//!
//! A program on the DPU (run with `LD_PRELOAD=libudsproxy.so`) connects to a unix socket
//! path that exists only on the HOST. Its local connect fails; the preload library asks
//! udsproxyd over the request socket ([`front`], protocol in `preload/src/wire.rs`);
//! udsproxyd checks its udsconnect whitelist ([`wl`]), opens a channel to the engine
//! (CHAN_OPEN on one of its engine connections, [`relay`]) and hands the program a
//! socket already connected through that channel. The admin socket ([`admin`]) serves
//! `qtcfg`/`qtinfo`: the whitelist, log level, counters, connections and channels.
//!
//! Threads: one relay loop per engine connection (epoll, non-blocking, no locks on the
//! data path), one front thread for requests, one thread per admin connection, and the
//! main thread waiting for SIGINT/SIGTERM. They share only [`Shared`].

pub mod admin;
pub mod config;
pub mod front;
pub mod relay;
pub mod request;
pub mod sys;
#[path = "../../../preload/src/wire.rs"]
pub mod wire;
pub mod wl;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

pub use config::Config;

/// Why udsproxyd could not start.
#[derive(Debug, thiserror::Error)]
pub enum UdsError {
    /// A system call failed while starting.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// Another udsproxyd holds the lock file.
    #[error("another udsproxyd is running (lock {0} is held)")]
    Locked(PathBuf),
    /// A socket path is served by a running process.
    #[error("{0} is in use by a running process")]
    InUse(PathBuf),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> UdsError {
    let context = context.into();
    move |source| UdsError::Io { context, source }
}

/// One live channel, as the admin socket lists it (the channel core's record).
pub use qtfs_chan::ChanStat;

/// Process-wide counters.
#[derive(Debug)]
pub struct Stats {
    /// Requests received on the request socket.
    pub requests: AtomicU64,
    /// Requests answered "not proxied" (whitelist, no engine, malformed).
    pub passed: AtomicU64,
    pub opens: AtomicU64,
    pub open_errors: AtomicU64,
    pub open_lat: Mutex<hdrhistogram::Histogram<u64>>,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub scm: AtomicU64,
    pub chan_errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub since: Mutex<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            opens: AtomicU64::new(0),
            open_errors: AtomicU64::new(0),
            open_lat: Mutex::new(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("bounds")),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            scm: AtomicU64::new(0),
            chan_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            since: Mutex::new(Instant::now()),
        }
    }
}

impl Stats {
    pub fn record_open(&self, t0: Instant, ok: bool) {
        self.opens.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.open_errors.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.open_lat.lock().record((t0.elapsed().as_nanos() as u64).max(1));
    }

    pub fn clear(&self) {
        for a in [
            &self.requests,
            &self.passed,
            &self.opens,
            &self.open_errors,
            &self.bytes_up,
            &self.bytes_down,
            &self.scm,
            &self.chan_errors,
            &self.reconnects,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        self.open_lat.lock().reset();
        *self.since.lock() = Instant::now();
    }
}

/// State shared by the threads.
pub struct Shared {
    pub cfg: Config,
    pub wl: RwLock<wl::Whitelist>,
    pub stats: Stats,
    pub chans: Mutex<HashMap<(usize, u32), Arc<ChanStat>>>,
    pub loops: Vec<Arc<relay::LoopHandle>>,
    pub rr: AtomicU64,
    pub log_level: AtomicU32,
    pub set_log_level: Box<dyn Fn(u32) + Send + Sync>,
    pub started: Instant,
    pub shutdown: AtomicBool,
}

/// A running udsproxyd.
pub struct Daemon {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    front_wake: std::os::fd::OwnedFd,
    _lock: Option<std::fs::File>,
}

/// Binds a unix socket path for serving: refuses if a process serves it, replaces a
/// stale socket file.
pub fn bind_path(path: &std::path::Path, ty: i32, mode: u32) -> Result<std::os::fd::OwnedFd, UdsError> {
    use std::os::fd::AsRawFd;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    }
    let bytes = path.as_os_str().as_encoded_bytes();
    if std::fs::symlink_metadata(path).is_ok() {
        let probe = sys::unix_socket(ty).map_err(io_err("socket"))?;
        if sys::connect_unix(probe.as_raw_fd(), bytes).is_ok() {
            return Err(UdsError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io_err(format!("remove stale {}", path.display())))?;
    }
    let fd = sys::unix_socket(ty).map_err(io_err("socket"))?;
    sys::bind_unix(fd.as_raw_fd(), bytes).map_err(io_err(format!("bind {}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))?;
    sys::listen(fd.as_raw_fd(), 1024).map_err(io_err(format!("listen {}", path.display())))?;
    Ok(fd)
}

impl Daemon {
    /// Starts the relay loops, the request socket and the admin socket.
    pub fn start(cfg: Config, set_log_level: Box<dyn Fn(u32) + Send + Sync>) -> Result<Daemon, UdsError> {
        let lock = match &cfg.lock_file {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
                }
                Some(sys::lock_file(p).map_err(|_| UdsError::Locked(p.clone()))?)
            }
            None => None,
        };
        let mut wl = wl::Whitelist::default();
        for u in &cfg.udsconnect {
            let _ = wl.add(u.as_bytes());
        }
        let front_l = bind_path(&cfg.socket, libc::SOCK_SEQPACKET, 0o666)?;
        let admin_l = bind_path(&cfg.admin_socket, libc::SOCK_STREAM, 0o600)?;
        let loops = (0..cfg.connections)
            .map(|_| relay::LoopHandle::new().map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err("eventfd"))?;
        let shared = Arc::new(Shared {
            log_level: AtomicU32::new(cfg.log_level),
            cfg,
            wl: RwLock::new(wl),
            stats: Stats::default(),
            chans: Mutex::new(HashMap::new()),
            loops,
            rr: AtomicU64::new(0),
            set_log_level,
            started: Instant::now(),
            shutdown: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        for (i, h) in shared.loops.iter().enumerate() {
            let mut l = relay::Loop::new(i, shared.clone(), h.clone()).map_err(io_err("epoll"))?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("udsproxyd-relay{i}"))
                    .spawn(move || l.run())
                    .map_err(io_err("spawn relay thread"))?,
            );
        }
        let front_wake = sys::eventfd().map_err(io_err("eventfd"))?;
        let mut f = front::Front::new(shared.clone(), front_l, &front_wake).map_err(io_err("epoll"))?;
        threads.push(
            std::thread::Builder::new()
                .name("udsproxyd-front".into())
                .spawn(move || f.run())
                .map_err(io_err("spawn front thread"))?,
        );
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("udsproxyd-admin".into())
            .spawn(move || admin::serve(admin_l, sh))
            .map_err(io_err("spawn admin thread"))?;
        Ok(Daemon { shared, threads, front_wake, _lock: lock })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Closes every channel, removes the sockets and joins the threads.
    pub fn stop(&mut self) {
        use std::os::fd::AsRawFd;
        self.shared.shutdown.store(true, Ordering::Release);
        for l in &self.shared.loops {
            sys::eventfd_kick(l.wake.as_raw_fd());
        }
        sys::eventfd_kick(self.front_wake.as_raw_fd());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.shared.cfg.socket);
        let _ = std::fs::remove_file(&self.shared.cfg.admin_socket);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}
