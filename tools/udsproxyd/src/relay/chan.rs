//! Channels of a relay loop: frames from the engine, the channels' local sockets, and
//! how channels end. The rules are the channel core's ([`Flow`]); this is their I/O.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use qtfs_chan::{ChanStat, Delivery, Flow, Kind, St, WINDOW};
use qtfs_proto::consts;
use qtfs_proto::header::flags as hflags;
use qtfs_proto::*;

use super::{
    Chan, DGRAM_IDLE, EV_CHAN, Ident, Loop, MSG_MAX, Pending, READ_BUDGET, READ_CHUNK, T_CHAN, TX_HIGH, e_local,
};
use super::{answer, answer_affinity};
use crate::sys;

impl Loop {
    // ------------------------------------------------------------------ frames from the engine

    pub(super) fn frame(&mut self, h: FrameHeader, p: &[u8]) {
        let Some(op) = h.op() else {
            if h.is_request() {
                self.push(FrameHeader::error(h.op, h.id, errno::ENOSYS), &Empty {});
            }
            return;
        };
        if h.is_response() {
            return self.response(h, p);
        }
        match op {
            Op::CHAN_OPEN if h.is_request() => self.peer_open(h, p),
            Op::CHAN_DATA => self.data(h, p),
            Op::CHAN_CREDIT => {
                let Some(c) = self.chans.get_mut(&h.channel) else { return };
                match ChanCredit::decode(p).map_err(|_| (errno::EPROTO, "malformed CHAN_CREDIT")) {
                    Ok(m) => {
                        if let Err((e, why)) = c.flow.credit.granted(m.bytes) {
                            return self.fail(h.channel, e, why);
                        }
                        c.stat.credit(&c.flow.credit);
                        if c.readable && !self.ready.contains(&h.channel) {
                            self.ready.push_back(h.channel);
                        }
                    }
                    Err((e, why)) => self.fail(h.channel, e, why),
                }
            }
            Op::CHAN_CLOSE => {
                if !self.chans.contains_key(&h.channel) {
                    return;
                }
                match ChanClose::decode(p) {
                    Ok(m) if m.how == consts::CHAN_SHUT_WR => {
                        let c = self.chans.get_mut(&h.channel).expect("checked");
                        c.flow.peer_eof = true;
                        self.drain_out(h.channel);
                    }
                    Ok(m) => {
                        if m.error != 0 {
                            tracing::debug!(chan = h.channel, error = m.error, "channel closed by the engine");
                            self.sh.stats.chan_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        self.remove(h.channel);
                    }
                    Err(_) => self.fail(h.channel, errno::EPROTO, "malformed CHAN_CLOSE"),
                }
            }
            Op::CHAN_SCM => {
                if !self.chans.contains_key(&h.channel) {
                    return;
                }
                if let Err(e) = self.scm_import(h.channel, p) {
                    self.chans.get_mut(&h.channel).expect("checked").flow.scm_failed(e);
                }
            }
            _ => {
                if h.is_request() {
                    self.push(FrameHeader::error(h.op, h.id, errno::EOPNOTSUPP), &Empty {});
                }
            }
        }
    }

    pub(super) fn response(&mut self, h: FrameHeader, p: &[u8]) {
        let Some(pend) = self.pending.remove(&h.id) else { return };
        match pend {
            Pending::Open { id, kind, ours, app, requester, path, ident, t0 } => {
                let accept =
                    if h.is_error() { Err(h.status) } else { ChanAccept::decode(p).map_err(|_| errno::EBADMSG) };
                self.sh.stats.record_open(t0, accept.is_ok());
                match accept {
                    Ok(a) => {
                        if self.add_chan(id, kind, ours, ident, &path, a.credit).is_ok() {
                            answer(&requester, 0, Some(app.as_raw_fd()));
                            tracing::debug!(chan = id, path = %String::from_utf8_lossy(&path), "channel open");
                        } else {
                            answer(&requester, libc::EMFILE, None);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(path = %String::from_utf8_lossy(&path), errno = e, "engine refused the channel");
                        answer(&requester, e_local(e), None);
                    }
                }
            }
            Pending::Accepted { id, kind, fd } => {
                if !h.is_error()
                    && let Ok(a) = ChanAccept::decode(p)
                {
                    let _ = self.add_chan(id, kind, fd, Ident::default(), b"", a.credit);
                }
            }
            Pending::Affinity { requester, get } => {
                if h.is_error() {
                    tracing::debug!(errno = h.status, "the engine refused an affinity request");
                    answer_affinity(&requester, sys::Errno::from_wire(h.status).raw(), &[]);
                } else {
                    answer_affinity(&requester, 0, if get { p } else { &[] });
                }
            }
            Pending::Listen { rev } => {
                let r = &self.sh.cfg.reverse[rev];
                if h.is_error() {
                    tracing::error!(host = %String::from_utf8_lossy(&r.host), errno = h.status, "the engine refused to listen");
                } else if let Ok(m) = ChanListenRsp::decode(p) {
                    tracing::info!(host = %String::from_utf8_lossy(&r.host), dpu = %String::from_utf8_lossy(&r.dpu), "reverse listener ready");
                    self.rev_ids.insert(m.listener, rev);
                }
            }
        }
    }

    /// Registers an open channel on its local socket.
    pub(super) fn add_chan(
        &mut self,
        id: u32,
        kind: Kind,
        fd: OwnedFd,
        ident: Ident,
        path: &[u8],
        credit: u32,
    ) -> std::io::Result<()> {
        sys::set_nonblock(fd.as_raw_fd(), true)?;
        sys::epoll_add(self.ep.as_raw_fd(), fd.as_raw_fd(), EV_CHAN, T_CHAN | id as u64)?;
        let mut flow = Flow::new(kind);
        flow.credit.peer_opened(credit);
        if kind.writes_local() {
            flow.credit.open_window();
        }
        let conn_id = self.h.conn_id.load(Ordering::Relaxed);
        let stat = Arc::new(ChanStat::new(conn_id, id, kind, path, St::Open, &flow.credit));
        self.sh.chans.lock().insert((self.idx, id), stat.clone());
        self.h.channels.fetch_add(1, Ordering::Relaxed);
        let chan = Chan {
            flow,
            fd: Some(fd),
            ident,
            readable: false,
            writable: true,
            stat,
            last_io: Instant::now(),
            owned_listeners: Vec::new(),
        };
        self.chans.insert(id, chan);
        Ok(())
    }

    /// The engine opens a channel: a HOST connection to a --reverse listener, or to a
    /// listening socket the HOST passed to a DPU program.
    pub(super) fn peer_open(&mut self, h: FrameHeader, p: &[u8]) {
        let r = (|| -> Result<(Kind, OwnedFd), i32> {
            let m = ChanOpenReq::decode(p).map_err(|_| errno::EBADMSG)?;
            if !qtfs_chan::id_chosen_by(h.channel, true) || self.chans.contains_key(&h.channel) {
                return Err(errno::EINVAL);
            }
            let kind = Kind::from_wire(m.kind).ok_or(errno::EINVAL)?;
            let target = if let Some(&rev) = self.rev_ids.get(&m.listener) {
                let r = &self.sh.cfg.reverse[rev];
                if r.kind != m.kind {
                    return Err(errno::EINVAL);
                }
                r.dpu.clone()
            } else if let Some((k, addr)) = self.imported.get(&m.listener) {
                if *k != kind {
                    return Err(errno::EINVAL);
                }
                addr.clone()
            } else {
                return Err(errno::ECONNREFUSED);
            };
            let s = sys::unix_socket(kind.sock_type() | libc::SOCK_NONBLOCK).map_err(|e| e_local(sys::errno_of(&e)))?;
            sys::connect_unix(s.as_raw_fd(), &target).map_err(|e| e_local(sys::errno_of(&e)))?;
            Ok((kind, s))
        })();
        match r {
            Ok((kind, fd)) => {
                let credit = ChanOpenReq::decode(p).map(|m| m.credit).unwrap_or(0);
                if self.add_chan(h.channel, kind, fd, Ident::default(), b"", credit).is_err() {
                    return self.push(FrameHeader::error(h.op, h.id, errno::EMFILE), &Empty {});
                }
                let rsp =
                    FrameHeader { flags: hflags::RESPONSE, op: h.op, channel: h.channel, len: 0, id: h.id, status: 0 };
                self.push(rsp, &ChanAccept { credit: WINDOW });
            }
            Err(e) => self.push(FrameHeader::error(h.op, h.id, e), &Empty {}),
        }
    }

    pub(super) fn data(&mut self, h: FrameHeader, p: &[u8]) {
        let id = h.channel;
        let Some(c) = self.chans.get_mut(&id) else { return };
        if let Err((e, why)) = c.flow.accept_data(true, p.len()) {
            return self.fail(id, e, why);
        }
        let n = p.len() as u64;
        c.last_io = Instant::now();
        c.stat.bytes_in.fetch_add(n, Ordering::Relaxed);
        c.stat.credit(&c.flow.credit);
        self.sh.stats.bytes_down.fetch_add(n, Ordering::Relaxed);
        let fds = match c.flow.deliver(p, h.has_more()) {
            Ok(Delivery::Bytes(fds)) => fds,
            Ok(Delivery::Pending) => return,
            Ok(Delivery::Message(m)) => return self.deliver(id, m.data, m.fds),
            Err((e, why)) => return self.fail(id, e, why),
        };
        // Fast path: straight into the local socket when nothing is queued.
        if c.flow.outq.is_empty() && c.writable {
            let fd = c.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
            let kind = c.flow.kind;
            match write_local(kind, fd, p, &raw) {
                Ok(w) if w == p.len() || kind.is_msg() => return self.consumed(id, p.len()),
                Ok(w) => {
                    c.flow.outq.push_back(qtfs_chan::OutMsg::new(p[w..].to_vec(), Vec::new()));
                    c.writable = false;
                    return self.consumed(id, w);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => c.writable = false,
                Err(e) => return self.fail(id, e_local(sys::errno_of(&e)), "local send failed"),
            }
        }
        let c = self.chans.get_mut(&id).expect("exists");
        c.flow.outq.push_back(qtfs_chan::OutMsg::new(p.to_vec(), fds));
    }

    /// Queues a whole message (or bytes) for the local socket and tries to write it.
    pub(super) fn deliver(&mut self, id: u32, data: Vec<u8>, fds: Vec<OwnedFd>) {
        let Some(c) = self.chans.get_mut(&id) else { return };
        c.flow.outq.push_back(qtfs_chan::OutMsg::new(data, fds));
        self.drain_out(id);
    }

    /// Writes queued bytes to the local socket until it would block.
    pub(super) fn drain_out(&mut self, id: u32) {
        let mut failed = None;
        {
            let Some(c) = self.chans.get_mut(&id) else { return };
            let fd = c.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            while c.writable {
                let Some(m) = c.flow.outq.front() else { break };
                let fds: Vec<RawFd> =
                    if m.off == 0 { m.fds.iter().map(|f| f.as_raw_fd()).collect() } else { Vec::new() };
                match write_local(c.flow.kind, fd, m.rest(), &fds) {
                    Ok(w) => {
                        if c.flow.wrote(w).is_none() {
                            c.writable = false;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => c.writable = false,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e_local(sys::errno_of(&e)));
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            return self.fail(id, e, "local send failed");
        }
        self.consumed(id, 0);
        let Some(c) = self.chans.get_mut(&id) else { return };
        if c.flow.shut_due() {
            if c.flow.kind.is_pipe() {
                c.fd = None;
            } else if let Some(fd) = &c.fd {
                let _ = sys::shutdown(fd.as_raw_fd(), libc::SHUT_WR);
            }
            self.maybe_done(id);
        }
    }

    /// `n` more bytes reached the local socket (those written from the queue are counted
    /// by [`Flow::wrote`]): return credit in quarter windows.
    pub(super) fn consumed(&mut self, id: u32, n: usize) {
        let Some(c) = self.chans.get_mut(&id) else { return };
        c.flow.credit.written(n as u64);
        if let Some(grant) = c.flow.credit.grant(true) {
            c.stat.credit(&c.flow.credit);
            self.push(FrameHeader::message(Op::CHAN_CREDIT, id, 0), &ChanCredit { bytes: grant });
        }
    }

    // ------------------------------------------------------------------ local reads

    pub(super) fn run_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(id) = self.ready.pop_front() else { break };
            self.try_read(id);
        }
    }

    /// Reads a readable channel while it has credit, into frames for the engine.
    pub(super) fn try_read(&mut self, id: u32) {
        let mut budget = READ_BUDGET;
        loop {
            let (Some(up), Some(c)) = (self.up.as_mut(), self.chans.get_mut(&id)) else { return };
            let kind = c.flow.kind;
            if !c.readable || c.flow.rd_eof || !kind.reads_local() {
                return;
            }
            if !c.flow.credit.may_read(kind) {
                return; // CHAN_CREDIT puts it back on the ready list
            }
            if up.backlog() > TX_HIGH || budget == 0 {
                if !self.ready.contains(&id) {
                    self.ready.push_back(id);
                }
                return;
            }
            budget -= 1;
            let max = if kind.is_msg() { MSG_MAX } else { (c.flow.credit.tx as usize).min(READ_CHUNK) };
            let start = up.tx.len();
            up.tx.resize(start + HEADER_SIZE, 0);
            up.tx.reserve(max);
            let fd = c.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            let spare = &mut up.tx.spare_capacity_mut()[..max];
            let r = if kind.is_pipe() {
                sys::read_into(fd, spare).map(|len| sys::Received { len, fds: Vec::new(), ctrunc: false })
            } else {
                sys::recv_with_fds(fd, spare, kind.is_msg())
            };
            let rec = match r {
                Ok(rec) => rec,
                Err(e) => {
                    up.tx.truncate(start);
                    match e.kind() {
                        std::io::ErrorKind::WouldBlock => c.readable = false,
                        std::io::ErrorKind::Interrupted => continue,
                        _ => self.fail(id, e_local(sys::errno_of(&e)), "local receive failed"),
                    }
                    return;
                }
            };
            let n = rec.len;
            if let Err((e, why)) = c.flow.check_received(n, rec.ctrunc) {
                up.tx.truncate(start);
                return self.fail(id, e, why);
            }
            if c.flow.local_eof(n, rec.fds.len()) {
                up.tx.truncate(start);
                self.push(
                    FrameHeader::message(Op::CHAN_CLOSE, id, 0),
                    &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 },
                );
                return self.maybe_done(id);
            }
            // SAFETY: the kernel wrote n bytes into the spare capacity after the header.
            unsafe { up.tx.set_len(start + HEADER_SIZE + n) };
            c.flow.credit.sent(n as u64);
            c.last_io = Instant::now();
            c.stat.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            c.stat.credit(&c.flow.credit);
            self.sh.stats.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
            if rec.fds.is_empty() {
                FrameHeader::message(Op::CHAN_DATA, id, n as u32).write_to(&mut up.tx[start..start + HEADER_SIZE]);
                self.h.frames.fetch_add(1, Ordering::Relaxed);
            } else {
                // Descriptors: the CHAN_SCM frame must precede the bytes.
                let data = up.tx[start + HEADER_SIZE..].to_vec();
                up.tx.truncate(start);
                match self.scm_export(id, rec.fds) {
                    Ok(out) => {
                        self.sh.stats.scm.fetch_add(out.count as u64, Ordering::Relaxed);
                        self.push(FrameHeader::message(Op::CHAN_SCM, id, 0), &out.msg());
                        self.push(FrameHeader::message(Op::CHAN_DATA, id, 0), &Data { data: Rest(&data) });
                        for g in out.grants {
                            self.push(FrameHeader::message(Op::CHAN_CREDIT, g, 0), &ChanCredit { bytes: WINDOW });
                        }
                    }
                    Err((e, why)) => return self.fail(id, e, &why),
                }
            }
        }
    }

    // ------------------------------------------------------------------ close

    pub(super) fn fail(&mut self, id: u32, e: i32, why: &str) {
        if !self.chans.contains_key(&id) {
            return;
        }
        tracing::info!(chan = id, errno = e, "channel closed: {why}");
        self.sh.stats.chan_errors.fetch_add(1, Ordering::Relaxed);
        self.push(FrameHeader::message(Op::CHAN_CLOSE, id, 0), &ChanClose { how: consts::CHAN_CLOSE_ALL, error: e });
        self.remove(id);
    }

    pub(super) fn maybe_done(&mut self, id: u32) {
        if self.chans.get(&id).is_some_and(|c| c.flow.finished()) {
            self.remove(id);
        }
    }

    /// Forgets a channel (no frame sent) and closes its socket.
    pub(super) fn remove(&mut self, id: u32) {
        let Some(c) = self.chans.remove(&id) else { return };
        if let Some(fd) = &c.fd {
            sys::epoll_del(self.ep.as_raw_fd(), fd.as_raw_fd());
        }
        self.sh.chans.lock().remove(&(self.idx, id));
        self.h.channels.fetch_sub(1, Ordering::Relaxed);
        for l in c.owned_listeners {
            if let Some(x) = self.exported.remove(&l) {
                sys::epoll_del(self.ep.as_raw_fd(), x.fd.as_raw_fd());
            }
            self.imported.remove(&l);
        }
    }

    /// Closes datagram channels idle for too long.
    pub(super) fn sweep(&mut self) {
        let idle: Vec<u32> = self
            .chans
            .iter()
            .filter(|(_, c)| c.flow.kind == Kind::Dgram && c.last_io.elapsed() > DGRAM_IDLE)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            tracing::debug!(chan = id, "idle datagram channel closed");
            self.push(
                FrameHeader::message(Op::CHAN_CLOSE, id, 0),
                &ChanClose { how: consts::CHAN_CLOSE_ALL, error: 0 },
            );
            self.remove(id);
        }
    }
}

/// One non-blocking write of `data` (and descriptors) to a channel's local end.
fn write_local(kind: Kind, fd: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    if kind.is_pipe() {
        sys::write(fd, data)
    } else if fds.is_empty() {
        sys::send_nb(fd, data)
    } else {
        sys::send_with_fds(fd, data, fds)
    }
}
