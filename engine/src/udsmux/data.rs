//! Bytes both ways: CHAN_DATA into the local descriptor, the local descriptor into
//! CHAN_DATA, credit returned to the peer.

use super::*;

pub(super) fn data_frame(core: &mut Ctx, key: usize, h: &FrameHeader, payload: &[u8]) {
    let Some(ck) = lookup(core, key, h.channel) else { return };
    let c = chan_or!(core, ck);
    if let Err((e, why)) = c.flow.accept_data(c.st == St::Open, payload.len()) {
        return fail(core, ck, e, why);
    }
    let n = payload.len() as u64;
    c.shared.credit_rx.store(c.flow.credit.rx_u32(), Ordering::Relaxed);
    c.shared.bytes_in.fetch_add(n, Ordering::Relaxed);
    // Queued below (outq or assembling) until written locally.
    hold(c, n as isize);
    let fds = match c.flow.deliver(payload, h.has_more()) {
        Ok(Delivery::Bytes(fds)) => fds,
        Ok(Delivery::Pending) => return,
        Ok(Delivery::Message(m)) => {
            c.flow.outq.push_back(m);
            return arm_send(core, ck);
        }
        Err((e, why)) => return fail(core, ck, e, why),
    };
    if c.flow.kind.is_msg() {
        let mut data = core.r.bufs.get(payload.len());
        data.extend_from_slice(payload);
        chan_or!(core, ck).flow.outq.push_back(OutMsg::new(data, fds));
    } else {
        // Streams: append to the last queued chunk when it is not in flight.
        let q = &c.flow.outq;
        let can_append = fds.is_empty()
            && q.back().is_some_and(|b| {
                b.fds.is_empty() && b.data.len() + payload.len() <= COALESCE && !(c.sending && q.len() == 1)
            });
        if can_append && let Some(last) = c.flow.outq.back_mut() {
            last.data.extend_from_slice(payload);
        } else {
            let mut data = core.r.bufs.get(payload.len().max(64 * 1024));
            data.extend_from_slice(payload);
            chan_or!(core, ck).flow.outq.push_back(OutMsg::new(data, fds));
        }
    }
    arm_send(core, ck);
}

pub(super) fn arm_send(core: &mut Ctx, ck: usize) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st != St::Open || c.sending || c.send_ud.is_some() {
        return;
    }
    let Some(fd) = c.fd.as_ref().map(|f| f.as_raw_fd()) else { return };
    let Some(front) = c.flow.outq.front() else {
        if c.flow.shut_due() {
            if c.flow.kind.is_pipe() {
                c.fd = None;
            } else {
                let _ = sys::shutdown(fd, libc::SHUT_WR);
            }
            maybe_done(core, ck);
        }
        return;
    };
    // off < data.len() while a message is queued (a finished one is popped).
    let rest = front.rest();
    let (ptr, len) = (rest.as_ptr(), rest.len());
    let e = if c.flow.kind.is_pipe() {
        opcode::Write::new(types::Fd(fd), ptr, len as u32).offset(u64::MAX).build()
    } else {
        let b = &mut *c.sbox;
        b.iov = libc::iovec { iov_base: ptr as *mut libc::c_void, iov_len: len };
        b.msg.msg_iov = &mut b.iov;
        b.msg.msg_iovlen = 1;
        b.msg.msg_control = std::ptr::null_mut();
        b.msg.msg_controllen = 0;
        if front.off == 0 && !front.fds.is_empty() {
            let raw: Vec<RawFd> = front.fds.iter().map(|f| f.as_raw_fd()).collect();
            let used = put_rights(&mut b.cmsg, &raw);
            b.msg.msg_control = b.cmsg.as_mut_ptr().cast();
            b.msg.msg_controllen = used;
        }
        opcode::SendMsg::new(types::Fd(fd), &b.msg).flags(libc::MSG_NOSIGNAL as u32).build()
    };
    c.sending = true;
    // Sends carry the caller's identity: the HOST server sees it in SCM_CREDENTIALS.
    let p = c.personality;
    submit(core, ck, e, ChanOp::Send(ck), p);
}

pub(super) fn sent(core: &mut Ctx, ck: usize, res: i32) {
    let c = chan_or!(core, ck);
    c.send_ud = None;
    c.sending = false;
    if c.st == St::Closing {
        return;
    }
    if res < 0 {
        let e = -res;
        return fail(core, ck, e_local(e), "local send failed");
    }
    // A send is in flight only for the front of the queue.
    if c.flow.outq.is_empty() {
        return fail(core, ck, errno::EIO, "send completed with nothing queued");
    }
    if let Some(m) = c.flow.wrote(res as usize) {
        hold(c, -(m.data.len() as isize));
        let key = c.conn;
        core.r.bufs.put(m.data);
        // The session may be back under its budget: its connection is read again.
        core.r.chan_drained(key);
    }
    return_credit(core, ck);
    arm_send(core, ck);
}

/// Returns owed credit in quarter windows: few CHAN_CREDIT frames, and the peer always
/// holds at least three quarters of the window once our queue has drained (enough for a
/// maximal message), so it never waits on us needlessly. Not while the session is over
/// its `--channel-buffer-budget`: the peer then runs out of credit and stops sending
/// (back-pressure); `tick` retries for channels whose queues have drained.
pub(super) fn return_credit(core: &mut Ctx, ck: usize) {
    let cfg = &core.r.shared.cfg;
    let c = chan_or!(core, ck);
    let allowed = c.st == St::Open && under_budget(cfg, c);
    if let Some(grant) = c.flow.credit.grant(allowed) {
        publish_credit(c);
        let (key, wire) = (c.conn, c.wire);
        core.r.send_frame(key, FrameHeader::message(Op::CHAN_CREDIT, wire, 0), &ChanCredit { bytes: grant });
    }
}

pub(super) fn arm_recv(core: &mut Ctx, ck: usize) {
    if core.mux.bufs.is_none() && !core.mux.bufs_failed {
        match BufRing::new(&core.r.ring) {
            Ok(r) => core.mux.bufs = Some(r),
            Err(e) => {
                core.mux.bufs_failed = true;
                tracing::error!(core = core.r.idx, "cannot register the channel buffer ring: {e}");
            }
        }
    }
    let Some(c) = core.mux.chans.get_mut(ck) else { return };
    let kind = c.flow.kind;
    if c.st != St::Open || c.flow.rd_eof || c.recv_ud.is_some() || c.starved || !kind.reads_local() {
        return;
    }
    if core.mux.bufs.is_none() {
        return fail(core, ck, errno::ENOMEM, "no receive buffers");
    }
    let Some(fd) = c.fd.as_ref().map(|f| f.as_raw_fd()) else { return };
    // A message must fit the credit in hand; a stream may take any part of it.
    if !c.flow.credit.may_read(kind) {
        return;
    }
    let len = c.flow.credit.tx.min(BUF_SIZE as u64) as u32;
    let e = if kind.is_pipe() {
        opcode::Read::new(types::Fd(fd), std::ptr::null_mut(), len)
            .offset(u64::MAX)
            .buf_group(BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
    } else {
        let b = &mut *c.rbox;
        b.iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: len as usize };
        b.msg.msg_iov = &mut b.iov;
        b.msg.msg_iovlen = 1;
        b.msg.msg_control = b.cmsg.as_mut_ptr().cast();
        b.msg.msg_controllen = CMSG_WORDS * 8;
        b.msg.msg_flags = 0;
        let mut flags = libc::MSG_CMSG_CLOEXEC;
        if kind.is_msg() {
            // The true length of a message larger than the buffer, to refuse it.
            flags |= libc::MSG_TRUNC;
        }
        opcode::RecvMsg::new(types::Fd(fd), &mut b.msg)
            .flags(flags as u32)
            .buf_group(BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
    };
    submit(core, ck, e, ChanOp::Recv(ck), None);
}

pub(super) fn recycle(core: &mut Ctx, bid: Option<u16>) {
    if let (Some(b), Some(r)) = (bid, core.mux.bufs.as_mut()) {
        r.put(b);
    }
}

pub(super) fn received(core: &mut Ctx, ck: usize, res: i32, flags: u32) {
    let bid = cqueue::buffer_select(flags);
    let (st, key, wire, fds, ctrunc) = {
        let c = chan_or!(core, ck, recycle(core, bid));
        c.recv_ud = None;
        // Descriptors that arrived with the bytes (owned from here on).
        let sock = res >= 0 && !c.flow.kind.is_pipe();
        let fds = if sock { take_rights(&c.rbox) } else { Vec::new() };
        let ctrunc = sock && c.rbox.msg.msg_flags & libc::MSG_CTRUNC != 0;
        (c.st, c.conn, c.wire, fds, ctrunc)
    };
    if st == St::Closing {
        return recycle(core, bid);
    }
    if res == -libc::ENOBUFS {
        chan_or!(core, ck).starved = true;
        core.mux.starved.push(ck);
        return;
    }
    if res < 0 {
        return fail(core, ck, e_local(-res), "local receive failed");
    }
    let n = res as usize;
    let c = chan_or!(core, ck, recycle(core, bid));
    if let Err((e, why)) = c.flow.check_received(n, ctrunc) {
        recycle(core, bid);
        return fail(core, ck, e, why);
    }
    if c.flow.local_eof(n, fds.len()) {
        recycle(core, bid);
        core.r.send_frame(
            key,
            FrameHeader::message(Op::CHAN_CLOSE, wire, 0),
            &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 },
        );
        return maybe_done(core, ck);
    }
    if !fds.is_empty() {
        match scm_export(core, key, ck, fds) {
            Ok(out) => {
                core.r.send_frame(key, FrameHeader::message(Op::CHAN_SCM, wire, 0), &out.msg());
                // Relay channels exist for the peer only once it has the records.
                for g in out.grants {
                    core.r.send_frame(key, FrameHeader::message(Op::CHAN_CREDIT, g, 0), &ChanCredit { bytes: WINDOW });
                }
            }
            Err((e, why)) => {
                recycle(core, bid);
                return fail(core, ck, e, &why);
            }
        }
    }
    // The buffer ring is lent out while its bytes are copied into the connection queue.
    let ring = core.mux.bufs.take();
    let data = match (bid, ring.as_ref()) {
        (Some(b), Some(r)) => r.data(b, n),
        _ => &[][..],
    };
    core.r.send_frame(key, FrameHeader::message(Op::CHAN_DATA, wire, 0), &Data { data: Rest(data) });
    core.mux.bufs = ring;
    recycle(core, bid);
    let c = chan_or!(core, ck);
    c.flow.credit.sent(n as u64);
    c.shared.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    publish_credit(c);
    core.r.record(Done {
        op_index: Op::CHAN_DATA.index() as u16,
        ok: true,
        bytes_in: 0,
        bytes_out: n as u32,
        latency_ns: 0,
    });
    arm_recv(core, ck);
}
