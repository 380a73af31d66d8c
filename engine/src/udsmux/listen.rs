//! Listeners: CHAN_LISTEN sockets on HOST paths, listening sockets passed to the peer,
//! and the connections accepted on them (engine-opened channels).

use super::*;

pub(super) fn listen_request(core: &mut Ctx, key: usize, h: &FrameHeader, payload: &[u8]) {
    let t0 = Instant::now();
    let r = ChanListenReq::decode(payload).map_err(|_| errno::EBADMSG).and_then(|m| {
        let kind = Kind::from_wire(m.kind).ok_or(e_local(libc::EPROTONOSUPPORT))?;
        if kind == Kind::Dgram {
            return Err(errno::EOPNOTSUPP);
        }
        if core.r.conns.get(key).is_none_or(|c| c.session.is_none()) {
            return Err(errno::EPROTO);
        }
        let ident = ident_of(core, m.uid, m.gid, &m.groups)?;
        let (fd, path, file) = host_listen(core, &ident, kind, m.mode, m.path.0)?;
        let id = core.mux.peer_id();
        let lk = add_listener(core, key, id, kind, Some(fd), path.clone(), Some(file));
        arm_accept(core, lk);
        tracing::info!(listener = id, path = %String::from_utf8_lossy(&path), "listening for the peer");
        Ok(ChanListenRsp { listener: id })
    });
    reply(core, key, h, Op::CHAN_LISTEN, t0, r);
}

/// Creates a listening socket at a HOST path for CHAN_LISTEN: resolved and created with
/// the caller's identity, checked against `[Udsconnect]`, bound under a temporary name
/// and renamed into place so it never exists with the wrong mode. Direct system calls
/// (metadata operations on the HOST file system, done once per listener).
///
/// Every step after the check names the file *inside the directory descriptor that was
/// checked* (`/proc/self/fd/N/NAME`, `*at` calls), never by its full path again, so a
/// directory swapped for a symlink meanwhile cannot move the socket out of the whitelist.
pub(super) fn host_listen(core: &Ctx, ident: &Ident, kind: Kind, mode: u32, path: &[u8]) -> Result<HostListener, i32> {
    let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
    if path.first() != Some(&b'/') {
        return Err(errno::EINVAL);
    }
    let cut = path.iter().rposition(|&c| c == b'/').unwrap_or(0);
    // cut < path.len() (a '/' found there): both parts exist; an empty name is refused.
    let (parent, name) = (path.get(..cut.max(1)).unwrap_or_default(), path.get(cut + 1..).unwrap_or_default());
    if name.is_empty() || name == b"." || name == b".." {
        return Err(errno::EINVAL);
    }
    let cparent = CString::new(parent).map_err(|_| errno::EINVAL)?;
    let dir = creds::with_ident(ident, || {
        sys::openat2(libc::AT_FDCWD, &cparent, libc::O_PATH | libc::O_DIRECTORY, 0, RESOLVE_NO_MAGICLINKS)
    })
    .map_err(errno_of)
    .and_then(|r| r.map_err(errno_of));
    creds::reset();
    let dir = dir?;
    let real_parent = sys::fd_real_path(dir.as_raw_fd()).map_err(errno_of)?;
    let mut full = real_parent;
    if full.last() != Some(&b'/') {
        full.push(b'/');
    }
    full.extend_from_slice(name);
    if !core.r.wl.allows(WlType::Udsconnect, &full) {
        tracing::info!(path = %String::from_utf8_lossy(&full), "listen refused: not in [Udsconnect]");
        return Err(errno::EACCES);
    }
    let tmp_name = format!(".qtfs-uds-{}-{}-{}", std::process::id(), core.r.idx, next_tmp()).into_bytes();
    let (target, ctarget) = (in_dir(&dir, name), in_dir_c(&dir, name)?);
    let (tmp, ctmp) = (in_dir(&dir, &tmp_name), in_dir_c(&dir, &tmp_name)?);
    let cname = CString::new(name).map_err(|_| errno::EINVAL)?;
    let ctmp_name = CString::new(tmp_name).map_err(|_| errno::EINVAL)?;
    let sock = sys::unix_socket(kind.sock_type()).map_err(errno_of)?;
    let mode = if mode & 0o7777 == 0 { 0o666 } else { mode & 0o7777 };
    let dfd = dir.as_raw_fd();
    // The socket file is no file request's change: no session's own (notify).
    let r = crate::notify::Notify::engine_change(core.r.shared.notify.as_deref(), || {
        creds::with_ident(ident, || -> std::io::Result<()> {
            sys::bind_unix(sock.as_raw_fd(), &tmp)?;
            let drop_tmp = || {
                let _ = sys::unlinkat(dfd, &ctmp_name, 0);
            };
            if let Err(e) = sys::chmod(&ctmp, mode).and_then(|_| sys::listen(sock.as_raw_fd(), LISTEN_BACKLOG)) {
                drop_tmp();
                return Err(e);
            }
            if let Some(st) = sys::lstat(&ctarget)? {
                if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                    drop_tmp();
                    return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
                }
                if sys::unix_path_is_live(&target, kind.sock_type()) {
                    drop_tmp();
                    return Err(std::io::Error::from_raw_os_error(libc::EADDRINUSE));
                }
            }
            sys::renameat2(dfd, &ctmp_name, dfd, &cname, 0).inspect_err(|_| drop_tmp())
        })
    });
    creds::reset();
    r.map_err(errno_of)?.map_err(errno_of)?;
    let st = sys::lstat(&ctarget).map_err(errno_of)?.ok_or(errno::ENOENT)?;
    Ok((sock, full, SockFile { dir, name: cname, dev: st.st_dev, ino: st.st_ino }))
}

/// `/proc/self/fd/N/NAME`: NAME inside the directory open as `dir`, whatever path leads
/// there now (the kernel follows the magic link to the descriptor's own directory).
pub(super) fn in_dir(dir: &OwnedFd, name: &[u8]) -> Vec<u8> {
    let p = sys::proc_fd_path(dir.as_raw_fd());
    let mut v: Vec<u8> = p.iter().copied().take_while(|&b| b != 0).collect();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

pub(super) fn in_dir_c(dir: &OwnedFd, name: &[u8]) -> Result<CString, i32> {
    CString::new(in_dir(dir, name)).map_err(|_| errno::EINVAL)
}

pub(super) fn next_tmp() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn add_listener(
    core: &mut Ctx,
    key: usize,
    id: u32,
    kind: Kind,
    fd: Option<OwnedFd>,
    addr: Vec<u8>,
    file: Option<SockFile>,
) -> usize {
    let lk = core.mux.listeners.insert(Listener {
        conn: key,
        id,
        kind,
        fd,
        addr,
        file,
        accept_ud: None,
        refs: 0,
        closing: false,
    });
    core.mux.lids.insert((key, id), lk);
    core.r.conn_hold(key);
    lk
}

pub(super) fn arm_accept(core: &mut Ctx, lk: usize) {
    let l = listener_or!(core, lk);
    if l.closing || l.accept_ud.is_some() {
        return;
    }
    let Some(fd) = l.fd.as_ref().map(|f| f.as_raw_fd()) else { return };
    let ud = core.chan_ud(ChanOp::Accept(lk));
    core.r.push(opcode::AcceptMulti::new(types::Fd(fd)).flags(libc::SOCK_CLOEXEC).build().user_data(ud));
    let l = listener_or!(core, lk);
    l.accept_ud = Some(ud);
    l.refs += 1;
}

pub(super) fn accepted(core: &mut Ctx, lk: usize, res: i32, more: bool) {
    // Owned first, so that it is closed on every path below.
    let fd = if res >= 0 {
        // SAFETY: a successful accept returned a descriptor we now own.
        Some(unsafe { OwnedFd::from_raw_fd(res) })
    } else {
        None
    };
    let l = listener_or!(core, lk);
    if !more {
        l.accept_ud = None;
        l.refs = l.refs.saturating_sub(1);
    }
    match fd {
        None if res != -libc::ECANCELED && !l.closing => {
            tracing::warn!(listener = l.id, "accept: {}", std::io::Error::from_raw_os_error(-res));
        }
        Some(fd) if !l.closing => peer_open(core, lk, fd),
        _ => {}
    }
    let l = listener_or!(core, lk);
    if l.closing {
        maybe_free_listener(core, lk);
    } else if !more {
        arm_accept(core, lk);
    }
}

/// A HOST connection accepted on a listener becomes an engine-opened channel.
pub(super) fn peer_open(core: &mut Ctx, lk: usize, fd: OwnedFd) {
    let l = listener_or!(core, lk);
    let (key, lid, kind) = (l.conn, l.id, l.kind);
    let path = if l.file.is_some() { l.addr.clone() } else { Vec::new() };
    if core.r.conns.get(key).is_none_or(|c| c.closing) {
        return;
    }
    if chan_room(core, key).is_err() {
        return; // the accepted connection is closed: its client sees ECONNRESET/EOF
    }
    let (_, uid, gid) = sys::peer_cred(fd.as_raw_fd()).unwrap_or((0, 0, 0));
    let wire = core.mux.peer_id();
    let ck = new_chan(core, key, wire, kind, St::PeerOpening, Ident::default(), &path);
    core.mux.next_req += 1;
    let req = core.mux.next_req;
    core.mux.peer_reqs.insert((key, req), ck);
    let c = chan_or!(core, ck);
    c.fd = Some(fd);
    c.flow.credit.open_window();
    publish_credit(c);
    let (h, m) = qtfs_chan::accepted_open(wire, req, kind, lid, (uid, gid), &path);
    core.r.send_frame(key, h, &m);
}

pub(super) fn close_listener(core: &mut Ctx, lk: usize) {
    let l = listener_or!(core, lk);
    if l.closing {
        return;
    }
    l.closing = true;
    let (key, id) = (l.conn, l.id);
    core.mux.lids.remove(&(key, id));
    let l = listener_or!(core, lk);
    if let Some(f) = &l.file {
        // Remove the socket file only if it is still the one we created, in the
        // directory we created it in.
        if let Ok(c) = in_dir_c(&f.dir, f.name.as_bytes())
            && let Ok(Some(st)) = sys::lstat(&c)
            && st.st_dev == f.dev
            && st.st_ino == f.ino
        {
            // Not a file request's change: no session's own (notify).
            let _ = crate::notify::Notify::engine_change(core.r.shared.notify.as_deref(), || {
                sys::unlinkat(f.dir.as_raw_fd(), &f.name, 0)
            });
        }
    }
    if let Some(ud) = l.accept_ud {
        core.r.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
    }
    maybe_free_listener(core, lk);
}

pub(super) fn maybe_free_listener(core: &mut Ctx, lk: usize) {
    let l = listener_or!(core, lk);
    if !l.closing || l.refs > 0 {
        return;
    }
    let Some(l) = core.mux.listeners.try_remove(lk) else { return };
    core.r.conn_release(l.conn);
}
