//! The engine connection of a FUSE io_uring queue thread, shared by the requests that
//! thread serves as tasks ([`crate::kernel::uring::tasks`]), so that one thread keeps
//! many engine requests in flight and hands none to another thread.
//!
//! A task writes its request on the thread's connection and suspends. One waiting task
//! at a time is the *reader*: it waits (through the ring) until the socket is readable,
//! reads what is there without blocking, keeps each answer for its task and wakes it;
//! when the reader's own answer came, it leaves and wakes another waiting task to read
//! on. No task holds a borrow of the connection across a wait.
//!
//! Owns the connection's socket (attached to the shared session like a worker's own,
//! [`crate::direct`]), its request ids, the bytes received but not yet a whole frame,
//! the answers not yet taken, and which task waits for which id. A failed send or
//! receive breaks the connection: every waiting task gets `Disconnected` (the restart
//! rules of [`crate::remote`] apply as on a worker's connection) and the next request
//! attaches a new one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use qtfs_client::{ClientError, Request, Result, Stream, remote_error};
use qtfs_proto::{FrameHeader, FrameParser, HEADER_SIZE, MAX_PAYLOAD};

use crate::kernel::uring::tasks::{self, TaskId};
use crate::remote::Remote;

/// Bytes read ahead at once; a larger answer is read into a buffer of its own (no copy).
const CHUNK: usize = 64 * 1024;

/// A ring thread's connection (see the module docs).
pub(crate) struct Link {
    owner: u64,
    pub(crate) epoch: u64,
    stream: Stream,
    next_id: u64,
    rx: Rx,
    arrived: HashMap<u64, (FrameHeader, Vec<u8>)>,
    waiting: HashMap<u64, TaskId>,
    reading: bool,
    broken: bool,
}

pub(crate) type Shared = Rc<RefCell<Link>>;

thread_local! {
    static LINK: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

impl Link {
    /// Breaks the connection: its waiting tasks are woken to see it.
    fn fail(&mut self, why: &dyn std::fmt::Display) {
        if !self.broken {
            tracing::debug!(epoch = self.epoch, "ring connection to the engine lost: {why}");
        }
        self.broken = true;
        self.stream.shutdown();
        for t in self.waiting.values() {
            tasks::wake(*t);
        }
    }

    /// Reads what the socket holds; keeps each answer for its task and wakes it.
    fn receive(&mut self, me: TaskId) {
        let mut frames = Vec::new();
        let r = self.rx.receive(self.stream.as_raw_fd(), &mut frames);
        for (h, payload) in frames {
            // One-way frames are not sent on this connection; an answer nobody waits for
            // (its task gone) is dropped.
            if !h.is_response() {
                continue;
            }
            if let Some(&t) = self.waiting.get(&h.id) {
                self.arrived.insert(h.id, (h, payload));
                if t != me {
                    tasks::wake(t);
                }
            }
        }
        if let Err(e) = r {
            self.fail(&e);
        }
    }
}

/// Received bytes: frames up to [`CHUNK`] are split off a shared buffer, a larger
/// frame's payload is read straight into its own buffer.
#[derive(Default)]
struct Rx {
    buf: Vec<u8>,
    big: Option<(FrameHeader, Vec<u8>)>,
}

impl Rx {
    /// Reads until the socket holds nothing more, adding every whole frame to `out`.
    fn receive(&mut self, fd: RawFd, out: &mut Vec<(FrameHeader, Vec<u8>)>) -> Result<()> {
        let eof = || ClientError::Disconnected;
        let io = |e| ClientError::io("receive from the engine", e);
        // Between frames, a read shorter than asked emptied the socket: no second read to
        // hear EAGAIN (if more came meanwhile, the next poll says so at once). Inside a
        // frame the rest is on its way: read on rather than wait for another poll.
        let mut drained = false;
        loop {
            if let Some((h, body)) = &mut self.big {
                let want = h.len as usize - body.len();
                match qtfs_sys::recv_append(fd, body, want).map_err(io)? {
                    None => return Ok(()),
                    Some(0) => return Err(eof()),
                    Some(_) => {}
                }
                if body.len() == h.len as usize
                    && let Some(done) = self.big.take()
                {
                    out.push(done);
                }
                continue;
            }
            let mut p = FrameParser::new(&self.buf, MAX_PAYLOAD);
            while let Some(f) = p.next_frame()? {
                out.push((f.header, f.payload.to_vec()));
            }
            let used = p.consumed();
            self.buf.drain(..used);
            if self.buf.len() >= HEADER_SIZE {
                let h = FrameHeader::decode(&self.buf, MAX_PAYLOAD)?;
                if h.len as usize > CHUNK {
                    let mut body = Vec::with_capacity(h.len as usize);
                    body.extend_from_slice(&self.buf[HEADER_SIZE..]);
                    self.buf.clear();
                    self.big = Some((h, body));
                    continue;
                }
            }
            if drained && self.buf.is_empty() {
                return Ok(());
            }
            match qtfs_sys::recv_append(fd, &mut self.buf, CHUNK).map_err(io)? {
                None => return Ok(()),
                Some(0) => return Err(eof()),
                Some(n) => drained = n < CHUNK,
            }
        }
    }
}

impl Remote {
    /// This ring thread's connection for the current epoch, attached if needed (a
    /// connect and handshake, which block the thread: only after a loss).
    pub(crate) fn ring_link(&self, deadline: Option<Instant>) -> Result<Shared> {
        let current = LINK.with(|l| l.borrow().clone());
        if let Some(link) = current {
            let l = link.borrow();
            if self.is_current(l.owner, l.epoch) && !l.broken {
                drop(l);
                return Ok(link);
            }
        }
        let (epoch, stream) = self.open_stream(deadline)?;
        let link = Rc::new(RefCell::new(Link {
            owner: self.id,
            epoch,
            stream,
            next_id: 1,
            rx: Rx::default(),
            arrived: HashMap::new(),
            waiting: HashMap::new(),
            reading: false,
            broken: false,
        }));
        LINK.with(|l| *l.borrow_mut() = Some(link.clone()));
        Ok(link)
    }
}

/// Sends `req` on `link` and suspends the running task until its answer came; `f` reads
/// the answer's payload.
pub(crate) fn round_trip<R>(
    link: &Shared,
    mut req: Request<'_>,
    f: impl FnOnce(&mut Vec<u8>) -> Result<R>,
) -> Result<R> {
    let Some(me) = tasks::current() else {
        return Err(ClientError::io("ring connection", std::io::Error::other("used outside a ring task")));
    };
    let id = {
        let mut l = link.borrow_mut();
        if l.broken {
            return Err(ClientError::Disconnected);
        }
        let id = l.next_id;
        l.next_id += 1;
        req.number(id);
        if let Err(e) = req.send(&mut l.stream) {
            l.fail(&e);
            return Err(ClientError::Disconnected);
        }
        l.waiting.insert(id, me);
        id
    };
    let answer = loop {
        let mut l = link.borrow_mut();
        if let Some(a) = l.arrived.remove(&id) {
            break Ok(a);
        }
        if l.broken {
            break Err(ClientError::Disconnected);
        }
        if l.reading {
            drop(l);
            tasks::park();
            continue;
        }
        l.reading = true;
        let fd = l.stream.as_raw_fd();
        drop(l);
        tasks::wait_readable(fd);
        let mut l = link.borrow_mut();
        l.reading = false;
        l.receive(me);
    };
    {
        // Leaving: another waiting task reads on.
        let mut l = link.borrow_mut();
        l.waiting.remove(&id);
        if !l.reading
            && let Some(&t) = l.waiting.values().next()
        {
            tasks::wake(t);
        }
    }
    let (h, mut payload) = answer?;
    if h.is_error() {
        return Err(remote_error(&h));
    }
    f(&mut payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn frame(id: u64, payload: &[u8]) -> Vec<u8> {
        let mut h = FrameHeader::request(qtfs_proto::Op::READ, 0, 0);
        h.id = id;
        h.len = payload.len() as u32;
        let mut v = h.encode().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn frames_split_across_reads_and_a_large_one_arrive_whole() {
        let (mut tx, rx_sock) = UnixStream::pair().unwrap();
        let mut rx = Rx::default();
        let mut out = Vec::new();
        let big: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| i as u8).collect();
        let mut bytes = frame(1, b"small");
        bytes.extend(frame(2, &big));
        bytes.extend(frame(3, b""));
        // Half of the first header, then the rest in pieces.
        tx.write_all(&bytes[..10]).unwrap();
        rx.receive(rx_sock.as_raw_fd(), &mut out).unwrap();
        assert!(out.is_empty());
        for piece in bytes[10..].chunks(CHUNK / 3) {
            tx.write_all(piece).unwrap();
            rx.receive(rx_sock.as_raw_fd(), &mut out).unwrap();
        }
        let ids: Vec<u64> = out.iter().map(|(h, _)| h.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(out[0].1, b"small");
        assert_eq!(out[1].1, big);
        assert!(out[2].1.is_empty());
        // Shut down, not dropped: a process another test forks meanwhile holds a copy.
        tx.shutdown(std::net::Shutdown::Write).unwrap();
        let end = rx.receive(rx_sock.as_raw_fd(), &mut out);
        assert!(matches!(end, Err(ClientError::Disconnected)), "{end:?}");
    }

    #[test]
    fn a_hostile_header_breaks_the_connection() {
        let (mut tx, rx_sock) = UnixStream::pair().unwrap();
        let mut rx = Rx::default();
        let mut h = frame(1, b"")[..HEADER_SIZE].to_vec();
        // A length beyond the largest payload.
        h[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        tx.write_all(&h).unwrap();
        let mut out = Vec::new();
        assert!(rx.receive(rx_sock.as_raw_fd(), &mut out).is_err());
        assert!(out.is_empty());
    }
}
