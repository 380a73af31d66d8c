//! `qtfs-echo`: the transport limit for the engine benchmark. A minimal QTP server that
//! does the handshake and answers every request with a response of exactly the size the
//! engine would send (READ → the requested bytes, GETATTR → attributes, …) without
//! touching a file system. One thread per connection, every batch of responses written
//! with one `writev`; read data comes from a static buffer, as the engine sends read
//! data from its own buffer without copying.
//!
//! Usage: `qtfs-echo [--listen IP:PORT] [--readdir-bytes N]`; prints
//! `echo ready listen=tcp:IP:PORT` on stderr.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use qtfs_proto::handshake::ServerHandshake;
use qtfs_proto::*;

static ZEROS: [u8; MAX_IO] = [0; MAX_IO];

fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<FrameHeader> {
    let mut hb = [0u8; HEADER_SIZE];
    s.read_exact(&mut hb).ok()?;
    let h = FrameHeader::decode(&hb, MAX_PAYLOAD).ok()?;
    buf.resize(h.len as usize, 0);
    s.read_exact(buf).ok()?;
    Some(h)
}

fn handshake(s: &mut TcpStream) -> Option<()> {
    let mut hs = ServerHandshake::new(None);
    let mut buf = Vec::new();
    let h = read_frame(s, &mut buf)?;
    let hello = Hello::decode(&buf).ok()?;
    let ack = hs.on_hello(&hello, consts::feat::ALL, 1024, "qtfs-echo").ok()?;
    let mut out = Vec::new();
    push_frame(&mut out, FrameHeader::response(h.op, h.id, 0), &ack);
    s.write_all(&out).ok()?;
    let h = read_frame(s, &mut buf)?;
    let attach = Attach::decode(&buf).ok()?;
    hs.on_attach(&attach).ok()?;
    out.clear();
    push_frame(&mut out, FrameHeader::response(h.op, h.id, 0), &hs.attach_ack(1, [7; 16], false));
    s.write_all(&out).ok()
}

/// A response: header + small body in `small`, optionally followed by `data_len` bytes
/// of static data.
fn respond(h: &FrameHeader, payload: &[u8], readdir_bytes: usize, small: &mut Vec<u8>) -> usize {
    let op = h.op();
    let attr = Attr { ino: 2, size: 4096, mode: 0o100644, nlink: 1, blksize: 4096, ..Default::default() };
    let resp = FrameHeader::response(h.op, h.id, 0);
    match op {
        Some(Op::PING) => push_frame(small, resp, &Data { data: Rest(payload) }),
        Some(Op::GETATTR | Op::LOOKUP | Op::FGETATTR | Op::SETATTR | Op::MKDIR) => {
            push_frame(small, resp, &AttrRsp { attr })
        }
        Some(Op::OPEN | Op::CREATE) => push_frame(small, resp, &OpenRsp { handle: 1, attr }),
        Some(Op::MOUNT) => push_frame(small, resp, &MountRsp { export: 1, root: attr }),
        Some(Op::WRITE) => {
            let n = payload.len().saturating_sub(WriteReq::FIXED_SIZE) as u32;
            push_frame(small, resp, &WriteRsp { written: n })
        }
        Some(Op::READ) => {
            let len = ReadReq::decode(payload).map(|r| (r.len as usize).min(MAX_IO)).unwrap_or(0);
            let mut h = resp;
            h.len = len as u32;
            h.push(small);
            return len;
        }
        Some(Op::READDIR) => {
            let body = &ZEROS[..readdir_bytes.min(MAX_IO)];
            push_frame(small, resp, &ReaddirRsp { count: 0, flags: consts::READDIR_EOF, entries: Rest(body) })
        }
        Some(_) => push_frame(small, resp, &Empty {}),
        None => FrameHeader::error(h.op, h.id, errno::ENOSYS).push(small),
    }
    0
}

fn writev_all(fd: i32, segs: &[(usize, usize, bool)], small: &[u8]) -> bool {
    let mut iov: Vec<libc::iovec> = segs
        .iter()
        .map(|&(off, len, zeros)| {
            let base = if zeros { ZEROS.as_ptr() } else { small[off..].as_ptr() };
            libc::iovec { iov_base: base as *mut libc::c_void, iov_len: len }
        })
        .collect();
    let mut idx = 0;
    while idx < iov.len() {
        let n = iov.len().min(idx + 512) - idx;
        // SAFETY: every iovec points into `small` or the static buffer, both alive.
        let w = unsafe { libc::writev(fd, iov[idx..].as_ptr(), n as i32) };
        if w <= 0 {
            return false;
        }
        let mut w = w as usize;
        while idx < iov.len() && w >= iov[idx].iov_len {
            w -= iov[idx].iov_len;
            idx += 1;
        }
        if w > 0 {
            // SAFETY: advancing within the same segment.
            iov[idx].iov_base = unsafe { (iov[idx].iov_base as *mut u8).add(w) }.cast();
            iov[idx].iov_len -= w;
        }
    }
    true
}

fn serve(mut s: TcpStream, readdir_bytes: usize) {
    let _ = s.set_nodelay(true);
    if handshake(&mut s).is_none() {
        return;
    }
    let fd = s.as_raw_fd();
    let mut rx: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut small = Vec::with_capacity(1 << 16);
    let mut segs: Vec<(usize, usize, bool)> = Vec::new();
    let mut tmp = vec![0u8; 256 * 1024];
    loop {
        let n = match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        rx.extend_from_slice(&tmp[..n]);
        let mut p = FrameParser::new(&rx, MAX_PAYLOAD);
        small.clear();
        segs.clear();
        loop {
            match p.next_frame() {
                Ok(Some(f)) => {
                    let start = small.len();
                    let data = respond(&f.header, f.payload, readdir_bytes, &mut small);
                    segs.push((start, small.len() - start, false));
                    if data > 0 {
                        segs.push((0, data, true));
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        let used = p.consumed();
        rx.drain(..used);
        if !segs.is_empty() && !writev_all(fd, &segs, &small) {
            return;
        }
    }
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "qtfs-echo",
    about = "Transport-limit server for the loadgen: answers QTP requests without a file system"
)]
struct Cli {
    /// Address to listen on (port 0: any free port; the one chosen is printed as `echo ready listen=tcp:IP:PORT`).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    listen: String,
    /// Bytes of every READDIR answer.
    #[arg(long, value_name = "N", default_value_t = 32 * 1024)]
    readdir_bytes: usize,
}

fn main() {
    let Cli { listen, readdir_bytes } = clap::Parser::parse();
    // SAFETY: ignoring SIGPIPE so a vanished client is an error return, not a signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let l = TcpListener::bind(&listen).expect("bind");
    eprintln!("echo ready listen=tcp:{}", l.local_addr().expect("addr"));
    for s in l.incoming().flatten() {
        std::thread::spawn(move || serve(s, readdir_bytes));
    }
}
