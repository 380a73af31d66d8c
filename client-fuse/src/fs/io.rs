//! Data on open files: READ (straight from the connection's buffer to the kernel), WRITE
//! (in engine-sized pieces, cgroup pid translation, set-id clearing), FSYNC, FALLOCATE,
//! LSEEK, and POLL/IOCTL (only relayed files answer them).

use crate::kernel::{Errno, FileHandle, INodeNo, OpenFlags, ReplyData, ReplyEmpty, ReplyLseek, ReplyWrite, Request};
use qtfs_client::Ops;
use qtfs_proto::MAX_IO;

use super::{MAX_RW, QtfsFs, errno};
use crate::procfs::{ProcMode, Route};
use crate::relay;
use crate::remote::{Retry, Wait};

impl QtfsFs {
    /// Whether writes into `node` are HOST cgroup pid writes ([`crate::cgroups`]), told
    /// by its name alone: asked for every write (and where it is served), so no path is
    /// built for the others.
    pub(super) fn is_cgroup_pid_file(&self, node: u64) -> bool {
        self.cgroup_pids.is_some() && self.nodes.lock().name(node).is_some_and(crate::cgroups::is_pid_file)
    }

    /// A write into a HOST cgroup's pid file (see [`crate::cgroups`]); None for others.
    pub(super) fn cgroup_write(
        &self,
        w: &Wait,
        node: u64,
        writer: u32,
        data: &[u8],
    ) -> Option<crate::cgroups::Intercept> {
        let pw = self.cgroup_pids.as_ref().filter(|_| self.is_cgroup_pid_file(node))?;
        let path = self.nodes.lock().path(node)?;
        match self.route(path) {
            Route::Remote(p) => Some(pw.intercept(&self.remote, w, &p, writer, data)),
            Route::Local(_) | Route::SelfLink(_) => None,
        }
    }
}

pub(super) fn read(
    fs: &QtfsFs,
    req: &Request,
    fh: FileHandle,
    offset: u64,
    size: u32,
    flags: OpenFlags,
    reply: ReplyData,
) {
    if let Some(rl) = fs.relay_of(fh) {
        return match fs.file(fh) {
            Ok(f) => rl.read(&fs.remote, &fs.wait(req), &f, size.min(MAX_RW), flags.0, req.pid(), reply),
            Err(e) => reply.error(e),
        };
    }
    if let Some(lf) = fs.proc.as_ref().and_then(|pm| pm.file(fh.0)) {
        return match ProcMode::read(&lf, offset, size.min(MAX_RW)) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))),
        };
    }
    let f = match fs.file(fh) {
        Ok(f) => f,
        Err(e) => return reply.error(e),
    };
    let len = size.min(MAX_RW);
    // The data goes to the kernel straight from the connection's receive buffer.
    let mut reply = Some(reply);
    let r = fs.remote.handle_op(&fs.wait(req), &f, Retry::Idempotent, fs.path_fn(), |h, ep| {
        fs.remote.conn_in(ep).read_with(h, offset, len, |data| {
            if let Some(r) = reply.take() {
                r.data(data);
            }
            Ok(())
        })
    });
    if let (Err(e), Some(reply)) = (r, reply) {
        reply.error(errno(&e))
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn write(
    fs: &QtfsFs,
    req: &Request,
    ino: INodeNo,
    fh: FileHandle,
    offset: u64,
    data: &[u8],
    kill_suid: bool,
    flags: OpenFlags,
    reply: ReplyWrite,
) {
    if let Some(rl) = fs.relay_of(fh) {
        return match fs.file(fh) {
            Ok(f) => rl.write(&fs.remote, &fs.wait(req), &f, data, flags.0, req.pid(), reply),
            Err(e) => reply.error(e),
        };
    }
    if let Some(lf) = fs.proc.as_ref().and_then(|pm| pm.file(fh.0)) {
        use std::os::unix::fs::FileExt;
        return match lf.write_at(data, offset) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))),
        };
    }
    let f = match fs.file(fh) {
        Ok(f) => f,
        Err(e) => return reply.error(e),
    };
    let w = fs.wait(req);
    // A process number written into a HOST cgroup is translated, held back or refused
    // (crate::cgroups); the caller is told its own length was written.
    let (translated, asked) = (fs.cgroup_write(&w, ino.0, req.pid(), data), data.len());
    let data = match &translated {
        Some(crate::cgroups::Intercept::Send(v)) => &v[..],
        Some(crate::cgroups::Intercept::Done) => return reply.written(asked as u32),
        Some(crate::cgroups::Intercept::Fail(e)) => return reply.error(Errno::from_i32(*e)),
        Some(crate::cgroups::Intercept::Pass) | None => data,
    };
    // A positional write does the same when repeated; an append does not, so an
    // append whose fate is unknown after a dropped connection fails with EIO.
    let retry = if f.is_append() { Retry::Once } else { Retry::Idempotent };
    let mut done = 0usize;
    while done < data.len() {
        let chunk = &data[done..(done + MAX_IO).min(data.len())];
        let off = offset + done as u64;
        match fs.remote.handle_op(&w, &f, retry, fs.path_fn(), |h, ep| fs.remote.conn_in(ep).write(h, off, chunk)) {
            Ok(0) => break,
            Ok(n) => done += n as usize,
            Err(e) if done == 0 => return reply.error(errno(&e)),
            Err(_) => break,
        }
    }
    fs.nodes.lock().set_cache_stamp(ino.0, None);
    if translated.as_ref().is_some_and(|t| *t != crate::cgroups::Intercept::Pass) && done == data.len() {
        done = asked;
    }
    if kill_suid && done > 0 {
        fs.kill_suid(&w, &f);
    }
    reply.written(done as u32)
}

pub(super) fn fsync(fs: &QtfsFs, req: &Request, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
    if fs.proc.as_ref().is_some_and(|pm| pm.file(fh.0).is_some()) {
        // A local /proc file: nothing to make durable.
        return reply.ok();
    }
    let f = match fs.file(fh) {
        Ok(f) => f,
        Err(e) => return reply.error(e),
    };
    match fs
        .remote
        .handle_op(&fs.wait(req), &f, Retry::Idempotent, fs.path_fn(), |h, ep| fs.remote.conn_in(ep).fsync(h, datasync))
    {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn fallocate(
    fs: &QtfsFs,
    req: &Request,
    fh: FileHandle,
    offset: u64,
    length: u64,
    mode: i32,
    reply: ReplyEmpty,
) {
    let f = match fs.file(fh) {
        Ok(f) => f,
        Err(e) => return reply.error(e),
    };
    // Allocating, punching or zeroing a range twice is the same; shifting ranges
    // (collapse/insert) is not.
    let shifting = mode & (libc::FALLOC_FL_COLLAPSE_RANGE | libc::FALLOC_FL_INSERT_RANGE) != 0;
    let retry = if shifting { Retry::Once } else { Retry::Idempotent };
    match fs.remote.handle_op(&fs.wait(req), &f, retry, fs.path_fn(), |h, ep| {
        fs.remote.conn_in(ep).fallocate(h, mode as u32, offset, length)
    }) {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn lseek(fs: &QtfsFs, req: &Request, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
    let f = match fs.file(fh) {
        Ok(f) => f,
        Err(e) => return reply.error(e),
    };
    match fs.remote.handle_op(&fs.wait(req), &f, Retry::Idempotent, fs.path_fn(), |h, ep| {
        fs.remote.conn_in(ep).llseek(h, offset, whence as u32)
    }) {
        Ok(o) => reply.offset(o as i64),
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn poll(
    fs: &QtfsFs,
    req: &Request,
    fh: FileHandle,
    ph: crate::kernel::PollNotifier,
    events: crate::kernel::PollEvents,
    flags: crate::kernel::PollFlags,
    reply: crate::kernel::ReplyPoll,
) {
    if !fs.cfg.relay {
        // The kernel stops asking (and reports files always ready).
        return reply.error(Errno::ENOSYS);
    }
    let Some(rl) = fs.relay_of(fh) else {
        // Files and directories are always ready, as without a poll method.
        let ready = libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM;
        return reply.poll(crate::kernel::PollEvents::from_bits_truncate(ready as u32));
    };
    let f = match fs.files.read().get(&fh.0).cloned() {
        Some(f) => f,
        None => return reply.error(Errno::EBADF),
    };
    let schedule = flags.contains(crate::kernel::PollFlags::FUSE_POLL_SCHEDULE_NOTIFY);
    rl.poll(&fs.remote, &fs.wait(req), &f, ph, events, schedule, reply)
}

pub(super) fn ioctl(fs: &QtfsFs, fh: FileHandle, cmd: u32, reply: crate::kernel::ReplyIoctl) {
    match fs.relay_of(fh) {
        // Terminal attributes cannot travel (see crate::relay): accepted, no effect.
        Some(_) if relay::ignored_ioctl(cmd) => reply.ioctl(0, &[]),
        Some(_) => reply.error(Errno::ENOTTY),
        None => reply.error(Errno::ENOSYS),
    }
}
