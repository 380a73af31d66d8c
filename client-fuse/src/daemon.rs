//! Running a mount: connect and MOUNT on the engine (with clear errors), mount FUSE,
//! serve until unmounted or signalled, detach into the background unless `-f`.
//!
//! The only place with process-level system calls (fork, setsid, signal masks); they
//! happen before any thread exists.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use qtfs_client::{ClientConfig, ClientError, Session};
use qtfs_proto::Psk;

use crate::error::FuseError;
use crate::fs::QtfsFs;
use crate::kernel;
use crate::options::MountConfig;
use crate::remote::Remote;

fn sys(context: &'static str) -> FuseError {
    FuseError::Sys { context, source: std::io::Error::last_os_error() }
}

/// Connects to the engine and mounts the export; every failure becomes a clear error.
pub fn connect(cfg: &MountConfig) -> Result<(Remote, qtfs_proto::Attr), FuseError> {
    let mut cc = ClientConfig::new(cfg.server.clone());
    cc.name = format!("qtfs-fuse/{}", std::process::id());
    // Prompt invalidations (`crate::inval`) on the shared session's connections; the
    // per-worker connections leave them out (`crate::direct`). `-o noinval`: timeouts only.
    if cfg.inval {
        // Not told of its own changes: the kernel already holds their results.
        cc.features |= qtfs_proto::consts::feat::INVAL | qtfs_proto::consts::feat::NO_ECHO;
    }
    // The shared session carries only MOUNT, PING and CLOSE: an engine that accepts but
    // never answers must not hold the re-mount thread for good.
    cc.request_timeout = Some(cfg.reconnect_timeout.max(Duration::from_secs(5)));
    if let Some(p) = &cfg.psk_file {
        let k = Psk::load(p).map_err(|e| FuseError::Key { path: p.display().to_string(), reason: e.to_string() })?;
        cc = cc.with_psk(k);
    } else if cfg.insecure {
        cc = cc.insecure();
    }
    let addr = cfg.server.to_string();
    let session = Session::connect(cc, cfg.connections).map_err(|e| match e {
        ClientError::Io { .. } => FuseError::Unreachable { addr: addr.clone(), source: e },
        other => FuseError::Handshake { addr: addr.clone(), source: other },
    })?;
    // No waiting inside the session for a dropped connection to come back (its default):
    // requests wait in `remote`, bounded by their deadline and cut short by a signal.
    Remote::mount(session, &cfg.remote_path, cfg.reconnect_timeout).map_err(|e| {
        let reason = match e.errno() {
            libc::EACCES | libc::EPERM => {
                "permission denied: the directory is not in the engine's [Mount] whitelist".to_string()
            }
            libc::ENOENT => "no such directory on the HOST".to_string(),
            libc::ENOTDIR => "not a directory on the HOST".to_string(),
            _ => e.to_string(),
        };
        FuseError::MountRefused { path: cfg.remote_path.clone(), reason }
    })
}

fn session_config(cfg: &MountConfig) -> kernel::Config {
    kernel::Config {
        mount: kernel::MountOptions {
            fsname: format!("qtfs:{}", cfg.remote_path),
            subtype: "qtfs".into(),
            default_permissions: cfg.fs.default_permissions,
            allow_other: cfg.allow_other,
            read_only: cfg.fs.read_only,
            flags: cfg.flags.clone(),
        },
        threads: cfg.threads,
        max_write: crate::fs::MAX_RW,
        io_uring: cfg.io_uring,
        dev_ring: cfg.dev_ring,
    }
}

/// The `major:minor` of the FUSE mount at `mountpoint` from /proc/self/mountinfo (a
/// stat of the mount point would be a FUSE request nobody serves yet).
fn mount_dev(mountpoint: &std::path::Path) -> Option<String> {
    let mp = mountpoint.canonicalize().ok()?;
    let mp = mp.to_str()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // The last matching line is the newest mount on that point.
    info.lines()
        .rfind(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() > 4 && f[4] == mp && l.contains(" - fuse")
        })
        .map(|l| l.split(' ').nth(2).unwrap_or_default().to_string())
}

/// Raises the kernel readahead of the mount (its bdi starts at 128 KiB).
fn set_readahead(mountpoint: &std::path::Path, kb: u32) {
    let Some(dev) = mount_dev(mountpoint) else { return };
    let p = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&p, kb.to_string()) {
        tracing::debug!("cannot set {p}: {e}");
    }
}

/// Blocks the termination signals in this thread (and every thread started later).
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a local set and the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Reports the outcome of start-up to the waiting parent (daemon mode).
struct Ready(Option<std::fs::File>);

impl Ready {
    fn send(&mut self, msg: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(msg.as_bytes());
        }
    }
}

/// Forks: the parent waits for the child to report the mount and exits with its
/// outcome; the child continues in a new session. Must run before any thread exists.
fn daemonize() -> Result<Ready, FuseError> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors that we now own.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet, so the child may run arbitrary code.
    match unsafe { libc::fork() } {
        -1 => Err(sys("fork")),
        0 => {
            drop(rd);
            // SAFETY: setsid in the child, which is not a group leader.
            unsafe { libc::setsid() };
            Ok(Ready(Some(std::fs::File::from(wr))))
        }
        _ => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            if msg == "ok" {
                std::process::exit(0);
            }
            let msg = if msg.is_empty() { "the mount daemon died during start-up".to_string() } else { msg };
            eprintln!("qtfs-fuse: {msg}");
            std::process::exit(1);
        }
    }
}

/// Points stdin/stdout/stderr at /dev/null (a detached daemon has no terminal).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Mounts and serves until unmounted or signalled.
pub fn run(cfg: MountConfig) -> Result<(), FuseError> {
    let mut ready = if cfg.foreground { Ready(None) } else { daemonize()? };
    let r = serve(&cfg, &mut ready);
    if let Err(e) = &r {
        ready.send(&e.to_string());
    }
    r
}

fn serve(cfg: &MountConfig, ready: &mut Ready) -> Result<(), FuseError> {
    let set = block_signals();
    let (remote, root) = connect(cfg)?;
    let remote = Arc::new(remote);
    let fs = QtfsFs::new(remote.clone(), &root, cfg.fs.clone());
    let notifier = fs.notifier_slot();
    let handler = crate::inval::start(fs.nodes_handle(), notifier.clone(), fs.fences_handle())
        .map_err(|source| FuseError::Sys { context: "spawn", source })?;
    remote.session.set_frame_handler(handler);
    let mut session = kernel::Session::new(fs, &cfg.mountpoint, &session_config(cfg))
        .map_err(|source| FuseError::LocalMount { mountpoint: cfg.mountpoint.display().to_string(), source })?;
    let _ = notifier.set(session.notifier());
    set_readahead(&cfg.mountpoint, cfg.readahead_kb);
    let mut unmounter = session.unmount_callable();
    std::thread::Builder::new()
        .name("qtfs-signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: waits for one of the signals blocked above.
            unsafe { libc::sigwait(&set, &mut sig) };
            tracing::info!(signal = sig, "unmounting");
            if let Err(e) = unmounter.unmount() {
                tracing::warn!("unmount: {e}");
            }
        })
        .map_err(|source| FuseError::Sys { context: "spawn", source })?;
    tracing::info!(
        remote = %cfg.remote_path, mountpoint = %cfg.mountpoint.display(), server = %cfg.server,
        "mounted"
    );
    ready.send("ok");
    if !cfg.foreground {
        detach_stdio();
    }
    let r = session.run();
    remote.session.close();
    // Give in-flight closes a moment to reach the engine (they are not waited for).
    std::thread::sleep(Duration::from_millis(10));
    r.map_err(|source| FuseError::Sys { context: "FUSE session", source })
}
