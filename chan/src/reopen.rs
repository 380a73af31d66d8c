//! The security policy for a regular file the peer passed (`SCM_FILE`): one
//! implementation of the check, the system calls supplied by each side ([`ReopenIo`]:
//! the engine resolves with io_uring-era `openat2` under the caller's credentials and
//! checks its whitelist, udsproxyd switches the file-system identity).
//!
//! The file is reopened by path with the channel's identity and never created or
//! truncated (`O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_DIRECTORY` are dropped). The object is
//! first looked at through an `O_PATH` descriptor, so a device node or FIFO named by the
//! peer is never opened (opening some devices acts); it must be a regular file; its
//! canonical path must pass the local policy (the engine's `[Open]`, and `[Write]` for
//! write access); that path is then opened without following symlinks or magic links
//! and must still be the same inode (dev, ino), else `EAGAIN`.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use qtfs_proto::ScmRec;
use qtfs_proto::consts::{self, errno};

/// `(st_mode, st_dev, st_ino)` of an open file.
pub type FileId = (u32, u64, u64);

/// How [`ReopenIo::open`] opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// `O_PATH`: look at the object without opening it.
    Look,
    /// Open with these flags (local numbering), following no symlink and no magic link.
    Exact(i32),
}

/// What the policy needs done; every error is an errno in wire numbering.
pub trait ReopenIo {
    /// Opens `path` with the channel's identity, and reports what it is.
    fn open(&mut self, path: &CString, how: How) -> Result<(OwnedFd, FileId), i32>;
    /// The canonical path of an open descriptor.
    fn real_path(&mut self, fd: &OwnedFd) -> Result<Vec<u8>, i32>;
    /// Whether the local policy lets the channel open `real` (`write`: for writing).
    fn allowed(&mut self, _real: &[u8], _write: bool) -> bool {
        true
    }
    /// The file is accepted: clear `O_NONBLOCK` if `blocking`, and set the offset if
    /// `offset` is not 0.
    fn settle(&mut self, fd: &OwnedFd, blocking: bool, offset: u64);
}

/// The open flags (local numbering) a passed file with wire flags `flags` is reopened
/// with: nothing that creates or truncates, no controlling tty, and non-blocking while
/// it is opened (restored by [`reopen_file`] after the check).
pub fn reopen_flags(flags: u32) -> Result<i32, i32> {
    let w = flags & !(consts::open::CREAT | consts::open::EXCL | consts::open::TRUNC | consts::open::DIRECTORY);
    Ok(consts::open::to_linux(w).ok_or(errno::EINVAL)? | libc::O_NOCTTY | libc::O_NONBLOCK)
}

/// Recreates the file of an `SCM_FILE` record, or refuses (see the module).
pub fn reopen_file(io: &mut impl ReopenIo, rec: &ScmRec<'_>) -> Result<OwnedFd, i32> {
    if rec.path.0.first() != Some(&b'/') {
        return Err(errno::EINVAL);
    }
    let flags = reopen_flags(rec.flags)?;
    let cpath = CString::new(rec.path.0).map_err(|_| errno::EINVAL)?;
    let (opath, (mode, dev, ino)) = io.open(&cpath, How::Look)?;
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Err(errno::EOPNOTSUPP);
    }
    let real = io.real_path(&opath)?;
    if !io.allowed(&real, flags & libc::O_ACCMODE != libc::O_RDONLY) {
        return Err(errno::EACCES);
    }
    let creal = CString::new(real).map_err(|_| errno::EINVAL)?;
    let (fd, (_, dev2, ino2)) = io.open(&creal, How::Exact(flags))?;
    if (dev2, ino2) != (dev, ino) {
        return Err(errno::EAGAIN);
    }
    io.settle(&fd, rec.flags & consts::open::NONBLOCK == 0, rec.offset);
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_proto::Path;

    /// A scripted file system: what `open_path` finds, what `open_exact` finds, and what
    /// was asked.
    #[derive(Default)]
    struct Fake {
        first: (u32, u64, u64),
        second: (u32, u64, u64),
        real: Vec<u8>,
        deny: bool,
        opened_with: Option<i32>,
        asked_write: Option<bool>,
        blocking: bool,
        seek: Option<u64>,
    }

    fn fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    impl ReopenIo for Fake {
        fn open(&mut self, _: &CString, how: How) -> Result<(OwnedFd, FileId), i32> {
            match how {
                How::Look => Ok((fd(), self.first)),
                How::Exact(flags) => {
                    self.opened_with = Some(flags);
                    Ok((fd(), self.second))
                }
            }
        }
        fn real_path(&mut self, _: &OwnedFd) -> Result<Vec<u8>, i32> {
            Ok(self.real.clone())
        }
        fn allowed(&mut self, _: &[u8], write: bool) -> bool {
            self.asked_write = Some(write);
            !self.deny
        }
        fn settle(&mut self, _: &OwnedFd, blocking: bool, offset: u64) {
            self.blocking = blocking;
            self.seek = Some(offset);
        }
    }

    fn file(dev: u64, ino: u64) -> (u32, u64, u64) {
        (libc::S_IFREG | 0o644, dev, ino)
    }

    fn rec(path: &[u8], flags: u32, offset: u64) -> ScmRec<'_> {
        ScmRec { kind: consts::SCM_FILE, flags, offset, channel: 0, path: Path(path) }
    }

    #[test]
    fn a_regular_file_is_reopened_without_create_or_truncate() {
        let mut io = Fake { first: file(1, 2), second: file(1, 2), real: b"/srv/f".to_vec(), ..Fake::default() };
        let flags = consts::open::RDWR | consts::open::CREAT | consts::open::TRUNC | consts::open::EXCL;
        reopen_file(&mut io, &rec(b"/srv/link", flags, 9)).unwrap();
        let got = io.opened_with.unwrap();
        assert_eq!(got & (libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL), 0);
        assert_eq!(got & libc::O_ACCMODE, libc::O_RDWR);
        assert_ne!(got & libc::O_NOCTTY, 0);
        assert_eq!(io.asked_write, Some(true));
        assert!(io.blocking, "blocking unless the sender's was not");
        assert_eq!(io.seek, Some(9));
    }

    #[test]
    fn non_regular_files_are_never_opened() {
        for mode in [libc::S_IFIFO, libc::S_IFCHR, libc::S_IFBLK, libc::S_IFDIR, libc::S_IFSOCK, libc::S_IFLNK] {
            let mut io = Fake { first: (mode | 0o600, 1, 2), real: b"/dev/x".to_vec(), ..Fake::default() };
            assert_eq!(reopen_file(&mut io, &rec(b"/dev/x", 0, 0)).err(), Some(errno::EOPNOTSUPP));
            assert_eq!(io.opened_with, None);
        }
    }

    #[test]
    fn policy_refusal_swap_and_bad_paths() {
        let mut io = Fake { first: file(1, 2), second: file(1, 2), deny: true, ..Fake::default() };
        assert_eq!(reopen_file(&mut io, &rec(b"/f", consts::open::RDONLY, 0)).err(), Some(errno::EACCES));
        assert_eq!(io.asked_write, Some(false));
        assert_eq!(io.opened_with, None);
        // Swapped between the look and the open.
        let mut io = Fake { first: file(1, 2), second: file(1, 3), real: b"/f".to_vec(), ..Fake::default() };
        assert_eq!(reopen_file(&mut io, &rec(b"/f", 0, 0)).err(), Some(errno::EAGAIN));
        let mut io = Fake::default();
        assert_eq!(reopen_file(&mut io, &rec(b"relative", 0, 0)).err(), Some(errno::EINVAL));
        assert_eq!(reopen_file(&mut io, &rec(b"/a\0b", 0, 0)).err(), Some(errno::EINVAL));
        assert_eq!(reopen_file(&mut io, &rec(b"", 0, 0)).err(), Some(errno::EINVAL));
        // Unknown flag bits.
        assert_eq!(reopen_flags(u32::MAX).err(), Some(errno::EINVAL));
        let mut io = Fake { first: file(1, 2), second: file(1, 2), real: b"/f".to_vec(), ..Fake::default() };
        reopen_file(&mut io, &rec(b"/f", consts::open::NONBLOCK, 0)).unwrap();
        assert!(!io.blocking);
        assert_eq!(io.seek, Some(0));
    }
}
