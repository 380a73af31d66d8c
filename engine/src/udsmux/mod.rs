//! Unix-socket channels multiplexed on client connections (the socket proxy and remote
//! exec). Not implemented yet: every channel request is answered ENOSYS, so a peer sees
//! an honest "not supported" rather than silence.
//!
//! This module owns channel state; it must not interpret file requests.

use qtfs_proto::{FrameHeader, errno};

use crate::ring::Core;

pub(crate) fn on_frame(core: &mut Core, key: usize, h: FrameHeader, _payload: &[u8]) {
    if h.is_request() {
        core.respond_err(key, h.op, h.id, errno::ENOSYS);
    }
}

/// A connection is closing: its channels go with it.
pub(crate) fn conn_closing(_core: &mut Core, _key: usize) {}
