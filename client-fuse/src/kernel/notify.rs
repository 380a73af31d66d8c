//! Messages to the kernel that answer no request: cache invalidations and poll wakeups.

use std::ffi::OsStr;
use std::io::{self, IoSlice};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use super::abi::{self, Wr};
use super::reply::Sender;
use super::types::INodeNo;

/// Sends notifications on the session's device.
#[derive(Clone)]
pub struct Notifier(Arc<dyn Sender>);

impl Notifier {
    pub fn new(sender: Arc<dyn Sender>) -> Notifier {
        Notifier(sender)
    }

    fn send(&self, code: i32, parts: &[&[u8]]) -> io::Result<()> {
        let len = abi::OUT_HEADER_SIZE + parts.iter().map(|p| p.len()).sum::<usize>();
        let header = abi::out_header(len, code, 0);
        let mut iov = [IoSlice::new(&header), IoSlice::new(&[]), IoSlice::new(&[])];
        for (slot, p) in iov.iter_mut().skip(1).zip(parts) {
            *slot = IoSlice::new(p);
        }
        self.0.send(iov.get(..1 + parts.len().min(2)).unwrap_or(&[]))
    }

    /// Drops the kernel's attributes of `ino` and, unless `offset` is negative, its
    /// cached pages from `offset` for `len` bytes (0: to the end).
    pub fn inval_inode(&self, ino: INodeNo, offset: i64, len: i64) -> io::Result<()> {
        let mut w = Wr::<24>::default();
        w.u64(ino.0).i64(offset).i64(len);
        self.send(abi::NOTIFY_INVAL_INODE, &[&w.buf])
    }

    /// Drops the kernel's entry `name` in directory `parent`.
    pub fn inval_entry(&self, parent: INodeNo, name: &OsStr) -> io::Result<()> {
        let name = name.as_bytes();
        let mut w = Wr::<16>::default();
        w.u64(parent.0).u32(name.len() as u32).u32(0);
        // The name goes with its NUL.
        let mut n = Vec::with_capacity(name.len() + 1);
        n.extend_from_slice(name);
        n.push(0);
        self.send(abi::NOTIFY_INVAL_ENTRY, &[&w.buf, &n])
    }

    /// Wakes the poll waiters of kernel handle `kh`.
    pub fn poll(&self, kh: PollHandle) -> io::Result<()> {
        let mut w = Wr::<8>::default();
        w.u64(kh.0);
        self.send(abi::NOTIFY_POLL, &[&w.buf])
    }
}

/// The kernel's handle of a poll wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollHandle(pub u64);

/// One poll wait of the kernel, woken once with [`PollNotifier::notify`].
#[derive(Clone)]
pub struct PollNotifier {
    notifier: Notifier,
    kh: PollHandle,
}

impl PollNotifier {
    pub fn new(notifier: Notifier, kh: u64) -> PollNotifier {
        PollNotifier { notifier, kh: PollHandle(kh) }
    }

    pub fn handle(&self) -> PollHandle {
        self.kh
    }

    pub fn notify(self) -> io::Result<()> {
        self.notifier.poll(self.kh)
    }
}

impl std::fmt::Debug for PollNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PollNotifier({})", self.kh.0)
    }
}
