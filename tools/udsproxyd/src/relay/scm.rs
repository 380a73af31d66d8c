//! Descriptors passed across (CHAN_SCM) by a relay loop: the records and their checks are
//! the channel core's (`qtfs_chan::scm`, `qtfs_chan::reopen`); this is their I/O.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use qtfs_chan::reopen::{self, FileId, How, ReopenIo};
use qtfs_chan::scm::{self, Passed, ScmItem, ScmOut};
use qtfs_chan::{Kind, WINDOW};
use qtfs_proto::*;

use super::{Exported, Ident, Loop, T_LISTEN, e_local};
use crate::sys;

impl Loop {
    /// Describes descriptors a DPU program passed as ScmRec records (see the engine's
    /// counterpart): files by path/flags/offset, pipes and listening sockets relayed.
    pub(super) fn scm_export(&mut self, id: u32, fds: Vec<OwnedFd>) -> Result<ScmOut, (i32, String)> {
        let mut out = ScmOut::default();
        let mut created: Vec<u32> = Vec::new();
        let ident = self.chans.get(&id).map(|c| c.ident.clone()).unwrap_or_default();
        let mut r = Ok(());
        for fd in fds {
            r = self.export_one(id, &ident, fd, &mut out, &mut created);
            if r.is_err() {
                break;
            }
        }
        if let Err(f) = r {
            for rid in created {
                self.remove(rid);
            }
            return Err(f);
        }
        Ok(out)
    }

    fn export_one(
        &mut self,
        id: u32,
        ident: &Ident,
        fd: OwnedFd,
        out: &mut ScmOut,
        created: &mut Vec<u32>,
    ) -> Result<(), (i32, String)> {
        out.room()?;
        let raw = fd.as_raw_fd();
        let Ok(st) = sys::fstat(raw) else { return Err((errno::EBADF, "fstat of a passed descriptor".into())) };
        let unix_listener = || sys::sock_domain(raw).ok() == Some(libc::AF_UNIX) && sys::sock_listening(raw);
        let fl = sys::get_fl(raw).unwrap_or(0);
        match Passed::of(st.st_mode, fl, unix_listener) {
            Passed::File => {
                out.file(&sys::fd_path(raw).unwrap_or_default(), st.st_nlink, fl, sys::tell(raw).unwrap_or(0))?
            }
            Passed::Pipe { read_end } => {
                let link = CString::new(format!("/proc/self/fd/{raw}")).expect("no NUL");
                let oflags = (if read_end { libc::O_RDONLY } else { libc::O_WRONLY }) | libc::O_NONBLOCK;
                let own = sys::open(&link, oflags, 0)
                    .map_err(|e| (e_local(sys::errno_of(&e)), "reopen of a passed pipe".into()))?;
                let rid = self.new_id();
                let kind = Kind::pipe_relay(read_end);
                self.add_chan(rid, kind, own, ident.clone(), b"", 0)
                    .map_err(|_| (errno::EMFILE, "relay channel".to_string()))?;
                created.push(rid);
                out.pipe(read_end, rid);
            }
            Passed::Listener => {
                let kind = Kind::of_listening(sys::sock_type(raw).ok());
                let lid = self.new_id();
                // Accepting must not block the loop; the description is shared with the
                // sender, which hands it over precisely so that we accept on it.
                if sys::set_nonblock(raw, true).is_err()
                    || sys::epoll_add(self.ep.as_raw_fd(), raw, libc::EPOLLIN as u32, T_LISTEN | lid as u64).is_err()
                {
                    return Err((errno::EBADF, "cannot watch a passed listening socket".into()));
                }
                self.exported.insert(lid, Exported { fd, kind });
                if let Some(c) = self.chans.get_mut(&id) {
                    c.owned_listeners.push(lid);
                }
                out.listener(kind, lid);
            }
            Passed::Other(fmt) => return Err(scm::refusal(fmt)),
        }
        Ok(())
    }

    /// Recreates descriptors the HOST passed, to travel with the next CHAN_DATA.
    pub(super) fn scm_import(&mut self, id: u32, p: &[u8]) -> Result<(), i32> {
        let records = scm::records(p)?;
        let ident = self.chans.get(&id).map(|c| c.ident.clone()).unwrap_or_default();
        let mut fds = Vec::new();
        let mut created = Vec::new();
        let mut listeners = Vec::new();
        let mut grants = Vec::new();
        let r = (|| -> Result<(), i32> {
            let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
            for rec in records {
                let taken = |rid| self.chans.contains_key(&rid) || self.imported.contains_key(&rid);
                match scm::item(rec?, true, taken)? {
                    ScmItem::File(rec) => fds.push(reopen::reopen_file(&mut AsUser(&ident), &rec)?),
                    ScmItem::Listener { channel, kind } => {
                        let s = sys::unix_socket(kind.sock_type()).map_err(errno_of)?;
                        sys::autobind_unix(s.as_raw_fd()).map_err(errno_of)?;
                        sys::listen(s.as_raw_fd(), 128).map_err(errno_of)?;
                        let addr = sys::unix_local_name(s.as_raw_fd()).map_err(errno_of)?;
                        self.imported.insert(channel, (kind, addr));
                        listeners.push(channel);
                        fds.push(s);
                    }
                    ScmItem::Pipe { channel, relay } => {
                        let (r, w) = sys::pipe().map_err(errno_of)?;
                        let (ours, theirs) = if relay == Kind::PipeIn { (w, r) } else { (r, w) };
                        self.add_chan(channel, relay, ours, ident.clone(), b"", 0).map_err(errno_of)?;
                        created.push(channel);
                        if relay == Kind::PipeIn {
                            grants.push(channel);
                        }
                        fds.push(theirs);
                    }
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                for g in grants {
                    self.push(FrameHeader::message(Op::CHAN_CREDIT, g, 0), &ChanCredit { bytes: WINDOW });
                }
                if let Some(c) = self.chans.get_mut(&id) {
                    c.flow.scm_ok(fds);
                    c.owned_listeners.extend(listeners);
                }
                Ok(())
            }
            Err(e) => {
                tracing::info!(chan = id, errno = e, "descriptors passed by the HOST refused");
                for rid in created {
                    self.fail(rid, e, "descriptor passing failed");
                }
                for l in listeners {
                    self.imported.remove(&l);
                }
                Err(e)
            }
        }
    }
}

/// The system calls of the passed-file policy (`qtfs_chan::reopen`) on the DPU: with
/// the channel's file-system identity; no whitelist applies on the DPU.
struct AsUser<'a>(&'a Ident);

fn errno_of(e: std::io::Error) -> i32 {
    e_local(sys::errno_of(&e))
}

impl ReopenIo for AsUser<'_> {
    fn open(&mut self, path: &CString, how: How) -> Result<(OwnedFd, FileId), i32> {
        let Ident { uid, gid, groups } = self.0;
        let fd = sys::as_user(*uid, *gid, groups, || match how {
            How::Look => sys::open(path, libc::O_PATH, 0),
            How::Exact(flags) => sys::open_nofollow(path, flags),
        })
        .map_err(errno_of)?;
        let st = sys::fstat(fd.as_raw_fd()).map_err(errno_of)?;
        Ok((fd, (st.st_mode, st.st_dev, st.st_ino)))
    }
    fn real_path(&mut self, fd: &OwnedFd) -> Result<Vec<u8>, i32> {
        sys::fd_path(fd.as_raw_fd()).map_err(errno_of)
    }
    fn settle(&mut self, fd: &OwnedFd, blocking: bool, offset: u64) {
        if blocking {
            let _ = sys::set_nonblock(fd.as_raw_fd(), false);
        }
        if offset > 0 {
            let _ = sys::seek(fd.as_raw_fd(), offset);
        }
    }
}
