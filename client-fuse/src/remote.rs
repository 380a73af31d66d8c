//! The engine as the file system sees it: one [`Session`] plus the export id, and the
//! rules for surviving an engine restart.
//!
//! - Path requests carry the export id of the current session epoch. When the engine
//!   lost the session (a restart: [`Session::epoch`] moved), the export is mounted again
//!   before the request is retried.
//! - Handle requests carry the handle of the epoch in which the file was opened; they
//!   are sent with [`Session::submit_in_epoch`], so an old handle never reaches a new
//!   session (where the same number may be another file). A file from an older epoch
//!   is re-opened by path with its original flags (less O_CREAT/O_EXCL/O_TRUNC) first.
//! - Idempotent requests (lookups, reads, positional writes, fsync, setattr…) are
//!   retried while the connection comes back. Others (create, unlink, rename,
//!   appends…) may or may not have happened when a connection dropped: they fail with
//!   EIO rather than guess. A write is only ever acknowledged to the kernel after the
//!   engine confirmed it.
//!
//! ## Waiting for a restarted engine: bounded, interruptible, under no lock
//!
//! Every FUSE request carries a [`Wait`]: a deadline `reconnect_timeout` after it
//! arrived, and the calling thread's pid. Whatever it waits for (the engine to accept
//! connections again, the re-mount) it waits for in steps of at most [`STEP`], and it
//! fails with ETIMEDOUT once the deadline has passed, or once the engine has been
//! unreachable for `reconnect_timeout` (from the first failed connection attempt to the
//! next successful one). The second rule bounds a system call, not only a request: a
//! `stat` may cost the kernel two requests (a failed re-validation, then a fresh
//! LOOKUP), and `ls -l` a hundred; during a long outage all but the first fail at once
//! instead of each waiting the whole bound.
//!
//! The re-mount (a new session, MOUNT again) runs on a thread of its own,
//! `qtfs-remount`, started by the first request that finds the session epoch ahead of
//! the mounted one, or the engine without our session when attaching its connection.
//! That thread talks to the engine holding no lock; then it re-keys the root in the node
//! table (taking that lock alone), publishes the new export under the short state lock
//! and wakes the waiting requests. Requests wait for it on a condition variable with
//! their own deadline (a request served as a task of a ring thread sleeps in 2 ms steps
//! instead, so that its thread serves on), never on a lock held across network I/O, and
//! the file system holds none of its locks (node table, file tables) while a request
//! waits here. The deadlock this replaces: a `stat` held the node table's lock while it
//! re-mounted, and the re-mount needed that lock to re-key the root, so that request and
//! every other one hung for good. The thread gives up after `reconnect_timeout` of
//! failures; the next request starts another. Re-opening files needs no such thread:
//! each request re-opens its own file (a race between two ends with one handle kept, one
//! closed).
//!
//! Interrupts: FUSE_INTERRUPT is answered ENOSYS ([`crate::kernel::dispatch`]), after
//! which the kernel sends no more, so a signal does not reach us that way. Instead, at every step
//! a waiting request looks at its caller's pending signals (`/proc/PID/status`) and, if
//! one is pending and not blocked, fails with EINTR: the answer of a file system that
//! honours FUSE_INTERRUPT. A caller killed with SIGKILL thus dies within one step,
//! instead of sitting in D state (the kernel waits uninterruptibly for a request once it
//! has handed it to us) until the deadline.
//!
//! Owns the session, the export id and the open-file records' engine handles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use qtfs_client::{ClientError, Cred, Result, Session};
use qtfs_proto::consts::open as oflags;
use qtfs_proto::*;

use crate::kernel::uring::tasks;

/// The longest a waiting request goes without looking at its deadline and its
/// caller's signals; also the pause between attempts to reach the engine.
pub const STEP: Duration = Duration::from_millis(25);

/// How often a request served as a task of a ring thread looks whether the re-mount it
/// waits for is done (a re-mount takes a connection and one MOUNT: milliseconds).
const TASK_NAP: Duration = Duration::from_millis(2);

/// Whether a request may be sent again after a dropped connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Same effect when done twice: retry after a reconnect.
    Idempotent,
    /// Fail with EIO if the connection dropped while it was in flight.
    Once,
}

/// How long one FUSE request may wait for the engine, and whose signals cut it short.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    deadline: Instant,
    /// The calling thread (0: the kernel itself, e.g. write-back; never interrupted).
    pid: u32,
}

impl Wait {
    pub fn new(bound: Duration, pid: u32) -> Wait {
        Wait { deadline: Instant::now() + bound, pid }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `Timeout` once the deadline passed, `Remote(EINTR)` when the caller has a signal
    /// to take.
    pub fn check(&self) -> Result<()> {
        if Instant::now() >= self.deadline {
            return Err(ClientError::Timeout);
        }
        if caller_signalled(self.pid) {
            return Err(ClientError::Remote(libc::EINTR));
        }
        Ok(())
    }

    /// The end of the next step of a wait on a condition.
    fn step_end(&self) -> Instant {
        (Instant::now() + STEP).min(self.deadline)
    }
}

/// Whether thread `pid` has a signal pending that it does not block: the kernel would
/// have sent FUSE_INTERRUPT for it. A caller we cannot see counts as not signalled.
pub(crate) fn caller_signalled(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let mask = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (mask("SigPnd:") | mask("ShdPnd:")) & !mask("SigBlk:") != 0
}

#[derive(Debug, Clone, Copy)]
struct Mount {
    export: u32,
    epoch: u64,
}

#[derive(Debug)]
struct State {
    mount: Mount,
    /// The re-mount thread is running.
    renewing: bool,
    /// Re-mount attempts finished, so a waiter knows the one it waited for is over.
    attempts: u64,
    /// The errno of the last attempt when the engine refused the MOUNT (rather than
    /// being unreachable): the requests that waited for it fail with it.
    refused: Option<i32>,
}

/// What the re-mount thread shares with the requests.
struct Shared {
    session: Session,
    host_path: String,
    mount_cred: Cred,
    give_up_after: Duration,
    /// Since when no connection to the engine could be made (None: it answered last).
    unreachable_since: Mutex<Option<Instant>>,
    state: Mutex<State>,
    changed: Condvar,
    on_remount: Mutex<Option<RemountHook>>,
}

/// A file opened on the engine, as the FUSE file handle refers to it.
#[derive(Debug)]
pub struct OpenFile {
    /// The node it was opened through (to find its path for a re-open).
    pub node: u64,
    /// Wire open flags used to (re-)open it.
    pub flags: u32,
    /// (engine handle, session epoch it belongs to).
    handle: Mutex<(u64, u64)>,
}

impl OpenFile {
    pub fn new(node: u64, flags: u32, handle: u64, epoch: u64) -> OpenFile {
        OpenFile { node, flags, handle: Mutex::new((handle, epoch)) }
    }
    pub fn is_append(&self) -> bool {
        self.flags & oflags::APPEND != 0
    }
    fn current(&self) -> (u64, u64) {
        *self.handle.lock()
    }
    /// (engine handle, session epoch) now, for a request sent outside [`Remote::handle_op`]
    /// (the relay's poll watcher, [`crate::relay`]).
    pub fn current_handle(&self) -> (u64, u64) {
        self.current()
    }
}

/// Called with the export root's attributes after a re-mount, on the re-mount thread.
pub type RemountHook = Box<dyn Fn(&Attr) + Send + Sync>;

/// Session + export + restart handling.
pub struct Remote {
    /// Tells this Remote's per-thread connections from another's.
    pub(crate) id: u64,
    pub session: Session,
    retry_for: Duration,
    shared: Arc<Shared>,
}

fn transient(e: &ClientError) -> bool {
    matches!(e, ClientError::Disconnected | ClientError::Io { .. })
}

impl Remote {
    /// Mounts `host_path` on an established session. `retry_for` bounds every request's
    /// wait for a restarted engine.
    pub fn mount(session: Session, host_path: &str, retry_for: Duration) -> Result<(Remote, Attr)> {
        let cred = Cred::current();
        let epoch = session.epoch();
        let (export, root) = session.mount(host_path, &cred)?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Shared {
            session: session.clone(),
            host_path: host_path.to_string(),
            mount_cred: cred,
            give_up_after: retry_for,
            unreachable_since: Mutex::new(None),
            state: Mutex::new(State { mount: Mount { export, epoch }, renewing: false, attempts: 0, refused: None }),
            changed: Condvar::new(),
            on_remount: Mutex::new(None),
        });
        let r = Remote { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), session, retry_for, shared };
        Ok((r, root))
    }

    /// Sets what to do with the root's attributes after a re-mount. The hook runs on the
    /// re-mount thread while requests wait for it: it must not wait for them.
    pub fn set_on_remount(&self, hook: RemountHook) {
        *self.shared.on_remount.lock() = Some(hook);
    }

    /// The wait allowance of a request made by thread `pid`, starting now.
    pub fn wait_for(&self, pid: u32) -> Wait {
        Wait::new(self.retry_for, pid)
    }

    /// Records that a connection to the engine could (`true`) or could not be made.
    pub(crate) fn reachable(&self, yes: bool) {
        let mut since = self.shared.unreachable_since.lock();
        match (yes, *since) {
            (true, Some(_)) => *since = None,
            (false, None) => *since = Some(Instant::now()),
            _ => {}
        }
    }

    /// [`Wait::check`], and `Timeout` once the engine has been unreachable for the bound.
    fn check(&self, w: &Wait) -> Result<()> {
        w.check()?;
        if self.shared.unreachable_since.lock().is_some_and(|t| t.elapsed() >= self.retry_for) {
            return Err(ClientError::Timeout);
        }
        Ok(())
    }

    /// One step of waiting for the engine to come back.
    fn pause(&self, w: &Wait) -> Result<()> {
        self.check(w)?;
        // On a ring thread the task sleeps, not the thread: its queue serves on.
        tasks::sleep(w.deadline.saturating_duration_since(Instant::now()).min(STEP));
        self.check(w)
    }

    /// Starts the re-mount thread unless it runs already (the engine lost our session).
    pub(crate) fn renew(&self) {
        let mut st = self.shared.state.lock();
        if !st.renewing
            && let Err(e) = self.start_renewal(&mut st)
        {
            tracing::warn!("cannot re-mount after an engine restart: {e}");
        }
    }

    fn start_renewal(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        let sh = self.shared.clone();
        std::thread::Builder::new()
            .name("qtfs-remount".into())
            .spawn(move || renew(&sh))
            .map_err(|e| ClientError::io("spawn the re-mount thread", e))?;
        // Set under the lock the thread needs to publish, so it cannot end unseen.
        st.renewing = true;
        Ok(())
    }

    /// The export of the current epoch, waiting (bounded by `w`) for a re-mount.
    fn export(&self, w: &Wait) -> Result<Mount> {
        let sh = &*self.shared;
        let mut st = sh.state.lock();
        loop {
            if !st.renewing {
                if st.mount.epoch == self.session.epoch() {
                    return Ok(st.mount);
                }
                self.start_renewal(&mut st)?;
            }
            let attempt = st.attempts;
            loop {
                if tasks::in_task() {
                    // The re-mount thread cannot wake a task of another thread, and a wait
                    // on the condition would stall every request of this ring thread: the
                    // task looks again after a short sleep of its own.
                    let nap = w.step_end().saturating_duration_since(Instant::now()).min(TASK_NAP);
                    MutexGuard::unlocked(&mut st, || tasks::sleep(nap));
                } else {
                    sh.changed.wait_until(&mut st, w.step_end());
                }
                if !st.renewing || st.attempts != attempt {
                    break;
                }
                // No lock held while looking at the caller.
                MutexGuard::unlocked(&mut st, || self.check(w))?;
            }
            if let Some(e) = st.refused
                && st.mount.epoch != self.session.epoch()
            {
                return Err(ClientError::Remote(e));
            }
        }
    }

    /// Runs a path request `f(export)` with the restart rules.
    pub fn path_op<T>(&self, w: &Wait, retry: Retry, mut f: impl FnMut(u32) -> Result<T>) -> Result<T> {
        loop {
            let st = self.export(w)?;
            match self.attach(Some(w.deadline())) {
                Ok(epoch) if epoch == st.epoch => {}
                // The session moved on meanwhile: wait for its export.
                Ok(_) => continue,
                // Nothing was sent: any request may try again.
                Err(e) if transient(&e) => {
                    self.pause(w)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            match f(st.export) {
                // It may or may not have happened: only an idempotent request is sent again.
                Err(ref e) if transient(e) => {
                    if retry == Retry::Once {
                        return Err(ClientError::Remote(libc::EIO));
                    }
                    self.pause(w)?;
                }
                // The export id belonged to a session the engine has lost: re-mount, retry.
                Err(ClientError::Remote(libc::ESTALE)) if self.session.epoch() != st.epoch => {}
                other => return other,
            }
        }
    }

    /// Runs a handle request `f(handle, epoch)` with the restart rules; `path_of` gives
    /// the file's current path for a re-open.
    pub fn handle_op<T>(
        &self,
        w: &Wait,
        file: &OpenFile,
        retry: Retry,
        path_of: impl Fn(u64) -> Option<Vec<u8>>,
        mut f: impl FnMut(u64, u64) -> Result<T>,
    ) -> Result<T> {
        loop {
            let st = self.export(w)?;
            let (h, epoch) = file.current();
            if epoch != st.epoch {
                match self.reopen(w, st, file, &path_of) {
                    Ok(()) => continue,
                    Err(e) if transient(&e) => {
                        self.pause(w)?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match self.attach(Some(w.deadline())) {
                Ok(e) if e == epoch => {}
                Ok(_) => continue,
                Err(e) if transient(&e) => {
                    self.pause(w)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            match f(h, epoch) {
                Err(ref e) if transient(e) => {
                    if retry == Retry::Once {
                        return Err(ClientError::Remote(libc::EIO));
                    }
                    self.pause(w)?;
                }
                Err(ClientError::Remote(libc::ESTALE | libc::EBADF)) if self.session.epoch() != epoch => {}
                other => return other,
            }
        }
    }

    /// Re-opens a file of an older epoch by its current path in the export `st`.
    fn reopen(&self, w: &Wait, st: Mount, file: &OpenFile, path_of: &impl Fn(u64) -> Option<Vec<u8>>) -> Result<()> {
        let Some(path) = path_of(file.node) else {
            // Unlinked while open: the engine's descriptor died with the old session.
            tracing::warn!(node = file.node, "cannot re-open an unlinked file after an engine restart");
            return Err(ClientError::Remote(libc::EIO));
        };
        if self.attach(Some(w.deadline()))? != st.epoch {
            // The session moved on meanwhile: the caller waits for its export.
            return Err(ClientError::Disconnected);
        }
        let flags = file.flags & !(oflags::CREAT | oflags::EXCL | oflags::TRUNC);
        let (h, epoch, _) = self.open(st.export, &path, flags, &self.shared.mount_cred)?;
        let mut cur = file.handle.lock();
        if cur.1 != epoch {
            *cur = (h, epoch);
            tracing::info!(node = file.node, "re-opened after an engine restart");
        } else {
            // Another thread re-opened it meanwhile.
            drop(cur);
            let _ = self.session.submit_in_epoch(epoch, Op::CLOSE, &HandleReq { handle: h });
        }
        Ok(())
    }

    /// Closes a file's engine handle without waiting (the kernel does not wait for a
    /// release either). A handle of an older epoch died with its session: nothing to send.
    pub fn close(&self, file: &OpenFile) {
        let (h, epoch) = file.current();
        if epoch == self.session.epoch() {
            let _ = self.session.submit_in_epoch(epoch, Op::CLOSE, &HandleReq { handle: h });
        }
    }
}

/// The re-mount thread: a new session and MOUNT again, retried while the engine is
/// unreachable (for `give_up_after` at most); then the result is published.
fn renew(sh: &Shared) {
    let started = Instant::now();
    let outcome = loop {
        // A PING makes the session reconnect; to a restarted engine that is a new
        // session, so the epoch moves on before the MOUNT is sent.
        let _ = sh.session.ping(b"");
        let epoch = sh.session.epoch();
        let e = match sh.session.mount(&sh.host_path, &sh.mount_cred) {
            Ok((export, root)) if sh.session.epoch() == epoch => break Ok((Mount { export, epoch }, root)),
            // Restarted again while mounting: that export id is already stale.
            Ok(_) => ClientError::Disconnected,
            Err(e) => e,
        };
        let unreachable = transient(&e) || matches!(e, ClientError::Timeout);
        if !unreachable || started.elapsed() >= sh.give_up_after {
            break Err(e);
        }
        std::thread::sleep(STEP);
    };
    if let Ok((_, root)) = &outcome
        && let Some(f) = sh.on_remount.lock().as_ref()
    {
        f(root);
    }
    let mut st = sh.state.lock();
    st.renewing = false;
    st.attempts += 1;
    match outcome {
        Ok((m, _)) => {
            st.mount = m;
            st.refused = None;
            tracing::info!(export = m.export, epoch = m.epoch, "engine session renewed: export mounted again");
        }
        Err(e) => {
            let unreachable = transient(&e) || matches!(e, ClientError::Timeout);
            st.refused = (!unreachable).then(|| e.errno());
            tracing::warn!("re-mounting the export after an engine restart failed: {e}");
        }
    }
    drop(st);
    sh.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_testkit::wait_until;
    use std::process::Command;

    #[test]
    fn a_pending_signal_counts_unless_blocked() {
        // A stopped process keeps a SIGTERM pending (it is delivered when it continues).
        let mut child = Command::new("sleep").arg("60").spawn().expect("sleep");
        let pid = child.id();
        assert!(!caller_signalled(pid));
        let sh = |sig: &str| Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
        sh("-STOP");
        sh("-TERM");
        assert!(wait_until(Duration::from_secs(10), || caller_signalled(pid)), "SIGTERM pending is a signal");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!caller_signalled(pid), "a process that is gone is not signalled");
        assert!(!caller_signalled(0), "the kernel itself is never signalled");

        // The same signal pending but blocked by the thread is not one it would take.
        // SAFETY: plain signal-set manipulation on locals and this thread's own mask;
        // the SIGUSR1 raised at this thread is consumed by sigtimedwait before the mask
        // is restored, so it is never delivered.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            let mut old: libc::sigset_t = std::mem::zeroed();
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old), 0);
            let tid = libc::gettid();
            assert_eq!(libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1), 0);
            let blocked_seen = caller_signalled(tid as u32);
            let ts = libc::timespec { tv_sec: 5, tv_nsec: 0 };
            let got = libc::sigtimedwait(&set, std::ptr::null_mut(), &ts);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            assert_eq!(got, libc::SIGUSR1, "the signal was pending");
            assert!(!blocked_seen, "a blocked signal does not interrupt");
        }
    }
}
