//! What a core's file service has in flight on its ring: requests ([`FsReq`], a step of
//! a file operation) and readiness registrations ([`EpollReg`]). Data only: the handler
//! modules work on these through the context (`state::Ctx`), which holds them; this
//! module imports none of them.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use io_uring::types;
use qtfs_proto::{Attr, Op};

use super::steps::Step;
use crate::creds::Ident;
use crate::session::{Export, OpenFile, Session};

/// An in-flight request. Boxed and pooled: the kernel holds pointers into it (paths,
/// `open_how`, `statx`, buffers) until the completion arrives.
pub(crate) struct FsReq {
    pub(super) conn: usize,
    pub(super) id: u64,
    pub(super) op: Op,
    pub(super) t0: Instant,
    pub(super) bytes_in: u32,
    pub(super) ident: Ident,
    pub(crate) personality: Option<u16>,
    pub(super) session: Option<Arc<Session>>,
    /// The request holds its session's mark as a maker of changes (ended when it is
    /// freed, see `notify`).
    pub(super) noted: bool,
    pub(super) export: Option<Arc<Export>>,
    /// What the request waits for ([`Step`]).
    pub(super) step: Step,
    /// NUL-terminated strings handed to the kernel; `so` are their offsets.
    s: Vec<u8>,
    so: [usize; 4],
    ns: usize,
    pub(super) how: types::OpenHow,
    pub(super) stx: libc::statx,
    pub(super) ts: types::Timespec,
    pub(super) dirfd: Option<OwnedFd>,
    pub(super) dirfd2: Option<OwnedFd>,
    pub(super) fd: Option<OwnedFd>,
    pub(super) file: Option<Arc<OpenFile>>,
    pub(super) buf: Vec<u8>,
    /// The changed directories' attributes a DIR_ATTR answer carries ([`note_dir`]).
    pub(super) dirs: Vec<Attr>,
}

impl Default for FsReq {
    fn default() -> Self {
        FsReq {
            conn: 0,
            id: 0,
            op: Op::PING,
            t0: Instant::now(),
            bytes_in: 0,
            ident: Ident::default(),
            personality: None,
            session: None,
            noted: false,
            export: None,
            step: Step::Idle,
            s: Vec::with_capacity(2 * 4096 + 600),
            so: [0; 4],
            ns: 0,
            how: types::OpenHow::new(),
            // SAFETY: statx is plain data; all-zero is a valid value.
            stx: unsafe { std::mem::zeroed() },
            ts: types::Timespec::new(),
            dirfd: None,
            dirfd2: None,
            fd: None,
            file: None,
            buf: Vec::new(),
            dirs: Vec::new(),
        }
    }
}

impl FsReq {
    /// The connection (slab key) the request answers on: the ring cancels a closing
    /// connection's requests by it.
    pub(crate) fn conn(&self) -> usize {
        self.conn
    }

    /// Descriptors the request still holds (closed by the caller through the ring).
    pub(crate) fn take_fds(&mut self) -> impl Iterator<Item = OwnedFd> + use<> {
        [self.dirfd.take(), self.dirfd2.take(), self.fd.take()].into_iter().flatten()
    }

    pub(crate) fn reset(&mut self, bufs: &mut crate::ring::buf::BufPool) {
        self.session = None;
        self.export = None;
        self.dirfd = None;
        self.dirfd2 = None;
        self.fd = None;
        self.file = None;
        self.dirs.clear();
        self.s.clear();
        self.ns = 0;
        self.step = Step::Idle;
        let b = std::mem::take(&mut self.buf);
        if b.capacity() > 0 {
            bufs.put(b);
        }
    }

    /// Appends a string (NUL added); returns its index. Handlers push at most
    /// `so.len()` strings each (a fixed number per operation, never input-driven); a
    /// further one would replace the last rather than overflow.
    pub(super) fn push_str(&mut self, b: &[u8]) -> usize {
        debug_assert!(self.ns < self.so.len());
        let i = self.ns.min(self.so.len() - 1);
        if let Some(o) = self.so.get_mut(i) {
            // Reserved at creation; never reallocates for wire-bounded strings.
            *o = self.s.len();
        }
        self.s.extend_from_slice(b);
        self.s.push(0);
        self.ns = i + 1;
        i
    }

    /// String `i` and everything after it (from its first byte).
    fn str_tail(&self, i: usize) -> &[u8] {
        self.so.get(i).and_then(|&start| self.s.get(start..)).unwrap_or_default()
    }

    pub(super) fn str_bytes(&self, i: usize) -> &[u8] {
        let tail = self.str_tail(i);
        let end = tail.iter().position(|&c| c == 0).unwrap_or(0);
        tail.get(..end).unwrap_or_default()
    }

    /// String `i` for the kernel. Every pushed string ends with a NUL; an index never
    /// pushed gives "", which the kernel refuses (ENOENT) instead of the core panicking.
    pub(super) fn cstr(&self, i: usize) -> &CStr {
        CStr::from_bytes_until_nul(self.str_tail(i)).unwrap_or(c"")
    }

    pub(super) fn cptr(&self, i: usize) -> *const libc::c_char {
        self.cstr(i).as_ptr()
    }

    pub(super) fn root(&self) -> RawFd {
        self.export.as_ref().map_or(-1, |e| e.root.as_raw_fd())
    }

    /// The raw descriptor of `dirfd` (-1 without one: the call then fails, not the core).
    pub(super) fn dir_raw(&self) -> RawFd {
        self.dirfd.as_ref().map_or(-1, |d| d.as_raw_fd())
    }

    /// The export the request acts in.
    pub(super) fn export(&self) -> Option<&Export> {
        self.export.as_deref()
    }
}

/// A readiness registration (EPOLL_CTL ADD) in flight as a multishot poll.
pub(super) struct EpollReg {
    pub(super) conn: usize,
    pub(super) handle: u64,
    pub(super) cookie: u64,
    /// Keeps the polled descriptor open while the poll is armed.
    pub(super) _file: Arc<OpenFile>,
}
