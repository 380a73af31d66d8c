//! Admin connections: the same framing on a local unix socket, without handshake (the
//! socket's 0600 mode is the authentication).

use std::io::Write;
use std::path::Path;

use qtfs_proto::{FrameHeader, MAX_PAYLOAD, Op, Wire, push_frame};

use crate::conn::read_frame;
use crate::error::{ClientError, Result};
use crate::session::Response;
use crate::stream::Stream;

/// A blocking admin connection.
#[derive(Debug)]
pub struct AdminClient {
    stream: Stream,
    next_id: u64,
}

impl AdminClient {
    pub fn connect(path: &Path) -> Result<AdminClient> {
        let s = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| ClientError::io(format!("connect {}", path.display()), e))?;
        Ok(AdminClient { stream: Stream::from_fd(s.into()), next_id: 1 })
    }

    /// One request, one response (error responses become `ClientError::Remote`).
    pub fn call<'m, M: Wire<'m>>(&mut self, op: Op, msg: &M) -> Result<Response> {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = Vec::new();
        push_frame(&mut out, FrameHeader::request(op, id, 0), msg);
        self.stream.write_all(&out).map_err(|e| ClientError::io("admin send", e))?;
        let mut buf = Vec::new();
        let h = read_frame(&mut self.stream, &mut buf, MAX_PAYLOAD)?.ok_or(ClientError::Disconnected)?;
        if h.id != id || !h.is_response() {
            return Err(qtfs_proto::ProtoError::Handshake("admin: response does not match the request").into());
        }
        Response { header: h, payload: buf }.ok()
    }
}
