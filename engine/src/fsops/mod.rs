//! File operations: one handler per QTP request, each a small state machine of ring
//! operations and (where the kernel has no ring opcode) direct system calls.
//!
//! Safety of paths: every path is resolved by the kernel beneath the export root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`. Operations on a name first
//! resolve its parent that way and then act on the single final component relative to
//! that descriptor; operations on an object resolve it (`O_PATH`, not following a final
//! symlink where the operation should not) and then act on exactly that inode through
//! `/proc/self/fd/N`. `..`, absolute symlinks and symlinks leading outside therefore
//! never leave the export. Whitelists are checked against the *real* path of the
//! resolved descriptor, so a symlink cannot smuggle a request into an excluded tree.
//! Operations on a handle check the same group as their path form, on the real path of
//! the open file. A new place for an existing object (LINK, a bind mount) may not be
//! allowed anything its existing path is not ([`crate::whitelist::Whitelist::gained`]).
//!
//! Device nodes are never opened unless the operator named them ([`crate::devices`]: `nodev`
//! semantics, checked on the `O_PATH` descriptor before the reopen); SYSMOUNT and
//! SYSUMOUNT are bounded by [`mounts`].
//!
//! Identity: ring operations carry the caller's io_uring personality; direct system
//! calls run under `creds::with_ident`. The ids come from the request, translated by the
//! policy of the export it names (`--export-policy`, else the engine-wide one). Requests
//! on a handle that carry no ids (READ, WRITE, FSYNC, FALLOCATE, LLSEEK, IOCTL) run as
//! the handle's opener, as a local descriptor acts with its caller's credentials: with
//! the engine's own, a user's write would keep a file's setuid bit (CAP_FSETID).
//!
//! This module interprets file requests; it must not touch sockets or framing beyond
//! the reactor's response API (`ring::Reactor`, reached through `Ctx`). It is the top of
//! `fsops`: [`dispatch`] gives each request to the module of its operation (one line
//! each) and [`complete`] each ring completion to the module of the step it finishes
//! ([`steps::Step`]); its `impl Service for Fs` is what the core's reactor calls. No
//! submodule imports this one.
//!
//! | module | owns |
//! |---|---|
//! | `state` | the per-core state and the handlers' context `Ctx` |
//! | `req` | what is in flight: the request `FsReq`, readiness registrations `EpollReg` |
//! | `parked` | the table of parked requests (data; `waiter` works through it) |
//! | `common` | decoding, answers, identity, ring helpers |
//! | `steps` | the named steps of multi-step operations |
//! | `gates` | whitelist, device and free-space checks |
//! | `attr` | LOOKUP, GETATTR, FGETATTR, STATFS, SETATTR |
//! | `names` | MKDIR, MKNOD, SYMLINK, LINK, RENAME, UNLINK, RMDIR, READLINK |
//! | `open` | OPEN, CREATE |
//! | `io` | READ, WRITE, FSYNC, FALLOCATE, LLSEEK, FIFO_POLL, CLOSE |
//! | `fifo` | FIFOs and terminals: non-blocking opens, readiness waits |
//! | `dir` | READDIR |
//! | `xattr` | XATTR_LIST, XATTR_GET, XATTR_SET, XATTR_REMOVE |
//! | `locks`, `waiter` | LOCK_GET, LOCK_SET, CANCEL; parked requests |
//! | `epoll` | EPOLL_CTL and its events |
//! | `ioctl` | IOCTL |
//! | `process` | HOST processes: KILL, SCHED_GETAFFINITY, SCHED_SETAFFINITY |
//! | `export` | MOUNT, UMOUNT (exports) |
//! | `sysmount` | SYSMOUNT, SYSUMOUNT (mounts on the HOST) |
//! | `mounts` | mount policy (`path`, `whitelist`, `devices` are the crate root's) |

// Requests are bytes from untrusted peers: a slip must fail the request or close the
// connection, never panic the core. Submodules inherit this.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

mod attr;
mod common;
mod dir;
mod epoll;
mod export;
mod fifo;
mod gates;
mod io;
mod ioctl;
mod locks;
pub mod mounts;
mod names;
mod open;
mod parked;
mod process;
mod req;
mod state;
mod steps;
mod sysmount;
pub(crate) mod waiter;
mod xattr;

use std::time::Instant;

use io_uring::{cqueue, opcode};
use qtfs_proto::consts::errno;
use qtfs_proto::*;

pub(crate) use state::{Fs, SVC};

use crate::ring::{Reactor, Service, UD_IGNORE, svc_of, svc_ud};
use common::{Req, fail, reply_now};
use req::FsReq;
use state::{Ctx, FsOp};
use steps::Step;

/// Hands a request frame to its operation.
fn dispatch(core: &mut Ctx, key: usize, h: FrameHeader, op: Op, payload: &[u8]) {
    let t0 = Instant::now();
    let Some(session) = core.r.conns.get(key).and_then(|c| c.session.clone()) else {
        reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EPROTO));
        return;
    };
    // A request that may change a file system marks its session as the maker of the
    // engine's coming fanotify events (`notify`: its own changes are not echoed to it);
    // `begin` hands the mark to the request when it goes asynchronous.
    if changes(op)
        && let Some(n) = &core.r.shared.notify
    {
        n.begin_change(&session);
        core.fs.noting = true;
    }
    let rq = Req { key, h, op, t0, session, payload };
    let rq = &rq;
    match op {
        Op::MOUNT => export::mount(core, rq),
        Op::UMOUNT => export::umount(core, rq),
        Op::LOOKUP => attr::lookup(core, rq),
        Op::GETATTR => attr::getattr(core, rq),
        Op::FGETATTR => attr::fgetattr(core, rq),
        Op::STATFS => attr::statfs(core, rq),
        Op::SETATTR => attr::setattr(core, rq),
        Op::MKDIR => names::mkdir(core, rq),
        Op::MKNOD => names::mknod(core, rq),
        Op::SYMLINK => names::symlink(core, rq),
        Op::LINK => names::link(core, rq),
        Op::RENAME => names::rename(core, rq),
        Op::UNLINK => names::unlink(core, rq),
        Op::RMDIR => names::rmdir(core, rq),
        Op::READLINK => names::readlink(core, rq),
        Op::OPEN => open::open(core, rq),
        Op::CREATE => open::create(core, rq),
        Op::CLOSE => io::close(core, rq),
        Op::READ => io::read(core, rq),
        Op::WRITE => io::write(core, rq),
        Op::FSYNC => io::fsync(core, rq),
        Op::FALLOCATE => io::fallocate(core, rq),
        Op::LLSEEK => io::llseek(core, rq),
        Op::FIFO_POLL => io::fifo_poll(core, rq),
        Op::READDIR => dir::readdir(core, rq),
        Op::XATTR_LIST => xattr::list(core, rq),
        Op::XATTR_GET => xattr::get(core, rq),
        Op::XATTR_SET => xattr::set(core, rq),
        Op::XATTR_REMOVE => xattr::remove(core, rq),
        Op::SYSMOUNT => sysmount::sysmount(core, rq),
        Op::SYSUMOUNT => sysmount::sysumount(core, rq),
        Op::LOCK_GET => locks::lock_get(core, rq),
        Op::LOCK_SET => locks::lock_set(core, rq),
        Op::CANCEL => locks::cancel(core, rq),
        Op::EPOLL_CTL => epoll::ctl(core, rq),
        Op::IOCTL => ioctl::ioctl(core, rq),
        Op::KILL => process::kill(core, rq),
        Op::SCHED_GETAFFINITY => process::getaffinity(core, rq),
        Op::SCHED_SETAFFINITY => process::setaffinity(core, rq),
        _ => rq.reply_err(core, errno::ENOSYS),
    }
    if std::mem::take(&mut core.fs.noting)
        && let Some(n) = &core.r.shared.notify
    {
        n.end_change(&rq.session);
    }
}

/// Whether `op` may change a file system (anything not known to only read).
fn changes(op: Op) -> bool {
    !matches!(
        op,
        Op::MOUNT
            | Op::UMOUNT
            | Op::LOOKUP
            | Op::GETATTR
            | Op::FGETATTR
            | Op::STATFS
            | Op::READLINK
            | Op::READ
            | Op::READDIR
            | Op::XATTR_LIST
            | Op::XATTR_GET
            | Op::LLSEEK
            | Op::FIFO_POLL
            | Op::FSYNC
            | Op::CLOSE
            | Op::LOCK_GET
            | Op::LOCK_SET
            | Op::CANCEL
            | Op::EPOLL_CTL
            | Op::KILL
            | Op::SCHED_GETAFFINITY
            | Op::SCHED_SETAFFINITY
    )
}

/// Hands the ring completion `res` of request `r` to the module of the step it finishes.
fn complete(core: &mut Ctx, mut r: Box<FsReq>, res: i32) {
    if !core.r.conns.contains(r.conn()) {
        // Cannot happen: a connection lives while requests refer to it.
        tracing::error!("completion for a vanished connection");
        return;
    }
    match std::mem::take(&mut r.step) {
        Step::Read { got } => io::read_done(core, r, got, res),
        Step::Write => io::write_done(core, r, res),
        Step::Sync => io::sync_done(core, r, res),
        Step::Poll => io::poll_done(core, r, res),
        Step::FifoIo(s) => fifo::io_ready(core, r, s, res),
        Step::Object => attr::object_resolved(core, r, Step::Object, res),
        Step::Statfs => attr::object_resolved(core, r, Step::Statfs, res),
        Step::Setattr(a) => attr::setattr_resolved(core, r, a, res),
        Step::Readlink => names::readlink_resolved(core, r, res),
        Step::Remove(s) => names::remove_step(core, r, s, res),
        Step::Make(s) => names::make_step(core, r, s, res),
        Step::Link(s) => names::link_step(core, r, s, res),
        Step::Rename(s) => names::rename_step(core, r, s, res),
        Step::Open(s) => open::step_done(core, r, s, res),
        Step::Readdir(a) => dir::opened(core, r, a, res),
        Step::Xattr(a) => xattr::resolved(core, r, a, res),
        Step::Sysmount(s) => sysmount::sysmount_step(core, r, s, res),
        Step::Sysumount { flags } => sysmount::sysumount_resolved(core, r, flags, res),
        Step::LockWait(w) => locks::wait_done(core, r, w, res),
        Step::Idle => {
            tracing::error!(op = %r.op, "completion for a request without a step");
            fail(core, r, errno::EIO)
        }
    }
}

/// The reactor's entry points into the file service of one core.
impl Service for Fs {
    fn on_frame(&mut self, r: &mut Reactor, conn: usize, h: FrameHeader, op: Op, payload: &[u8]) {
        dispatch(&mut Ctx { r, fs: self }, conn, h, op, payload);
    }

    fn on_completion(&mut self, r: &mut Reactor, ud: u64, res: i32, flags: u32) {
        let Some((_, key)) = svc_of(ud) else { return };
        let mut core = Ctx { r, fs: self };
        if cqueue::more(flags) {
            // A multishot poll that stays armed: its registration stays.
            match core.fs.ops.get(key) {
                Some(FsOp::Epoll(_)) => epoll::epoll_event(&mut core, ud, res),
                _ => tracing::error!(ud, "MORE on a single-shot operation"),
            }
            return;
        }
        match core.fs.ops.try_remove(key) {
            Some(FsOp::Req(req)) => complete(&mut core, req, res),
            Some(FsOp::Epoll(reg)) => epoll::epoll_done(&mut core, ud, *reg, res),
            None => tracing::error!(ud, "completion for an unknown file operation"),
        }
    }

    fn owner(&self, ud: u64) -> Option<usize> {
        match self.ops.get(svc_of(ud)?.1)? {
            FsOp::Req(r) => Some(r.conn()),
            FsOp::Epoll(_) => None,
        }
    }

    /// Cancels every ring operation of `conn`'s requests (a READ on an idle FIFO, an
    /// open waiting for a FIFO's other end…): nobody will read their answers, and until
    /// they finish they keep the connection, its session and their descriptors alive.
    /// Each finishes with an error, which releases the connection as usual.
    fn conn_closing(&mut self, r: &mut Reactor, conn: usize) {
        if r.conns.get(conn).is_none_or(|c| c.inflight == 0) {
            return;
        }
        for (key, op) in self.ops.iter() {
            if matches!(op, FsOp::Req(req) if req.conn() == conn) {
                r.push(opcode::AsyncCancel::new(svc_ud(SVC, key)).build().user_data(UD_IGNORE));
            }
        }
    }

    /// Another core may have released what requests parked here wait for.
    fn on_wake(&mut self, r: &mut Reactor) {
        waiter::on_wake(&mut Ctx { r, fs: self });
    }

    fn on_tick(&mut self, _r: &mut Reactor, trim: bool) {
        if trim {
            self.reqs.truncate(64);
            self.reqs.shrink_to_fit();
        }
    }

    fn abandon(&mut self, ud: u64, _res: i32, flags: u32) {
        if let Some((_, key)) = svc_of(ud)
            && !cqueue::more(flags)
        {
            self.ops.try_remove(key);
        }
    }

    fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.ops));
    }
}
