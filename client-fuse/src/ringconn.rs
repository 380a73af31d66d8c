//! The engine connection of a FUSE io_uring queue thread, shared by the requests that
//! thread serves as tasks ([`crate::kernel::uring::tasks`]), so that one thread keeps
//! many engine requests in flight and hands none to another thread.
//!
//! A task queues its request on the thread's connection and suspends; the requests the
//! tasks of one loop turn queued leave together in one send before the thread waits
//! ([`tasks::before_wait`]), so the engine gets them as one batch and the connection one
//! segment, not one per request (a large request, a write's data, goes at once after
//! what is queued, uncopied). One waiting task
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
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use qtfs_client::{ClientError, Request, Result, Stream, remote_error};
use qtfs_proto::{FrameHeader, FrameParser, HEADER_SIZE, MAX_PAYLOAD};

use crate::kernel::uring::tasks::{self, TaskId};
use crate::remote::Remote;

/// Bytes read ahead at once; a larger answer is read into a buffer of its own (no copy).
const CHUNK: usize = 64 * 1024;
/// Requests up to this size are copied into the loop turn's batch; larger ones are sent
/// from where they are (after the batch, to keep the order).
const BATCHED: usize = 16 * 1024;

/// A ring thread's connection (see the module docs).
pub(crate) struct Link {
    owner: u64,
    pub(crate) epoch: u64,
    stream: Stream,
    next_id: u64,
    /// Requests queued in this loop turn (their send is queued with the first).
    tx: Vec<u8>,
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
    fn new(owner: u64, epoch: u64, stream: Stream) -> Link {
        Link {
            owner,
            epoch,
            stream,
            next_id: 1,
            tx: Vec::new(),
            rx: Rx::default(),
            arrived: HashMap::new(),
            waiting: HashMap::new(),
            reading: false,
            broken: false,
        }
    }

    /// Breaks the connection: its waiting tasks are woken to see it.
    fn fail(&mut self, why: &dyn std::fmt::Display) {
        if !self.broken {
            tracing::debug!(epoch = self.epoch, "ring connection to the engine lost: {why}");
        }
        self.broken = true;
        self.tx.clear();
        self.stream.shutdown();
        for t in self.waiting.values() {
            tasks::wake(*t);
        }
    }

    /// Queues `req` for this loop turn's send (see the module docs), or sends it at once
    /// after the queue when it is large.
    fn send(&mut self, req: &Request<'_>, link: &Shared) -> std::io::Result<()> {
        let [frame, tail] = req.bytes();
        if frame.len() + tail.len() > BATCHED {
            self.flush()?;
            return req.send(&mut self.stream);
        }
        if self.tx.is_empty() {
            // The first of the turn queues the send (a send queued before a large request
            // emptied the queue finds it empty, or sends what came after).
            let link = link.clone();
            tasks::before_wait(move || {
                let mut l = link.borrow_mut();
                if let Err(e) = l.flush() {
                    l.fail(&e);
                }
            });
        }
        self.tx.extend_from_slice(frame);
        self.tx.extend_from_slice(tail);
        Ok(())
    }

    /// Sends the queued requests.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.broken || self.tx.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.tx);
        self.tx.clear();
        r
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
        let link = Rc::new(RefCell::new(Link::new(self.id, epoch, stream)));
        LINK.with(|l| *l.borrow_mut() = Some(link.clone()));
        Ok(link)
    }
}

/// Sends `req` on `link` (with the loop turn's batch) and suspends the running task until
/// its answer came; `f` reads the answer's payload.
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
        if let Err(e) = l.send(&req, link) {
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
    use crate::kernel::uring::tasks::Tasks;
    use qtfs_client::Ops;
    use std::io::Read;
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

    /// A transport over one ring connection, as [`crate::direct`] makes it in a task.
    struct OnLink(Shared);

    impl qtfs_client::Transport for OnLink {
        fn round_trip<R>(&mut self, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
            round_trip(&self.0, req, f)
        }
    }

    /// The whole frames the peer can read now.
    fn frames_at(peer: &mut UnixStream) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match peer.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let mut p = FrameParser::new(&buf, MAX_PAYLOAD);
        let mut out = Vec::new();
        while let Some(f) = p.next_frame().unwrap() {
            out.push((f.header, f.payload.to_vec()));
        }
        assert_eq!(p.consumed(), buf.len(), "whole frames only");
        out
    }

    #[test]
    fn requests_of_one_loop_turn_leave_together_and_a_large_one_keeps_its_place() {
        let (mut peer, ours) = UnixStream::pair().unwrap();
        peer.set_nonblocking(true).unwrap();
        let link: Shared = Rc::new(RefCell::new(Link::new(0, 1, Stream::from_fd(ours.into()))));
        let answers = Rc::new(RefCell::new(Vec::new()));
        let mut tasks = Tasks::default();
        let ask = |tasks: &mut Tasks, data: Vec<u8>| {
            let (link, answers) = (link.clone(), answers.clone());
            tasks
                .spawn(move || {
                    let got = OnLink(link).ping(&data);
                    answers.borrow_mut().push((data.len(), got.map(|echo| echo == data)));
                })
                .unwrap();
        };
        let lens = |frames: &[(FrameHeader, Vec<u8>)]| frames.iter().map(|(h, _)| (h.id, h.len)).collect::<Vec<_>>();
        ask(&mut tasks, vec![1; 10]);
        ask(&mut tasks, vec![2; 11]);
        assert!(frames_at(&mut peer).is_empty(), "queued for the loop turn's send");
        // Larger than a batch holds: what is queued goes first, then it, in order.
        ask(&mut tasks, vec![3; BATCHED + 1]);
        let mut sent = frames_at(&mut peer);
        assert_eq!(lens(&sent).iter().map(|&(id, _)| id).collect::<Vec<_>>(), [1, 2, 3]);
        ask(&mut tasks, vec![4; 12]);
        assert!(frames_at(&mut peer).is_empty());
        tasks.run_woken();
        let last = frames_at(&mut peer);
        assert_eq!(lens(&last).iter().map(|&(id, _)| id).collect::<Vec<_>>(), [4], "sent before the thread waits");
        sent.extend(last);
        // The answers, in another order than the requests.
        for (h, payload) in sent.iter().rev() {
            let mut a = FrameHeader::response(h.op, h.id, payload.len() as u32).encode().to_vec();
            a.extend_from_slice(payload);
            peer.write_all(&a).unwrap();
        }
        let mut waits = Vec::new();
        tasks.take_waits(&mut waits);
        assert_eq!(waits.len(), 1, "one task reads for all");
        tasks.wait_done(waits[0].0);
        tasks.run_woken();
        assert_eq!(tasks.live(), 0);
        let mut got: Vec<_> = answers.borrow().iter().map(|(n, r)| (*n, *r.as_ref().unwrap())).collect();
        got.sort();
        assert_eq!(got, [(10, true), (11, true), (12, true), (BATCHED + 1, true)]);
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
