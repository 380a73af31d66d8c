//! `-o relay`: HOST character devices and FIFOs used through the mount (a VM's console,
//! a pty under the HOST's `/dev/pts`, a HOST FIFO).
//!
//! A FUSE mount cannot hand a device or FIFO inode through: for `S_IFCHR`/`S_IFIFO` the
//! kernel opens the *local* device with that number, or a local pipe, and never asks us.
//! So on a mount with `-o relay` such HOST inodes are **presented as regular files of
//! size 0** (no blocks, no device number) and every operation on an open one is relayed
//! to the HOST object through the engine:
//!
//! - open: opened on the HOST with the caller's flags (the engine applies
//!   `--allow-devices`, so a device it does not allow fails with EACCES, and it emulates a
//!   blocking FIFO open on a ring timer), answered with `FOPEN_DIRECT_IO |
//!   FOPEN_NONSEEKABLE` (no page cache, no offsets, reads not clamped to the size). The
//!   engine handle is always non-blocking (a FIFO opened blocking is re-opened so once
//!   its open has waited); every wait happens here.
//! - read/write: a caller whose file is `O_NONBLOCK` (the flag as it is now, `fcntl`
//!   included: the kernel sends it with every request) gets EAGAIN; otherwise the FUSE
//!   worker waits with FIFO_POLL in steps of [`STEP_MS`] and retries, and gives up with
//!   EINTR once the caller has a signal pending (the kernel would have sent
//!   FUSE_INTERRUPT). **A blocked read or write holds one FUSE worker thread**
//!   (`-o threads`, default 32) and nothing else: no lock of the file system, no engine
//!   core or io-wq worker (the engine parks FIFO_POLL as a poll-armed ring operation).
//!   So at most `threads - 1` callers can block at once without delaying the rest.
//! - poll/epoll/select: FUSE_POLL answers the HOST object's readiness (FIFO_POLL with a
//!   zero timeout); when the kernel asks to be notified, a watcher thread of that open
//!   file waits with FIFO_POLL and sends the kernel's poll wake-up when it fires (level
//!   triggered, so nothing is lost between the answer and the watch).
//! - ioctl: a regular FUSE file only gets "restricted" ioctls whose encoding carries
//!   the argument size, and the terminal ones (`TCGETS`, `TCSETS*`, …) carry none, so
//!   their termios cannot travel. They are accepted and do nothing: a program setting
//!   raw mode (libvirt's console does `tcgetattr`/`cfmakeraw`/`tcsetattr`) proceeds, and
//!   the HOST end keeps the mode its owner gave it (qemu puts its pty in raw mode).
//!   Every other ioctl fails with ENOTTY.
//! - `stat` shows a regular file; the real type is in the extended attribute
//!   [`XATTR`] (`c MAJOR:MINOR` or `p`). `libudsproxy.so` (preloaded into libvirtd)
//!   reads it in `fstat` so that libvirt, which refuses a read-write stream on a regular
//!   file, sees the character device it expects.
//!
//! The presentation rule: with `-o relay`, **every HOST character device and FIFO** of
//! the mount is relayed (block devices and sockets are not); without it nothing changes
//! (a FIFO on a mount is then a local pipe of the DPU, a device the DPU's own device).
//! It is a mount option, not automatic, because it changes what `stat` says; a mount of
//! the HOST's `/dev/pts` (the libvirt use case's consoles) wants it, a data export not.
//!
//! Owns the per-open-file relay state (the poll watcher) and the blocking loops.

use std::sync::Arc;

use crate::kernel::{Errno, FileAttr, FileType, PollEvents, PollNotifier, ReplyData, ReplyPoll, ReplyWrite};
use parking_lot::{Condvar, Mutex};
use qtfs_client::{ClientError, Ops, Result};
use qtfs_proto::{Attr, MAX_IO};

use crate::remote::{OpenFile, Remote, Retry, Wait, caller_signalled};

/// The extended attribute that tells a relayed file's HOST type.
pub const XATTR: &str = "user.qtfs.relay";
/// The longest a blocked read or write waits before it looks at its caller's signals.
pub const STEP_MS: u32 = 200;
/// How long the poll watcher waits per FIFO_POLL before it checks it is still wanted.
const WATCH_MS: u32 = 1000;

/// Whether an object of HOST mode `mode` is relayed on a `-o relay` mount.
pub fn is_relayed(mode: u32) -> bool {
    matches!(mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFIFO)
}

/// A relayed file's attributes as the kernel sees them: a regular file of size 0.
pub fn present(fa: &mut FileAttr) {
    fa.kind = FileType::RegularFile;
    fa.size = 0;
    fa.blocks = 0;
    fa.rdev = 0;
}

/// The value of [`XATTR`] for a relayed object: `c MAJOR:MINOR` or `p`.
pub fn marker(a: &Attr) -> Vec<u8> {
    if a.mode & libc::S_IFMT == libc::S_IFCHR {
        format!("c {}:{}", a.rdev_major, a.rdev_minor).into_bytes()
    } else {
        b"p".to_vec()
    }
}

/// Terminal ioctls accepted (and ignored) on a relayed file; see the module comment.
pub fn ignored_ioctl(cmd: u32) -> bool {
    const TERMINAL: &[u64] = &[
        libc::TCGETS,
        libc::TCSETS,
        libc::TCSETSW,
        libc::TCSETSF,
        libc::TCGETS2,
        libc::TCSETS2,
        libc::TCSETSW2,
        libc::TCSETSF2,
        libc::TCFLSH,
        libc::TCXONC,
        libc::TCSBRK,
        libc::TIOCGWINSZ,
        libc::TIOCSWINSZ,
    ];
    TERMINAL.contains(&(cmd as u64))
}

#[derive(Default)]
struct Watch {
    /// The kernel's pending poll: wake it when the events come.
    pending: Option<(PollNotifier, u32)>,
    running: bool,
    closed: bool,
}

/// The relay state of one open file.
#[derive(Default)]
pub struct Relay {
    watch: Mutex<Watch>,
    changed: Condvar,
}

fn nonblock(flags: i32) -> bool {
    flags & libc::O_NONBLOCK != 0
}

fn would_block(e: &ClientError) -> bool {
    matches!(e, ClientError::Remote(libc::EAGAIN))
}

impl Relay {
    /// Waits (one step) for `events` on the handle; the caller retries afterwards.
    fn wait_step(&self, remote: &Remote, w: &Wait, f: &OpenFile, events: u32, pid: u32) -> Result<()> {
        remote.handle_op(w, f, Retry::Idempotent, |_| None, |h, ep| remote.conn_in(ep).poll(h, events, STEP_MS))?;
        if caller_signalled(pid) {
            return Err(ClientError::Remote(libc::EINTR));
        }
        Ok(())
    }

    /// READ of a relayed file: data, EOF, EAGAIN (non-blocking caller) or a wait.
    #[allow(clippy::too_many_arguments)]
    pub fn read(&self, remote: &Remote, w: &Wait, f: &OpenFile, len: u32, flags: i32, pid: u32, reply: ReplyData) {
        let mut reply = Some(reply);
        loop {
            let r = remote.handle_op(
                w,
                f,
                Retry::Idempotent,
                |_| None,
                |h, ep| {
                    remote.conn_in(ep).read_with(h, 0, len, |data| {
                        if let Some(r) = reply.take() {
                            r.data(data);
                        }
                        Ok(())
                    })
                },
            );
            let e = match r {
                Ok(()) => return,
                Err(e) => e,
            };
            let Some(rp) = reply.take() else { return };
            if !would_block(&e) || nonblock(flags) {
                return rp.error(errno(&e));
            }
            reply = Some(rp);
            if let Err(e) = self.wait_step(remote, w, f, libc::POLLIN as u32, pid) {
                if let Some(rp) = reply.take() {
                    rp.error(errno(&e));
                }
                return;
            }
        }
    }

    /// WRITE of a relayed file: all of `data` for a blocking caller (or what was written
    /// before an error), what fits for a non-blocking one.
    #[allow(clippy::too_many_arguments)]
    pub fn write(&self, remote: &Remote, w: &Wait, f: &OpenFile, data: &[u8], flags: i32, pid: u32, reply: ReplyWrite) {
        let mut done = 0usize;
        while done < data.len() {
            let end = (done + MAX_IO).min(data.len());
            let chunk = data.get(done..end).unwrap_or_default();
            // A write to a FIFO or tty is not repeatable: never resent after a drop.
            match remote.handle_op(w, f, Retry::Once, |_| None, |h, ep| remote.conn_in(ep).write(h, 0, chunk)) {
                Ok(n) => {
                    done += n as usize;
                    if nonblock(flags) || n == 0 {
                        break;
                    }
                }
                Err(e) if would_block(&e) && !nonblock(flags) => {
                    if let Err(e) = self.wait_step(remote, w, f, libc::POLLOUT as u32, pid) {
                        if done == 0 {
                            return reply.error(errno(&e));
                        }
                        break;
                    }
                }
                Err(e) if done == 0 => return reply.error(errno(&e)),
                Err(_) => break,
            }
        }
        reply.written(done as u32)
    }

    /// FUSE_POLL: the readiness now; when the kernel wants a notification and nothing is
    /// ready, the watcher thread sends it once something is.
    #[allow(clippy::too_many_arguments)]
    pub fn poll(
        self: &Arc<Self>,
        remote: &Arc<Remote>,
        w: &Wait,
        f: &Arc<OpenFile>,
        ph: PollNotifier,
        events: PollEvents,
        schedule: bool,
        reply: ReplyPoll,
    ) {
        let ev = events.bits();
        match remote.handle_op(w, f, Retry::Idempotent, |_| None, |h, ep| remote.conn_in(ep).poll(h, ev, 0)) {
            Ok(rev) if rev != 0 || !schedule => reply.poll(PollEvents::from_bits_truncate(rev)),
            Ok(_) => {
                let spawn = {
                    let mut st = self.watch.lock();
                    st.pending = Some((ph, ev));
                    let spawn = !st.running && !st.closed;
                    st.running |= spawn;
                    spawn
                };
                self.changed.notify_all();
                if spawn {
                    let (me, remote, f) = (self.clone(), remote.clone(), f.clone());
                    let r = std::thread::Builder::new().name("qtfs-relay-poll".into()).spawn(move || {
                        me.watcher(&remote, &f);
                    });
                    if let Err(e) = r {
                        tracing::warn!("poll watcher thread: {e}");
                        self.watch.lock().running = false;
                    }
                }
                reply.poll(PollEvents::empty())
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// The watcher: while the kernel waits for events, FIFO_POLL on the shared session
    /// (not a FUSE worker's connection) and wake the kernel when they come. Ends when the
    /// file is released or nobody has waited for a while.
    fn watcher(&self, remote: &Remote, f: &OpenFile) {
        loop {
            let events = {
                let mut st = self.watch.lock();
                loop {
                    if st.closed {
                        st.running = false;
                        return;
                    }
                    if let Some((_, ev)) = &st.pending {
                        break *ev;
                    }
                    // Idle: stay a while for the next poll (a console polls constantly).
                    if self.changed.wait_for(&mut st, std::time::Duration::from_secs(5)).timed_out()
                        && st.pending.is_none()
                    {
                        st.running = false;
                        return;
                    }
                }
            };
            let (h, epoch) = f.current_handle();
            let r = remote.session.in_epoch(epoch).poll(h, events, WATCH_MS);
            let fire = match r {
                Ok(rev) => rev != 0,
                // The kernel polls again and sees the error (or the re-opened file).
                Err(_) => true,
            };
            if fire {
                let p = self.watch.lock().pending.take();
                if let Some((ph, _)) = p {
                    let _ = ph.notify();
                }
                if r.is_err() {
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(STEP_MS)));
                }
            }
        }
    }

    /// The file is released: the watcher ends.
    pub fn close(&self) {
        let mut st = self.watch.lock();
        st.closed = true;
        st.pending = None;
        drop(st);
        self.changed.notify_all();
    }
}

fn errno(e: &ClientError) -> Errno {
    let n = e.errno();
    if n <= 0 { Errno::EIO } else { Errno::from_i32(n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_and_marker() {
        assert!(is_relayed(libc::S_IFCHR | 0o620));
        assert!(is_relayed(libc::S_IFIFO | 0o600));
        assert!(!is_relayed(libc::S_IFBLK | 0o600));
        assert!(!is_relayed(libc::S_IFREG | 0o600));
        assert!(!is_relayed(libc::S_IFSOCK | 0o600));
        let a = Attr { mode: libc::S_IFCHR | 0o620, rdev_major: 136, rdev_minor: 3, ..Default::default() };
        assert_eq!(marker(&a), b"c 136:3");
        assert_eq!(marker(&Attr { mode: libc::S_IFIFO, ..Default::default() }), b"p");
        assert!(ignored_ioctl(libc::TCGETS as u32));
        assert!(!ignored_ioctl(libc::FIONREAD as u32));
    }
}
