//! How channels end: errors, orderly ends, connection drops.

use super::*;

/// Sends CHAN_CLOSE with an error to the peer and closes the channel.
pub(super) fn fail(core: &mut Ctx, ck: usize, e: i32, why: &str) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st == St::Closing {
        return;
    }
    tracing::info!(chan = c.wire, path = %String::from_utf8_lossy(&c.shared.path), errno = e, "channel closed: {why}");
    if !c.peer_closed {
        c.peer_closed = true;
        let (key, wire) = (c.conn, c.wire);
        core.r.send_frame(
            key,
            FrameHeader::message(Op::CHAN_CLOSE, wire, 0),
            &ChanClose { how: consts::CHAN_CLOSE_ALL, error: e },
        );
    }
    begin_close(core, ck);
}

/// Both directions finished in order: the channel goes away without CHAN_CLOSE_ALL.
pub(super) fn maybe_done(core: &mut Ctx, ck: usize) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st == St::Open && c.flow.finished() {
        c.peer_closed = true;
        begin_close(core, ck);
    }
}

/// Stops a channel: cancels its operations and frees it once none is in flight.
pub(super) fn begin_close(core: &mut Ctx, ck: usize) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st == St::Closing {
        return maybe_free(core, ck);
    }
    c.st = St::Closing;
    c.shared.state.store(consts::CHANST_CLOSING, Ordering::Relaxed);
    let (key, wire) = (c.conn, c.wire);
    let uds = [c.recv_ud, c.send_ud, c.op_ud];
    if core.mux.ids.get(&(key, wire)) == Some(&ck) {
        core.mux.ids.remove(&(key, wire));
    }
    for ud in uds.into_iter().flatten() {
        core.r.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
    }
    let c = chan_or!(core, ck);
    if let Some(fd) = &c.fd
        && !c.flow.kind.is_pipe()
        && !c.orphan
    {
        // Wakes operations the cancel cannot reach (already inside the socket).
        let _ = sys::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR);
    }
    let owned = std::mem::take(&mut c.owned_listeners);
    for id in owned {
        if let Some(&lk) = core.mux.lids.get(&(key, id)) {
            close_listener(core, lk);
        }
    }
    maybe_free(core, ck);
}

pub(super) fn maybe_free(core: &mut Ctx, ck: usize) {
    let Some(c) = core.mux.chans.get(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st != St::Closing || c.refs > 0 {
        return;
    }
    let Some(mut c) = core.mux.chans.try_remove(ck) else { return };
    let held = c.held as isize;
    hold(&mut c, -held);
    if let Some(s) = &c.session {
        s.chans.fetch_sub(1, Ordering::AcqRel);
    }
    if c.orphan
        && let Some(fd) = c.fd.take()
    {
        core.mux.orphans.push((std::time::Instant::now(), fd));
    }
    for m in c.flow.outq {
        core.r.bufs.put(m.data);
    }
    core.mux.peer_reqs.retain(|_, v| *v != ck);
    core.r.shared.chans.lock().remove(&(c.shared.conn_id, c.wire));
    if let Some(conn) = core.r.conns.get(c.conn) {
        conn.shared.channels.fetch_sub(1, Ordering::Relaxed);
    }
    core.r.chan_drained(c.conn);
    core.r.conn_release(c.conn);
}

/// A connection is closing: its channels and listeners go with it.
///
/// A connection that drops is not the peer closing its sockets: the DPU side may come
/// back over a new connection within the session grace period (a proxy or engine
/// restart, a network blip). The local sockets of its channels therefore stay open,
/// without a shutdown, until the grace period ends; a HOST server sees EOF only when the
/// DPU program really closed its end (an orderly CHAN_CLOSE/SHUT_WR). rexec_server relies
/// on this to tell a dead client (kill its processes) from a transport drop (wait for a
/// reattach).
pub(crate) fn conn_closing(core: &mut Ctx, key: usize) {
    let chans: Vec<usize> = core.mux.chans.iter().filter(|(_, c)| c.conn == key).map(|(k, _)| k).collect();
    for ck in chans {
        // Closing one channel never frees another (listeners go, channels stay).
        let Some(c) = core.mux.chans.get_mut(ck) else { continue };
        c.peer_closed = true;
        c.orphan = c.st != St::Closing && !c.flow.rd_eof && !c.flow.peer_eof;
        begin_close(core, ck);
    }
    let ls: Vec<usize> = core.mux.listeners.iter().filter(|(_, l)| l.conn == key).map(|(k, _)| k).collect();
    for lk in ls {
        close_listener(core, lk);
    }
    core.mux.peer_reqs.retain(|(k, _), _| *k != key);
}
