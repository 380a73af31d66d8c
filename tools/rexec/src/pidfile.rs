//! `/var/run/rexec/pids/<local pid>`: the remote pid of a running rexec, `flock`-held for
//! as long as that rexec lives (qtfs' `/proc` redirection and management tools map local
//! rexec pids to HOST pids with it). A file that is not locked belongs to a dead rexec
//! and is removed by the next rexec that starts. Files appear already locked (O_TMPFILE,
//! lock, then link), so a cleaner can never remove a live rexec's file.

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

/// Creates the directory (0700) if needed and removes every pid file no live rexec holds.
pub fn clean_stale(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    for ent in std::fs::read_dir(dir)? {
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
            Err(_) => {
                // No O_TMPFILE here: create it in place (a short unlocked window).
                let _ = std::fs::remove_file(&path);
                let mut f =
                    std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path)?;
                sys::flock(f.as_raw_fd(), libc::LOCK_EX)?;
                write!(f, "{remote_pid}")?;
                return Ok(PidFile { path, _file: f });
            }
        };
        sys::flock(f.as_raw_fd(), libc::LOCK_EX)?;
        write!(f, "{remote_pid}")?;
        if let Err(e) = sys::link_fd(f.as_raw_fd(), &path) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            // A stale file of an earlier process with our pid.
            std::fs::remove_file(&path)?;
            sys::link_fd(f.as_raw_fd(), &path)?;
        }
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
}
