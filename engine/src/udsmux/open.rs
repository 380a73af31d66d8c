//! Opening channels: CHAN_OPEN from the peer (resolve, check, connect with the caller's
//! identity) and the peer's answers to ours.

use super::*;

pub(super) fn open_request(core: &mut Ctx, key: usize, h: &FrameHeader, payload: &[u8]) {
    let t0 = Instant::now();
    let m = match ChanOpenReq::decode(payload) {
        Ok(m) => m,
        Err(_) => return reply::<Empty>(core, key, h, Op::CHAN_OPEN, t0, Err(errno::EBADMSG)),
    };
    let wire = h.channel;
    let refuse = |core: &mut Ctx, e: i32| reply::<Empty>(core, key, h, Op::CHAN_OPEN, t0, Err(e));
    if !qtfs_chan::id_chosen_by(wire, false) {
        return refuse(core, errno::EINVAL);
    }
    if core.mux.ids.contains_key(&(key, wire)) {
        return refuse(core, errno::EEXIST);
    }
    if core.r.conns.get(key).is_none_or(|c| c.session.is_none()) {
        return refuse(core, errno::EPROTO);
    }
    if let Err(e) = chan_room(core, key) {
        return refuse(core, e);
    }
    let Some(kind) = Kind::from_wire(m.kind) else { return refuse(core, e_local(libc::EPROTONOSUPPORT)) };
    let ident = match ident_of(core, m.uid, m.gid, &m.groups) {
        Ok(id) => id,
        Err(e) => return refuse(core, e),
    };
    let relay_addr = if m.listener != 0 {
        // A connection accepted on the DPU for a listening socket the DPU passed us.
        let Some(&lk) = core.mux.lids.get(&(key, m.listener)) else { return refuse(core, errno::ECONNREFUSED) };
        let Some(l) = core.mux.listeners.get(lk) else { return refuse(core, errno::ECONNREFUSED) };
        if l.fd.is_some() || l.closing || l.kind != kind {
            return refuse(core, errno::ECONNREFUSED);
        }
        Some(l.addr.clone())
    } else {
        if m.path.0.first() != Some(&b'/') {
            return refuse(core, errno::EINVAL);
        }
        None
    };
    let ck = new_chan(core, key, wire, kind, St::Resolving, ident, m.path.0);
    core.r.request_started(key);
    let c = chan_or!(core, ck);
    c.open_id = h.id;
    c.open_t0 = t0;
    c.flow.credit.peer_opened(m.credit);
    match relay_addr {
        Some(addr) => connect_to(core, ck, &addr),
        None => {
            c.cpath.extend_from_slice(m.path.0);
            c.cpath.push(0);
            // O_NOFOLLOW: a final symlink is opened as itself and then refused below (not a
            // socket); symlinks in the parent directories are followed, and the real path of
            // what they lead to is what the whitelist sees.
            c.rbox.how = types::OpenHow::new()
                .flags((libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64)
                .resolve(RESOLVE_NO_MAGICLINKS);
            let path = c.cpath.as_ptr() as *const libc::c_char;
            let how: *const types::OpenHow = &c.rbox.how;
            let p = c.personality;
            let e = opcode::OpenAt2::new(types::Fd(libc::AT_FDCWD), path, how).build();
            submit(core, ck, e, ChanOp::Resolve(ck), p);
        }
    }
}

/// Submits a channel operation (holding a reference on the channel).
pub(super) fn submit(core: &mut Ctx, ck: usize, e: squeue::Entry, op: ChanOp, personality: Option<u16>) -> u64 {
    let ud = core.chan_ud(op);
    let e = e.user_data(ud);
    let e = match personality {
        Some(p) => e.personality(p),
        None => e,
    };
    core.r.push(e);
    let c = chan_or!(core, ck, ud);
    c.refs += 1;
    match op {
        ChanOp::Recv(_) => c.recv_ud = Some(ud),
        ChanOp::Send(_) => c.send_ud = Some(ud),
        _ => c.op_ud = Some(ud),
    }
    ud
}

pub(super) fn resolved(core: &mut Ctx, ck: usize, res: i32) {
    if res < 0 {
        return open_failed(core, ck, e_local(-res));
    }
    // SAFETY: a successful openat2 returned a descriptor we now own.
    let opath = unsafe { OwnedFd::from_raw_fd(res) };
    let real = match sys::fd_real_path(opath.as_raw_fd()) {
        Ok(p) => p,
        Err(e) => return open_failed(core, ck, e_local(sys::errno_of(&e))),
    };
    let is_sock = sys::fstat(opath.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK);
    if !is_sock {
        // What a local connect to a non-socket reports.
        return open_failed(core, ck, errno::ECONNREFUSED);
    }
    if !core.r.wl.allows(WlType::Udsconnect, &real) {
        tracing::info!(path = %String::from_utf8_lossy(&real), "channel refused: not in [Udsconnect]");
        return open_failed(core, ck, errno::ECONNREFUSED);
    }
    // Connect to the inode checked above, never to a name resolved again: the kernel
    // follows /proc/self/fd/N to the descriptor's own file (allowed for our own
    // descriptors whatever the caller's identity), which is the socket whose real path
    // the whitelist just saw. The descriptor stays open until the connect completes.
    let via = sys::proc_fd_path(opath.as_raw_fd());
    let len = via.iter().position(|&b| b == 0).unwrap_or(via.len());
    chan_or!(core, ck).opath = Some(opath);
    connect_to(core, ck, via.get(..len).unwrap_or_default());
}

/// Creates the local socket and connects it (with the caller's identity) to `addr`.
pub(super) fn connect_to(core: &mut Ctx, ck: usize, addr: &[u8]) {
    let kind = chan_or!(core, ck).flow.kind;
    let sock = match sys::unix_socket(kind.sock_type()) {
        Ok(s) => s,
        Err(e) => return open_failed(core, ck, e_local(sys::errno_of(&e))),
    };
    if kind == Kind::Dgram
        && let Err(e) = sys::autobind_unix(sock.as_raw_fd())
    {
        return open_failed(core, ck, e_local(sys::errno_of(&e)));
    }
    let (sa, len) = match sys::sockaddr_un(addr) {
        Ok(v) => v,
        Err(e) => return open_failed(core, ck, e_local(sys::errno_of(&e))),
    };
    let c = chan_or!(core, ck);
    c.rbox.addr = sa;
    let fd = sock.as_raw_fd();
    c.fd = Some(sock);
    c.st = St::Connecting;
    let p = c.personality;
    let sa: *const libc::sockaddr = (&c.rbox.addr as *const libc::sockaddr_un).cast();
    let e = opcode::Connect::new(types::Fd(fd), sa, len).build();
    submit(core, ck, e, ChanOp::Connect(ck), p);
}

pub(super) fn connected(core: &mut Ctx, ck: usize, res: i32) {
    chan_or!(core, ck).opath = None;
    if res < 0 {
        return open_failed(core, ck, e_local(-res));
    }
    set_state(core, ck, St::Open);
    let c = chan_or!(core, ck);
    c.flow.credit.open_window();
    publish_credit(c);
    tracing::debug!(chan = c.wire, path = %String::from_utf8_lossy(&c.shared.path), "channel open");
    answer_open(core, ck, Ok(()));
    arm_recv(core, ck);
}

/// Answers a client-opened channel's CHAN_OPEN with an error and forgets the channel.
pub(super) fn open_failed(core: &mut Ctx, ck: usize, e: i32) {
    let c = chan_or!(core, ck);
    c.peer_closed = true;
    tracing::debug!(chan = c.wire, path = %String::from_utf8_lossy(&c.shared.path), errno = e, "channel open failed");
    answer_open(core, ck, Err(e));
    begin_close(core, ck);
}

/// Answers the CHAN_OPEN request of a client-opened channel (once).
pub(super) fn answer_open(core: &mut Ctx, ck: usize, r: Result<(), i32>) {
    let c = chan_or!(core, ck);
    if c.open_id == 0 {
        return;
    }
    let (key, id, t0, wire, len) = (c.conn, c.open_id, c.open_t0, c.wire, c.cpath.len());
    c.open_id = 0;
    let (ok, n) = match r {
        Ok(()) => {
            let h =
                FrameHeader { flags: hflags::RESPONSE, op: Op::CHAN_OPEN as u16, channel: wire, len: 0, id, status: 0 };
            (true, core.r.send_frame(key, h, &ChanAccept { credit: WINDOW }))
        }
        Err(e) => {
            core.r.respond_err(key, Op::CHAN_OPEN as u16, id, e);
            (false, 0)
        }
    };
    core.r.record(Done {
        op_index: Op::CHAN_OPEN.index() as u16,
        ok,
        bytes_in: len as u32,
        bytes_out: n as u32,
        latency_ns: t0.elapsed().as_nanos() as u64,
    });
    core.r.request_done(key);
}

/// The peer answered one of our CHAN_OPEN requests (an accepted HOST connection).
pub(super) fn peer_open_answered(core: &mut Ctx, key: usize, h: &FrameHeader, payload: &[u8]) {
    let Some(ck) = core.mux.peer_reqs.remove(&(key, h.id)) else { return };
    if core.mux.chans.get(ck).is_none_or(|c| c.st != St::PeerOpening) {
        return;
    }
    let accept = if h.is_error() { Err(h.status) } else { ChanAccept::decode(payload).map_err(|_| errno::EBADMSG) };
    match accept {
        Ok(a) => {
            set_state(core, ck, St::Open);
            let c = chan_or!(core, ck);
            c.flow.credit.peer_opened(a.credit);
            publish_credit(c);
            arm_recv(core, ck);
            arm_send(core, ck);
        }
        Err(e) => {
            let c = chan_or!(core, ck);
            tracing::debug!(chan = c.wire, errno = e, "peer refused an accepted connection");
            c.peer_closed = true;
            begin_close(core, ck);
        }
    }
}
