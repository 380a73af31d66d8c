//! One QTP connection: dial, handshake, and blocking frame I/O.

use std::io::Read;
use std::time::Duration;

use qtfs_proto::handshake::{Agreed, ClientHandshake};
use qtfs_proto::{Addr, AttachAck, FrameHeader, HEADER_SIZE, HelloAck, MAX_PAYLOAD, Op, ProtoError, Psk, Wire, consts};

use crate::error::{ClientError, Result};
use crate::stream::Stream;
use crate::transport::with_request;

/// How to reach and authenticate to a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub addr: Addr,
    pub psk: Option<Psk>,
    /// Accept a server without authentication when no key is configured.
    pub insecure: bool,
    /// Name shown in the server's logs.
    pub name: String,
    /// Feature bits to ask for.
    pub features: u64,
    pub connect_timeout: Duration,
    /// Give up on a request after this long (None = wait forever).
    pub request_timeout: Option<Duration>,
}

impl ClientConfig {
    pub fn new(addr: Addr) -> Self {
        Self {
            addr,
            psk: None,
            insecure: false,
            name: format!("qtfs-client/{}", std::process::id()),
            features: consts::feat::ALL,
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
        }
    }
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }
    pub fn with_psk(mut self, psk: Psk) -> Self {
        self.psk = Some(psk);
        self
    }
}

/// A connection after a successful handshake.
#[derive(Debug)]
pub struct Connection {
    pub stream: Stream,
    pub agreed: Agreed,
}

/// Reads one frame; the payload goes into `buf` (resized). `Ok(None)` on clean EOF.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>, max_payload: usize) -> Result<Option<FrameHeader>> {
    let mut hb = [0u8; HEADER_SIZE];
    let mut got = 0;
    while got < HEADER_SIZE {
        match r.read(&mut hb[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ClientError::Disconnected),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(ClientError::Timeout);
            }
            Err(e) => return Err(ClientError::io("read", e)),
        }
    }
    let h = FrameHeader::decode(&hb, max_payload)?;
    buf.clear();
    buf.resize(h.len as usize, 0);
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ClientError::Disconnected,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ClientError::Timeout,
        _ => ClientError::io("read", e),
    })?;
    Ok(Some(h))
}

/// Sends one request frame and waits for the frame answering it (handshake only:
/// nothing else is in flight yet).
fn exchange<'m, M: Wire<'m>>(s: &mut Stream, op: Op, id: u64, msg: &M, buf: &mut Vec<u8>) -> Result<FrameHeader> {
    with_request(FrameHeader::request(op, 0, 0), msg, &[], |mut req| {
        req.number(id);
        req.send(s).map_err(|e| ClientError::io("send handshake", e))
    })?;
    let h = read_frame(s, buf, MAX_PAYLOAD)?.ok_or(ClientError::Disconnected)?;
    if !h.is_response() || h.id != id || h.op != op as u16 {
        return Err(ProtoError::Handshake("unexpected frame during handshake").into());
    }
    if h.is_error() {
        return Err(ClientError::Remote(h.status));
    }
    Ok(h)
}

impl Connection {
    /// Dials and authenticates; `resume` rejoins an existing session.
    pub fn open(cfg: &ClientConfig, resume: Option<(u64, [u8; 16])>) -> Result<Connection> {
        let mut stream = Stream::connect(&cfg.addr, cfg.connect_timeout)?;
        // Bound the handshake so a silent server cannot hang us.
        let _ = stream.set_read_timeout(Some(cfg.connect_timeout));
        let mut hs = ClientHandshake::new(cfg.psk.as_ref(), cfg.insecure, cfg.features, resume);
        let mut buf = Vec::new();
        exchange(&mut stream, Op::HELLO, 1, &hs.hello(&cfg.name), &mut buf)?;
        let ack = HelloAck::decode(&buf)?;
        let attach = hs.on_hello_ack(&ack)?;
        let h = exchange(&mut stream, Op::ATTACH, 2, &attach, &mut buf);
        let h = match h {
            Err(ClientError::Remote(e)) if e == libc::EACCES => {
                return Err(ProtoError::Handshake("server refused the key (wrong --psk-file?)").into());
            }
            other => other?,
        };
        let _ = h;
        let ack = AttachAck::decode(&buf)?;
        let agreed = hs.on_attach_ack(&ack)?;
        let _ = stream.set_read_timeout(None);
        Ok(Connection { stream, agreed })
    }
}
