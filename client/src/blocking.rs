//! One connection used by one thread, one request at a time: the caller writes its
//! request and reads the answer on the same socket itself. No reader thread, no response
//! demultiplexer, no thread wake-up per request (what [`crate::Session`] pays).
//!
//! Owns the connection's socket, its request ids and its send and receive buffers. After
//! a failed send or receive the connection is broken ([`BlockingConn::is_broken`]): its
//! owner drops it and attaches a new one.

use std::io::Write;

use qtfs_proto::{FrameHeader, MAX_PAYLOAD, Op, Wire};

use crate::conn::read_frame;
use crate::error::{ClientError, Result};
use crate::stream::Stream;
use crate::transport::{Transport, encode_request, remote_error};

/// A connection owned by one thread (see the module docs).
#[derive(Debug)]
pub struct BlockingConn {
    stream: Stream,
    next_id: u64,
    tx: Vec<u8>,
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
        BlockingConn { stream, next_id: 1, tx: Vec::new(), rx: Vec::new(), broken: false }
    }

    /// A send or receive failed: the connection cannot be used again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends the frame in `tx` plus `tail` and reads frames until the response to `id`
    /// arrives (one-way frames are skipped); the payload is left in `rx`.
    fn round_trip(&mut self, id: u64, tail: &[u8]) -> Result<FrameHeader> {
        let r = if tail.is_empty() {
            self.stream.write_all(&self.tx)
        } else {
            self.stream.write_all_vectored(&[&self.tx, tail])
        };
        r.map_err(|e| lost(ClientError::io("send", e)))?;
        loop {
            let h = read_frame(&mut self.stream, &mut self.rx, MAX_PAYLOAD).map_err(lost)?;
            let h = h.ok_or(ClientError::Disconnected)?;
            if h.is_response() && h.id == id {
                return Ok(h);
            }
        }
    }
}

impl Transport for BlockingConn {
    fn exchange<'m, M: Wire<'m>, R>(
        &mut self,
        op: Op,
        msg: &M,
        tail: &[u8],
        f: impl FnOnce(&mut Vec<u8>) -> Result<R>,
    ) -> Result<R> {
        if self.broken {
            return Err(ClientError::Disconnected);
        }
        let h = encode_request(&mut self.tx, FrameHeader::request(op, 0, 0), msg, tail.len())?;
        let id = self.next_id;
        self.next_id += 1;
        FrameHeader { id, ..h }.write_to(&mut self.tx);
        let h = match self.round_trip(id, tail) {
            Ok(h) => h,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        };
        if h.is_error() {
            return Err(remote_error(&h));
        }
        f(&mut self.rx)
    }
}
