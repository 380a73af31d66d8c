//! Readiness registrations: EPOLL_CTL, and the EPOLL_EVENT messages they produce.
//!
//! A registration is a multishot `IORING_OP_POLL_ADD` on the handle's descriptor, held
//! in the ring's slab as an [`EpollReg`] (not a request: it never answers, it reports).
//! It holds a reference on its connection, released when the poll ends ([`epoll_done`]).
//!
//! This module owns the registrations of a connection.

use std::sync::Arc;

use io_uring::{opcode, types};
use qtfs_proto::consts::errno;
use qtfs_proto::wire::Fixed;
use qtfs_proto::*;

use super::common::Req;
use super::req::EpollReg;
use super::state::Ctx;
use crate::ring::UD_IGNORE;
use crate::session::Session;

/// EPOLL_CTL: adds, modifies or deletes the registration of a handle.
pub(super) fn ctl(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<EpollCtlReq>(core) else { return };
    let r = epoll_ctl(core, rq.key, &rq.session, &m);
    rq.reply(core, r);
}

fn epoll_ctl(core: &mut Ctx, key: usize, session: &Arc<Session>, m: &EpollCtlReq) -> Result<Empty, i32> {
    // The connection whose frame is being handled: dispatch keeps it allocated.
    let Some(c) = core.r.conns.get(key) else { return Err(errno::EIO) };
    let existing = c.polls.iter().copied().find(|&ud| core.epoll_reg(ud).is_some_and(|reg| reg.handle == m.handle));
    match m.op as i32 {
        libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD => {
            if m.op as i32 == libc::EPOLL_CTL_ADD && existing.is_some() {
                return Err(errno::EEXIST);
            }
            if m.op as i32 == libc::EPOLL_CTL_MOD && existing.is_none() {
                return Err(errno::ENOENT);
            }
            if let Some(ud) = existing {
                forget_epoll(core, key, ud);
                core.r.push(opcode::PollRemove::new(ud).build().user_data(UD_IGNORE));
            }
            let f = session.file(m.handle).ok_or(errno::EBADF)?;
            let fd = f.raw();
            let reg = Box::new(EpollReg { conn: key, handle: m.handle, cookie: m.cookie, _file: f });
            let e = opcode::PollAdd::new(types::Fd(fd), m.events).multi(true).build();
            let Some(c) = core.r.conns.get_mut(key) else { return Err(errno::EIO) };
            c.refs += 1;
            let ud = core.submit_epoll(e, reg);
            if let Some(c) = core.r.conns.get_mut(key) {
                c.polls.push(ud);
            }
            Ok(Empty {})
        }
        libc::EPOLL_CTL_DEL => {
            let ud = existing.ok_or(errno::ENOENT)?;
            forget_epoll(core, key, ud);
            core.r.push(opcode::PollRemove::new(ud).build().user_data(UD_IGNORE));
            Ok(Empty {})
        }
        _ => Err(errno::EINVAL),
    }
}

/// Drops registration `ud` from connection `key`'s list (its PollRemove is pushed by the
/// caller; `epoll_done` releases the connection's reference).
fn forget_epoll(core: &mut Ctx, key: usize, ud: u64) {
    if let Some(c) = core.r.conns.get_mut(key) {
        c.polls.retain(|&u| u != ud);
    }
}

/// A multishot poll fired: tell the client.
pub(super) fn epoll_event(core: &mut Ctx, ud: u64, res: i32) {
    let Some(reg) = core.epoll_reg(ud) else { return };
    let (conn, cookie) = (reg.conn, reg.cookie);
    if res < 0 || core.r.conns.get(conn).is_none_or(|c| c.closing) {
        return;
    }
    let mut rec = [0u8; 12];
    EpollRec { events: res as u32, cookie }.put(&mut rec);
    core.r.send_frame(conn, FrameHeader::message(Op::EPOLL_EVENT, 0, 0), &EpollEvent { count: 1, events: Rest(&rec) });
}

/// A registration ended (removed, or the poll failed).
pub(super) fn epoll_done(core: &mut Ctx, ud: u64, reg: EpollReg, res: i32) {
    let conn = reg.conn;
    if res >= 0 && core.r.conns.get(conn).is_some_and(|c| !c.closing) {
        epoll_event_direct(core, conn, reg.cookie, res as u32);
    }
    // The registration holds a reference, so the connection is there.
    let Some(c) = core.r.conns.get_mut(conn) else {
        crate::log_limited!(tracing::Level::ERROR, conn, "epoll registration ended for a freed connection");
        return;
    };
    c.polls.retain(|&u| u != ud);
    c.refs = c.refs.saturating_sub(1);
    if c.closing {
        core.r.close_conn(conn);
    }
}

fn epoll_event_direct(core: &mut Ctx, conn: usize, cookie: u64, events: u32) {
    let mut rec = [0u8; 12];
    EpollRec { events, cookie }.put(&mut rec);
    core.r.send_frame(conn, FrameHeader::message(Op::EPOLL_EVENT, 0, 0), &EpollEvent { count: 1, events: Rest(&rec) });
}
