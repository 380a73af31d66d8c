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
//!   retried while the connection comes back, for up to `retry_for`. Others (create,
//!   unlink, rename, appends…) may or may not have happened when a connection dropped:
//!   they fail with EIO rather than guess. A write is only ever acknowledged to the
//!   kernel after the engine confirmed it.
//!
//! Owns the session, the export id and the open-file records' engine handles.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use qtfs_client::{ClientError, Cred, Result, Session};
use qtfs_proto::consts::open as oflags;
use qtfs_proto::*;

/// Whether a request may be sent again after a dropped connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Same effect when done twice: retry after a reconnect.
    Idempotent,
    /// Fail with EIO if the connection dropped while it was in flight.
    Once,
}

#[derive(Debug, Clone, Copy)]
struct MountState {
    export: u32,
    epoch: u64,
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
}

/// Called with the export root's attributes after a re-mount.
pub type RemountHook = Box<dyn Fn(&Attr) + Send + Sync>;

/// Session + export + restart handling.
pub struct Remote {
    /// Tells this Remote's per-thread connections from another's.
    pub(crate) id: u64,
    pub session: Session,
    host_path: String,
    mount_cred: Cred,
    state: Mutex<MountState>,
    retry_for: Duration,
    /// Serialises re-mounts so that a restart triggers one MOUNT, not one per thread.
    remount_lock: Mutex<()>,
    /// Called with the new root attributes after a re-mount.
    pub on_remount: Mutex<Option<RemountHook>>,
}

fn transient(e: &ClientError) -> bool {
    matches!(e, ClientError::Disconnected | ClientError::Io { .. })
}

impl Remote {
    /// Mounts `host_path` on an established session.
    pub fn mount(session: Session, host_path: &str, retry_for: Duration) -> Result<(Remote, Attr)> {
        let cred = Cred::current();
        let epoch = session.epoch();
        let (export, root) = session.mount(host_path, &cred)?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let r = Remote {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            session,
            host_path: host_path.to_string(),
            mount_cred: cred,
            state: Mutex::new(MountState { export, epoch }),
            retry_for,
            remount_lock: Mutex::new(()),
            on_remount: Mutex::new(None),
        };
        Ok((r, root))
    }

    /// The export id valid in the current epoch (re-mounting after a restart).
    fn export(&self) -> Result<MountState> {
        let st = *self.state.lock();
        if st.epoch == self.session.epoch() {
            return Ok(st);
        }
        let _g = self.remount_lock.lock();
        loop {
            let st = *self.state.lock();
            let epoch = self.session.epoch();
            if st.epoch == epoch {
                return Ok(st);
            }
            let (export, root) = self.session.mount(&self.host_path, &self.mount_cred)?;
            if self.session.epoch() != epoch {
                // Restarted again while mounting: that export id is already stale.
                continue;
            }
            tracing::info!(export, epoch, "engine session renewed: export mounted again");
            *self.state.lock() = MountState { export, epoch };
            if let Some(f) = self.on_remount.lock().as_ref() {
                f(&root);
            }
            return Ok(MountState { export, epoch });
        }
    }

    /// Runs a path request `f(export)` with the restart rules.
    pub fn path_op<T>(&self, retry: Retry, mut f: impl FnMut(u32) -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + self.retry_for;
        loop {
            let st = match self.export() {
                Ok(s) => s,
                Err(e) if transient(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match f(st.export) {
                // It may or may not have happened: only an idempotent request is sent again.
                Err(ref e) if transient(e) => {
                    if retry == Retry::Once || Instant::now() >= deadline {
                        return Err(ClientError::Remote(libc::EIO));
                    }
                    std::thread::sleep(Duration::from_millis(20));
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
        file: &OpenFile,
        retry: Retry,
        path_of: impl Fn(u64) -> Option<Vec<u8>>,
        mut f: impl FnMut(u64, u64) -> Result<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + self.retry_for;
        loop {
            let (h, epoch) = file.current();
            if epoch != self.session.epoch() {
                match self.reopen(file, &path_of) {
                    Ok(()) => continue,
                    Err(e) if transient(&e) && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match f(h, epoch) {
                Err(ref e) if transient(e) => {
                    if retry == Retry::Once || Instant::now() >= deadline {
                        return Err(ClientError::Remote(libc::EIO));
                    }
                    // Wait for the reconnect (or the new epoch) before trying again.
                    std::thread::sleep(Duration::from_millis(20));
                    let _ = self.export();
                }
                Err(ClientError::Remote(libc::ESTALE | libc::EBADF)) if self.session.epoch() != epoch => {}
                other => return other,
            }
        }
    }

    /// Re-opens a file of an older epoch by its current path.
    fn reopen(&self, file: &OpenFile, path_of: &impl Fn(u64) -> Option<Vec<u8>>) -> Result<()> {
        let st = self.export()?;
        let Some(path) = path_of(file.node) else {
            // Unlinked while open: the engine's descriptor died with the old session.
            tracing::warn!(node = file.node, "cannot re-open an unlinked file after an engine restart");
            return Err(ClientError::Remote(libc::EIO));
        };
        let flags = file.flags & !(oflags::CREAT | oflags::EXCL | oflags::TRUNC);
        let (h, epoch, _) = self.open(st.export, &path, flags, &self.mount_cred)?;
        let mut cur = file.handle.lock();
        if cur.1 != epoch {
            *cur = (h, epoch);
            tracing::info!(node = file.node, "re-opened after an engine restart");
        } else {
            // Another thread re-opened it meanwhile.
            let _ = self.session.submit_in_epoch(epoch, Op::CLOSE, &HandleReq { handle: h });
        }
        Ok(())
    }

    /// Closes a file's engine handle without waiting (the kernel does not wait for a
    /// release either; a handle of an older epoch is simply dropped).
    pub fn close(&self, file: &OpenFile) {
        let (h, epoch) = file.current();
        let _ = self.session.submit_in_epoch(epoch, Op::CLOSE, &HandleReq { handle: h });
    }

    /// The current epoch (to stamp newly opened files).
    pub fn epoch_of_export(&self) -> Result<(u32, u64)> {
        let st = self.export()?;
        Ok((st.export, st.epoch))
    }
}
