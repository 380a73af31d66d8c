//! A FUSE session: mount, INIT, the serving threads, unmount.
//!
//! Transport, chosen at INIT ([`UringMode`]): FUSE over io_uring when the kernel offers
//! it (`/sys/module/fuse/parameters/enable_uring` = Y) and `-o io_uring` allows it, else
//! `/dev/fuse` alone.
//!
//! `/dev/fuse` threads: `threads` workers (2 with io_uring, which leaves them FORGET,
//! INTERRUPT and what comes before the rings are ready), each on its own descriptor (the
//! first on the mount's, the others cloned with `FUSE_DEV_IOC_CLONE`, so that each
//! answers on the descriptor it read from), each with one read buffer of `max_write` plus
//! a page, reused for every request: read, dispatch, reply. A worker ends when the kernel
//! reports ENODEV (the file system was unmounted) or DESTROY. With io_uring, the queues
//! and their worker pool ([`super::ring`]) start first in [`Session::run`], which returns
//! when every thread ended.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use parking_lot::Mutex;

use super::abi::{self, InitOut};
use super::dev::Dev;
use super::devring;
use super::filesystem::{Filesystem, KernelConfig, serve_request, split_dev_request};
use super::mount::{self, Mount, MountOptions};
use super::notify::Notifier;
use super::pool;
use super::reply::{ReplyRaw, Sender};
use super::request::{self, Gate, Op, Request};
use super::ring::{self, RingPlan};
use super::types::{Errno, InitFlags};
use super::uring;

/// `-o io_uring=`: whether requests come through FUSE over io_uring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UringMode {
    /// When the kernel offers it.
    Auto,
    /// Always: the mount fails when the kernel does not offer it.
    On,
    /// Never: `/dev/fuse` only. The default: measured on a 2-vCPU VM, the io_uring path
    /// is 2.5x `/dev/fuse` for reads 16 deep but 0.82-0.95x for single requests and the
    /// metadata job (perf/results/2026-12-07-vm-ring-batch.md).
    #[default]
    Off,
}

/// The `/dev/fuse` workers kept beside the rings.
const DEV_THREADS_WITH_URING: usize = 2;
/// Requests in flight on one `/dev/fuse` ring thread at most (as a FUSE io_uring queue's
/// depth, [`ring::QUEUE_DEPTH`]).
const DEV_RING_DEPTH: usize = ring::QUEUE_DEPTH as usize;
const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// How to mount and serve.
#[derive(Debug, Clone)]
pub struct Config {
    pub mount: MountOptions,
    /// Worker threads (at least one).
    pub threads: usize,
    /// The largest WRITE the read buffers take (INIT asks for at most this).
    pub max_write: u32,
    /// FUSE over io_uring or `/dev/fuse`.
    pub io_uring: UringMode,
    /// `/dev/fuse` served by ring threads ([`devring`]) instead of one blocking worker
    /// per request in flight.
    pub dev_ring: bool,
}

/// Unmounts the session's file system from another thread (once).
#[derive(Debug, Clone)]
pub struct Unmounter(Arc<Mutex<Option<Mount>>>);

impl Unmounter {
    pub fn unmount(&mut self) -> io::Result<()> {
        let m = self.0.lock().take();
        match m {
            Some(m) => m.umount(),
            None => Ok(()),
        }
    }
}

/// A mounted, initialised FUSE file system, ready to [`Session::run`].
pub struct Session<F: Filesystem> {
    fs: F,
    dev: Arc<Dev>,
    mount: Arc<Mutex<Option<Mount>>>,
    threads: usize,
    buf_size: usize,
    gate: Gate,
    setxattr_ext: bool,
    mode: UringMode,
    /// The rings INIT agreed on; None: `/dev/fuse` only.
    rings: Option<RingPlan>,
    /// Why io_uring is not used (for the log).
    no_uring: String,
    dev_ring: bool,
}

impl<F: Filesystem> Session<F> {
    /// Mounts `fs` at `mountpoint` and completes INIT.
    pub fn new(fs: F, mountpoint: &Path, cfg: &Config) -> io::Result<Session<F>> {
        let (fd, m) = mount::mount(mountpoint, &cfg.mount)?;
        let mut s = Session {
            fs,
            dev: Arc::new(Dev(fd)),
            mount: Arc::new(Mutex::new(Some(m))),
            threads: cfg.threads.max(1),
            buf_size: (cfg.max_write as usize + 4096).max(abi::MIN_READ_BUFFER),
            // SAFETY: geteuid cannot fail.
            gate: Gate { allow_other: cfg.mount.allow_other, owner: unsafe { libc::geteuid() } },
            setxattr_ext: false,
            mode: cfg.io_uring,
            rings: None,
            no_uring: String::new(),
            dev_ring: cfg.dev_ring,
        };
        s.handshake(cfg.max_write)?;
        Ok(s)
    }

    fn handshake(&mut self, max_write: u32) -> io::Result<()> {
        let mut buf = vec![0u8; self.buf_size];
        let sender: Arc<dyn Sender> = self.dev.clone();
        loop {
            let Some(n) = self.dev.receive(&mut buf)? else {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "FUSE device gone during INIT"));
            };
            let (h, fixed, _) = match request::split(buf.get(..n).unwrap_or(&[]), false) {
                Ok(x) => x,
                Err(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed request before INIT")),
            };
            let reply = ReplyRaw::new(h.unique, sender.clone());
            let init = match Op::parse(h.opcode, fixed, &[]) {
                Ok(Op::Init(i)) => i,
                _ => {
                    reply.error(Errno::EIO);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "request before INIT"));
                }
            };
            if init.major > abi::KERNEL_VERSION {
                // Our version only: the kernel sends INIT again with it.
                let out =
                    InitOut { major: abi::KERNEL_VERSION, minor: abi::KERNEL_MINOR_VERSION, ..Default::default() };
                reply.ok(&[&out.encode()]);
                continue;
            }
            if init.major < 7 || (init.major == 7 && init.minor < 6) {
                reply.error(Errno::EPROTO);
                return Err(io::Error::new(io::ErrorKind::Unsupported, "FUSE protocol older than 7.6"));
            }
            let mut config = KernelConfig::new(&init, max_write);
            if let Err(e) = self.fs.init(&Request::new(h), &mut config) {
                reply.error(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO)));
                return Err(e);
            }
            // The kernel's queues: one per possible CPU.
            let offered = uring_offer(init.major, init.minor, init.flags)
                .and_then(|()| ring::possible_cpus().map_err(|e| format!("cannot count the possible CPUs: {e}")));
            let queues = match (self.mode, &offered) {
                (UringMode::Off, _) => {
                    self.no_uring = "-o io_uring=off".into();
                    None
                }
                (_, Ok(n)) => config.add_capabilities(InitFlags::FUSE_OVER_IO_URING).ok().map(|()| *n),
                (UringMode::On, Err(why)) => {
                    reply.error(Errno::EPROTO);
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("-o io_uring=on: the kernel does not offer FUSE over io_uring: {why}"),
                    ));
                }
                (UringMode::Auto, Err(why)) => {
                    self.no_uring = format!("io_uring not offered: {why}");
                    None
                }
            };
            let out = config.reply();
            if let Some(queues) = queues {
                let payload = uring::min_payload_size(out.max_write, out.max_pages);
                self.rings = Some(RingPlan { queues, depth: ring::QUEUE_DEPTH, payload });
            }
            tracing::debug!(
                "INIT: kernel {}.{}, flags {:#x}, max_write {}, max_readahead {}, max_pages {}",
                init.major,
                init.minor,
                out.flags,
                out.max_write,
                out.max_readahead,
                out.max_pages
            );
            self.setxattr_ext = out.flags & abi::init::SETXATTR_EXT != 0;
            let bytes = out.encode();
            let len = if init.minor < 5 {
                8
            } else if init.minor < 23 {
                24
            } else {
                InitOut::SIZE
            };
            reply.ok(&[bytes.get(..len).unwrap_or(&bytes)]);
            return Ok(());
        }
    }

    /// Sends notifications to the kernel (usable after the session ended: they fail).
    pub fn notifier(&self) -> Notifier {
        Notifier::new(self.dev.clone())
    }

    /// Unmounts from another thread (the signal handler's).
    pub fn unmount_callable(&mut self) -> Unmounter {
        Unmounter(self.mount.clone())
    }

    /// Serves until the file system is unmounted.
    pub fn run(mut self) -> io::Result<()> {
        let r = if self.rings.is_none() && self.dev_ring { self.run_dev_rings() } else { self.run_workers() };
        self.fs.destroy();
        r
    }

    /// `/dev/fuse` through blocking workers (and the io_uring queues with their pool, when
    /// INIT chose them), until the file system is gone.
    fn run_workers(&self) -> io::Result<()> {
        let dev_threads = if self.rings.is_some() { DEV_THREADS_WITH_URING } else { self.threads };
        let mut devs = Vec::with_capacity(dev_threads);
        for _ in 1..dev_threads {
            devs.push(Arc::new(self.dev.clone_dev()?));
        }
        devs.push(self.dev.clone());
        let notifier = self.notifier();
        let me = self;
        std::thread::scope(|sc| {
            let mut handles = Vec::with_capacity(devs.len());
            for (i, dev) in devs.into_iter().enumerate() {
                let notifier = notifier.clone();
                let h = std::thread::Builder::new()
                    .name(format!("qtfs-fuse-{i}"))
                    .spawn_scoped(sc, move || me.serve(dev, &notifier))?;
                handles.push(h);
            }
            let mut r = Ok(());
            let mut ring_handles = Vec::new();
            if let Some(plan) = me.rings {
                let fd = me.dev.0.as_raw_fd();
                let (rings, registered) = ring::start(sc, &me.fs, me.gate, fd, plan, me.threads, &notifier);
                ring_handles = rings.handles;
                match registered {
                    Ok(()) => tracing::info!(
                        "transport: io_uring ({} queues, depth {}), {} workers, payload {} bytes; /dev/fuse: {} threads",
                        plan.queues,
                        plan.depth,
                        me.threads,
                        plan.payload,
                        dev_threads
                    ),
                    // Unmounted (a signal) while the queues registered: an ordinary end.
                    Err(e) if !mount::connected(&me.dev.0) => {
                        tracing::info!("unmounted before the io_uring queues were ready ({e})");
                        ring_handles.clear();
                    }
                    Err(e) => {
                        // INIT said io_uring: the kernel holds every new request until each
                        // queue has an entry, so the connection must end.
                        tracing::error!("FUSE over io_uring could not start, unmounting: {e}");
                        if let Some(m) = me.mount.lock().take()
                            && let Err(e) = m.abort()
                        {
                            tracing::warn!("unmount: {e}");
                        }
                        r = Err(io::Error::new(e.kind(), format!("FUSE over io_uring could not start: {e}")));
                        ring_handles.clear();
                    }
                }
            } else {
                tracing::info!("transport: /dev/fuse ({} threads; {})", dev_threads, me.no_uring);
            }
            // After a failed start the ring threads' own errors say nothing more (the
            // scope still waits for them).
            handles.extend(ring_handles);
            join_all(handles, r)
        })
    }

    /// `/dev/fuse` through one ring thread per CPU and a pool for requests that may block
    /// ([`devring`]), until the file system is gone.
    fn run_dev_rings(&self) -> io::Result<()> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let devs = (0..n)
            .map(|_| {
                let polled = Arc::new(self.dev.clone_nonblocking()?);
                Ok(devring::Devs { polled, idle: Arc::new(self.dev.clone_dev()?) })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let notifier = self.notifier();
        let setup = devring::Setup {
            fs: &self.fs,
            gate: self.gate,
            setxattr_ext: self.setxattr_ext,
            notifier: &notifier,
            buf_size: self.buf_size,
            depth: DEV_RING_DEPTH,
            idle_readers: AtomicUsize::new(0),
        };
        let setup = &setup;
        std::thread::scope(|sc| {
            let mut handles = Vec::with_capacity(n + self.threads);
            let started =
                pool::start(sc, self.threads, "qtfs-fuse-r", |job| devring::serve_job(setup, job), &mut handles)
                    .and_then(|pool| {
                        for (i, dev) in devs.into_iter().enumerate() {
                            let pool = pool.clone();
                            let serve = move || devring::serve(setup, i, dev, &pool);
                            handles.push(
                                std::thread::Builder::new().name(format!("qtfs-dev-{i}")).spawn_scoped(sc, serve)?,
                            );
                        }
                        Ok(())
                    });
            match &started {
                Ok(()) => tracing::info!(
                    "transport: /dev/fuse through {n} ring threads (up to {DEV_RING_DEPTH} requests in flight each), \
                     {} workers for requests that may block; {}",
                    self.threads,
                    self.no_uring
                ),
                Err(e) => tracing::error!("cannot start the /dev/fuse ring threads: {e}"),
            }
            join_all(handles, started)
        })
    }

    /// One worker: read, dispatch, reply, until the kernel says the file system is gone.
    fn serve(&self, dev: Arc<Dev>, notifier: &Notifier) -> io::Result<()> {
        let mut buf = vec![0u8; self.buf_size];
        let sender: Arc<dyn Sender> = dev.clone();
        loop {
            let Some(n) = dev.receive(&mut buf)? else { return Ok(()) };
            let Some(req) = split_dev_request(buf.get(..n).unwrap_or(&[]), self.setxattr_ext, &sender) else {
                continue;
            };
            if serve_request(&self.fs, &self.gate, req, &sender, notifier) {
                return Ok(());
            }
        }
    }
}

/// Waits for every thread; the first error: `r`'s, else a thread's.
fn join_all(handles: Vec<std::thread::ScopedJoinHandle<'_, io::Result<()>>>, mut r: io::Result<()>) -> io::Result<()> {
    for h in handles {
        let t = h.join().unwrap_or_else(|_| Err(io::Error::other("a FUSE thread panicked")));
        if r.is_ok() {
            r = t;
        }
    }
    r
}

/// Whether the kernel offers FUSE over io_uring at INIT; Err: why not.
fn uring_offer(major: u32, minor: u32, flags: u64) -> Result<(), String> {
    if flags & abi::init::OVER_IO_URING != 0 {
        return Ok(());
    }
    if major == 7 && minor < uring::FUSE_URING_MIN_MINOR {
        return Err(format!("kernel FUSE protocol 7.{minor}, io_uring needs 7.{}", uring::FUSE_URING_MIN_MINOR));
    }
    Err(match std::fs::read_to_string(ENABLE_URING) {
        Ok(v) => format!("{ENABLE_URING} is {} (Y enables it)", v.trim()),
        Err(_) => format!("this kernel has no {ENABLE_URING}"),
    })
}

impl<F: Filesystem> Drop for Session<F> {
    fn drop(&mut self) {
        // Unmounted unless the kernel ended the connection already (then the mount
        // point may hold another mount by now).
        if let Some(m) = self.mount.lock().take()
            && mount::connected(&self.dev.0)
            && let Err(e) = m.umount()
        {
            tracing::debug!("unmount: {e}");
        }
    }
}
