//! One connection used by one thread, one request at a time: the caller writes its
//! request and reads the answer on the same socket itself. No reader thread, no response
//! demultiplexer, no thread wake-up per request (what [`crate::Session`] pays).
//!
//! Owns the connection's socket, its request ids and its receive buffer. After a failed
//! send or receive the connection is broken ([`BlockingConn::is_broken`]): its owner drops
//! it and attaches a new one.

use qtfs_proto::{FrameHeader, MAX_PAYLOAD};

use crate::conn::read_frame;
use crate::error::{ClientError, Result};
use crate::stream::Stream;
use crate::transport::{Request, Transport, remote_error};

/// A connection owned by one thread (see the module docs).
#[derive(Debug)]
pub struct BlockingConn {
    stream: Stream,
    next_id: u64,
    rx: Vec<u8>,
    broken: bool,
}

/// A connection that failed under a request is gone, whatever the cause.
fn lost(e: ClientError) -> ClientError {
    match e {
        ClientError::Io { .. } | ClientError::Timeout => ClientError::Disconnected,
        o => o,
    }
}

impl BlockingConn {
    /// Takes over the socket of an authenticated connection.
    pub fn new(stream: Stream) -> BlockingConn {
        BlockingConn { stream, next_id: 1, rx: Vec::new(), broken: false }
    }

    /// A send or receive failed: the connection cannot be used again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends `req` and reads frames until the response to it arrives (one-way frames are
    /// skipped); the payload is left in `rx`.
    fn send_and_wait(&mut self, req: &Request<'_>) -> Result<FrameHeader> {
        req.send(&mut self.stream).map_err(|e| lost(ClientError::io("send", e)))?;
        loop {
            let h = read_frame(&mut self.stream, &mut self.rx, MAX_PAYLOAD).map_err(lost)?;
            let h = h.ok_or(ClientError::Disconnected)?;
            if h.is_response() && h.id == req.header().id {
                return Ok(h);
            }
        }
    }
}

impl Transport for BlockingConn {
    fn round_trip<R>(&mut self, mut req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
        if self.broken {
            return Err(ClientError::Disconnected);
        }
        req.number(self.next_id);
        self.next_id += 1;
        let h = self.send_and_wait(&req).inspect_err(|_| self.broken = true)?;
        if h.is_error() {
            return Err(remote_error(&h));
        }
        f(&mut self.rx)
    }
}
