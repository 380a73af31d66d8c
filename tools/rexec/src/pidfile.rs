//! `/var/run/rexec/pids/<local pid>`: the remote pid of a running rexec, `flock`-held for
//! as long as that rexec lives (qtfs' `/proc` redirection and management tools map local
//! rexec pids to HOST pids with it). A file that is not locked belongs to a dead rexec
//! and is removed by the next rexec that starts. Files appear already locked (O_TMPFILE,
//! lock, then link), so a cleaner can never remove a live rexec's file.
//!
//! rexec also runs as unprivileged users (libvirt starts qemu as libvirt-qemu or qemu).
//! For them the directory should exist with mode 1733 owned by root (sticky; everybody
//! may create files, nobody but root may list it, a file can only be removed by its
//! owner or root): each user creates its own 0600 files. Cleaning is best effort: a
//! directory we may not list, or another user's stale file we may not remove, is left
//! alone (root's next rexec removes it); a locked file is never touched.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sys;

pub const DEFAULT_DIR: &str = "/var/run/rexec/pids";

/// The directory: `REXEC_PIDS_DIR` or the default.
pub fn dir() -> PathBuf {
    std::env::var_os("REXEC_PIDS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

/// Creates the directory (0700) if needed and removes every pid file no live rexec holds
/// (those this user may remove).
pub fn clean_stale(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        // A 1733 directory seen by a user other than root: nothing we could clean.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(e),
    };
    for ent in list {
        let Ok(ent) = ent else { continue };
        let p = ent.path();
        let Ok(f) = File::open(&p) else { continue };
        if sys::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB).is_ok() {
            // Still the same file (not replaced by a new rexec that reused the pid)?
            let same = match (f.metadata(), std::fs::symlink_metadata(&p)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    Ok(())
}

/// A pid file held by this process; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    pub fn create(dir: &Path, own_pid: u32, remote_pid: i32) -> io::Result<PidFile> {
        let path = dir.join(own_pid.to_string());
        let mut f = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(dir)
        {
            Ok(f) => f,
            // No O_TMPFILE here.
            Err(_) => return PidFile::create_in_place(path, remote_pid),
        };
        sys::flock(f.as_raw_fd(), libc::LOCK_EX)?;
        write!(f, "{remote_pid}")?;
        if let Err(e) = sys::link_fd(f.as_raw_fd(), &path) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                // Linking goes through the magic link /proc/self/fd/N, which is a plain
                // symlink when /proc is not procfs (the DPU's chroot has the HOST's /proc
                // through qtfs-fuse -o proc, whose local part is a passthrough).
                tracing::debug!(error = %e, "linking the locked pid file failed; creating it in place");
                return PidFile::create_in_place(path, remote_pid);
            }
            // A stale file of an earlier process with our pid.
            std::fs::remove_file(&path)?;
            sys::link_fd(f.as_raw_fd(), &path)?;
        }
        Ok(PidFile { path, _file: f })
    }

    /// Creates the file at its name, then locks it (a short unlocked window in which a
    /// cleaner could take it for a dead rexec's).
    fn create_in_place(path: PathBuf, remote_pid: i32) -> io::Result<PidFile> {
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path)?;
        sys::flock(f.as_raw_fd(), libc::LOCK_EX)?;
        write!(f, "{remote_pid}")?;
        Ok(PidFile { path, _file: f })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_files_survive_cleaning_stale_ones_do_not() {
        let d = tempfile::tempdir().unwrap();
        let pf = PidFile::create(d.path(), 4242, 77).unwrap();
        assert_eq!(std::fs::read_to_string(pf.path()).unwrap(), "77");
        std::fs::write(d.path().join("999999"), "5").unwrap();
        clean_stale(d.path()).unwrap();
        assert!(pf.path().exists(), "held file removed");
        assert!(!d.path().join("999999").exists(), "stale file kept");
        let p = pf.path().to_path_buf();
        drop(pf);
        assert!(!p.exists());
    }

    #[test]
    fn another_user_works_in_a_1733_directory() {
        // Needs root to make the directory and to become someone else: fail, never skip.
        assert_eq!(sys::euid_egid().0, 0, "this test needs root");
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let dir = d.path().join("pids");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1733)).unwrap();
        let roots = dir.join("999999");
        std::fs::write(&roots, "5").unwrap();
        let dir2 = dir.clone();
        let made = std::thread::spawn(move || {
            // SAFETY: per-thread raw syscalls (this thread only): effective ids of 65534.
            unsafe {
                assert_eq!(libc::syscall(libc::SYS_setresgid, -1i32, 65534u32, -1i32), 0);
                assert_eq!(libc::syscall(libc::SYS_setresuid, -1i32, 65534u32, -1i32), 0);
            }
            clean_stale(&dir2).expect("clean_stale failed for a user who may not list");
            let pf = PidFile::create(&dir2, 4243, 78).unwrap();
            let meta = std::fs::metadata(pf.path()).unwrap();
            (meta.uid(), std::fs::read_to_string(pf.path()).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(made, (65534, "78".to_string()));
        assert!(roots.exists(), "root's file is not that user's to remove");
    }
}
