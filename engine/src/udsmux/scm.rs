//! Descriptors passed across (CHAN_SCM): the records and their checks are the channel
//! core's (`qtfs_chan::scm`, `qtfs_chan::reopen`); this is their I/O on the HOST.

use qtfs_chan::reopen::{self, FileId, How, ReopenIo};
use qtfs_chan::scm::{self, Passed, ScmItem, ScmOut};

use super::*;

/// Describes descriptors received from the HOST side as ScmRec records for the peer:
/// regular files by path, flags and offset; pipes and FIFOs relayed by new channels;
/// listening unix sockets accepted here and relayed by engine-opened channels. The
/// records, their count, and relay channels to grant credit on once the records are sent.
pub(super) fn scm_export(core: &mut Ctx, key: usize, ck: usize, fds: Vec<OwnedFd>) -> Result<ScmOut, (i32, String)> {
    let mut out = ScmOut::default();
    let mut relays = Vec::new();
    let mut listeners = Vec::new();
    let mut r = Ok(());
    for fd in fds {
        r = export_one(core, key, ck, fd, &mut out, &mut relays, &mut listeners);
        if r.is_err() {
            break;
        }
    }
    match r {
        Ok(()) => Ok(out),
        Err(e) => {
            // Nothing was sent: the peer never learns of the relays.
            for rk in relays {
                if let Some(c) = core.mux.chans.get_mut(rk) {
                    c.peer_closed = true;
                }
                begin_close(core, rk);
            }
            for lk in listeners {
                close_listener(core, lk);
            }
            Err(e)
        }
    }
}

fn export_one(
    core: &mut Ctx,
    key: usize,
    ck: usize,
    fd: OwnedFd,
    out: &mut ScmOut,
    relays: &mut Vec<usize>,
    listeners: &mut Vec<usize>,
) -> Result<(), (i32, String)> {
    let raw = fd.as_raw_fd();
    let st = sys::fstat(raw).map_err(|e| (e_local(sys::errno_of(&e)), "fstat of a passed descriptor".to_string()))?;
    let fl = sys::get_fl(raw).unwrap_or(0);
    out.room()?;
    match Passed::of(st.st_mode, fl, || sys::sock_domain(raw).ok() == Some(libc::AF_UNIX) && sys::sock_listening(raw)) {
        Passed::File => {
            let offset = sys::lseek(raw, 0, libc::SEEK_CUR).unwrap_or(0);
            out.file(&sys::fd_real_path(raw).unwrap_or_default(), st.st_nlink, fl, offset)?;
        }
        Passed::Pipe { read_end } => {
            // A private description of the same pipe, blocking, so the ring polls it and
            // the sender's O_NONBLOCK does not leak into our reads.
            let reopen = CString::new(format!("/proc/self/fd/{raw}"))
                .map_err(|_| (errno::EINVAL, "reopen path of a passed pipe".to_string()))?;
            let oflags = if read_end { libc::O_RDONLY } else { libc::O_WRONLY };
            let own = sys::openat(libc::AT_FDCWD, &reopen, oflags, 0)
                .map_err(|e| (e_local(sys::errno_of(&e)), "reopen of a passed pipe".to_string()))?;
            let kind = Kind::pipe_relay(read_end);
            let wire = core.mux.peer_id();
            let ident = chan_or!(core, ck, Err((errno::EIO, "channel gone".into()))).ident.clone();
            let rk = new_chan(core, key, wire, kind, St::Open, ident, b"");
            relays.push(rk);
            let c = chan_or!(core, rk, Err((errno::EIO, "relay gone".into())));
            c.fd = Some(own);
            if kind == Kind::PipeIn {
                c.flow.credit.open_window();
                publish_credit(c);
            }
            out.pipe(read_end, wire);
        }
        Passed::Listener => {
            let kind = Kind::of_listening(sys::sock_type(raw).ok());
            let id = core.mux.peer_id();
            let lk = add_listener(core, key, id, kind, Some(fd), Vec::new(), None);
            listeners.push(lk);
            chan_or!(core, ck, Err((errno::EIO, "channel gone".into()))).owned_listeners.push(id);
            arm_accept(core, lk);
            out.listener(kind, id);
        }
        Passed::Other(fmt) => return Err(scm::refusal(fmt)),
    }
    Ok(())
}

/// Recreates descriptors the peer passed (CHAN_SCM), to travel with the next CHAN_DATA.
pub(super) fn scm_import(core: &mut Ctx, key: usize, ck: usize, payload: &[u8]) -> Result<(), i32> {
    let records = scm::records(payload)?;
    let ident = chan_or!(core, ck, Err(errno::EIO)).ident.clone();
    let mut fds = Vec::new();
    let mut relays: Vec<usize> = Vec::new();
    let mut listeners: Vec<usize> = Vec::new();
    let result = (|| -> Result<(), i32> {
        let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
        for rec in records {
            let taken = |id| core.mux.ids.contains_key(&(key, id)) || core.mux.lids.contains_key(&(key, id));
            match scm::item(rec?, false, taken)? {
                ScmItem::File(rec) => fds.push(reopen::reopen_file(&mut HostReopen { core, ident: &ident }, &rec)?),
                ScmItem::Listener { channel, kind } => {
                    let sock = sys::unix_socket(kind.sock_type()).map_err(errno_of)?;
                    sys::autobind_unix(sock.as_raw_fd()).map_err(errno_of)?;
                    sys::listen(sock.as_raw_fd(), LISTEN_BACKLOG).map_err(errno_of)?;
                    let addr = sys::unix_local_name(sock.as_raw_fd()).map_err(errno_of)?;
                    listeners.push(add_listener(core, key, channel, kind, None, addr, None));
                    fds.push(sock);
                }
                ScmItem::Pipe { channel, relay } => {
                    let (r, w) = sys::pipe().map_err(errno_of)?;
                    let (ours, theirs) = if relay == Kind::PipeIn { (w, r) } else { (r, w) };
                    let rk = new_chan(core, key, channel, relay, St::Open, ident.clone(), b"");
                    relays.push(rk);
                    let c = chan_or!(core, rk, Err(errno::EIO));
                    c.fd = Some(ours);
                    if relay == Kind::PipeIn {
                        c.flow.credit.open_window();
                        publish_credit(c);
                        core.r.send_frame(
                            key,
                            FrameHeader::message(Op::CHAN_CREDIT, channel, 0),
                            &ChanCredit { bytes: WINDOW },
                        );
                    }
                    fds.push(theirs);
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let ids: Vec<u32> = listeners.iter().filter_map(|&lk| core.mux.listeners.get(lk).map(|l| l.id)).collect();
            let c = chan_or!(core, ck, Err(errno::EIO));
            c.flow.scm_ok(fds);
            c.owned_listeners.extend(ids);
            for rk in relays {
                arm_recv(core, rk);
            }
            Ok(())
        }
        Err(e) => {
            let wire = core.mux.chans.get(ck).map_or(0, |c| c.wire);
            tracing::info!(chan = wire, errno = e, "passed descriptors refused");
            for rk in relays {
                fail(core, rk, e, "descriptor passing failed");
            }
            for lk in listeners {
                close_listener(core, lk);
            }
            Err(e)
        }
    }
}

/// The system calls of the passed-file policy (`qtfs_chan::reopen`) on the HOST: paths
/// resolved with the caller's identity and no magic links; the `[Open]` (and `[Write]`)
/// whitelist.
struct HostReopen<'a> {
    core: &'a Ctx<'a>,
    ident: &'a Ident,
}

fn errno_of(e: std::io::Error) -> i32 {
    e_local(sys::errno_of(&e))
}

impl ReopenIo for HostReopen<'_> {
    fn open(&mut self, path: &CString, how: How) -> Result<(OwnedFd, FileId), i32> {
        let (flags, resolve) = match how {
            How::Look => (libc::O_PATH, RESOLVE_NO_MAGICLINKS),
            How::Exact(flags) => (flags, RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS),
        };
        let r = creds::with_ident(self.ident, || sys::openat2(libc::AT_FDCWD, path, flags, 0, resolve));
        creds::reset();
        let fd = r.map_err(errno_of)?.map_err(errno_of)?;
        let st = sys::fstat(fd.as_raw_fd()).map_err(errno_of)?;
        Ok((fd, (st.st_mode, st.st_dev, st.st_ino)))
    }
    fn real_path(&mut self, fd: &OwnedFd) -> Result<Vec<u8>, i32> {
        sys::fd_real_path(fd.as_raw_fd()).map_err(errno_of)
    }
    fn allowed(&mut self, real: &[u8], write: bool) -> bool {
        let wl = &self.core.r.wl;
        let ok = wl.allows(WlType::Open, real) && (!write || wl.allows(WlType::Write, real));
        if !ok {
            tracing::info!(path = %String::from_utf8_lossy(real), "passed file refused by the whitelist");
        }
        ok
    }
    fn settle(&mut self, fd: &OwnedFd, blocking: bool, offset: u64) {
        let raw = fd.as_raw_fd();
        if blocking && let Ok(fl) = sys::get_fl(raw) {
            let _ = sys::set_fl(raw, fl & !libc::O_NONBLOCK);
        }
        if offset > 0 {
            let _ = sys::lseek(raw, offset as i64, libc::SEEK_SET);
        }
    }
}
