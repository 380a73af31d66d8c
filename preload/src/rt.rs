//! The library's state, set once at load time: the real libc functions it interposes
//! (`dlsym(RTLD_NEXT)`, looked up by the `.init_array` constructor so that interposed
//! calls never enter the dynamic linker), whether it is disabled (in udsproxyd itself),
//! and the request socket and pid-map paths read from the environment.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::sys;

// The real functions' types live with the calls (`sys`); the interposers name them here.
pub(crate) use crate::sys::{ConnectFn, FstatFn, GetAffinityFn, SendmsgFn, SendtoFn, SetAffinityFn};

pub(crate) static REAL_CONNECT: AtomicUsize = AtomicUsize::new(0);
pub(crate) static REAL_SENDTO: AtomicUsize = AtomicUsize::new(0);
pub(crate) static REAL_SENDMSG: AtomicUsize = AtomicUsize::new(0);
pub(crate) static REAL_GETAFFINITY: AtomicUsize = AtomicUsize::new(0);
pub(crate) static REAL_SETAFFINITY: AtomicUsize = AtomicUsize::new(0);
pub(crate) static REAL_FSTAT: AtomicUsize = AtomicUsize::new(0);
pub(crate) static REAL_FSTAT64: AtomicUsize = AtomicUsize::new(0);
pub(crate) static DISABLED: AtomicBool = AtomicBool::new(false);
/// `$UDSPROXY_SOCKET` (or the default), NUL-padded, read once at load time.
static SOCKET_PATH: [AtomicU64; 14] = [const { AtomicU64::new(0) }; 14];
const DEFAULT_SOCKET: &[u8] = b"/var/run/qtfs/remote_uds.sock";
/// `$REXEC_PIDS_DIR` (or the default; rexec's own variable), NUL-padded, read at load time.
pub(crate) static PIDS_DIR: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
const DEFAULT_PIDS_DIR: &[u8] = b"/var/run/rexec/pids";

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    resolve();
    // The proxy must never proxy itself.
    let mut comm = [0u8; 32];
    if let Some(fd) = sys::open(c"/proc/self/comm", libc::O_RDONLY | libc::O_CLOEXEC) {
        let n = sys::read(fd, &mut comm);
        sys::close(fd);
        if n > 0 && comm[..n as usize].strip_suffix(b"\n").unwrap_or(&comm[..n as usize]) == b"udsproxyd" {
            DISABLED.store(true, Ordering::Relaxed);
        }
    }
    // A socket path has at most 107 bytes and its NUL.
    store_env(&SOCKET_PATH, c"UDSPROXY_SOCKET", DEFAULT_SOCKET, 107);
    store_env(&PIDS_DIR, c"REXEC_PIDS_DIR", DEFAULT_PIDS_DIR, 200);
}

/// Stores `$var` (or `default`), cut to `max` bytes and NUL-padded, in `slots`.
fn store_env(slots: &[AtomicU64], var: &std::ffi::CStr, default: &[u8], max: usize) {
    let mut path = [0u8; 256];
    let cap = max.min(slots.len() * 8 - 1);
    // SAFETY: getenv at load time (before the program's threads).
    let p = unsafe { libc::getenv(var.as_ptr()) };
    let src: &[u8] = if p.is_null() {
        default
    } else {
        // SAFETY: a non-null getenv result is a NUL-terminated string, copied below before
        // anything can change the environment.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes()
    };
    let n = src.len().min(cap);
    path[..n].copy_from_slice(&src[..n]);
    for (i, w) in slots.iter().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&path[i * 8..i * 8 + 8]);
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

/// Copies what `store_env` stored into `out`; returns its length (up to the first NUL).
pub(crate) fn load_env(slots: &[AtomicU64], out: &mut [u8]) -> usize {
    let mut n = 0;
    for w in slots {
        for b in w.load(Ordering::Relaxed).to_ne_bytes() {
            if b == 0 || n == out.len() {
                return n;
            }
            out[n] = b;
            n += 1;
        }
    }
    n
}

fn resolve() {
    for (slot, name) in [
        (&REAL_CONNECT, c"connect"),
        (&REAL_SENDTO, c"sendto"),
        (&REAL_SENDMSG, c"sendmsg"),
        (&REAL_GETAFFINITY, c"sched_getaffinity"),
        (&REAL_SETAFFINITY, c"sched_setaffinity"),
        (&REAL_FSTAT, c"fstat"),
        (&REAL_FSTAT64, c"fstat64"),
    ] {
        if slot.load(Ordering::Acquire) == 0 {
            // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT finds libc's definition.
            let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
            slot.store(p, Ordering::Release);
        }
    }
}

/// The real function in `slot`, of type `T` (one of the `*Fn` types above).
pub(crate) fn real<T: Copy>(slot: &AtomicUsize) -> Option<T> {
    let mut p = slot.load(Ordering::Acquire);
    if p == 0 {
        // Called before our constructor (from another library's constructor).
        resolve();
        p = slot.load(Ordering::Acquire);
    }
    // SAFETY: a non-zero slot holds the address dlsym returned for a function of type T.
    (p != 0).then(|| unsafe { std::mem::transmute_copy::<usize, T>(&p) })
}

/// What an interposer that must call the real function finds: it, or None with errno
/// ENOSYS set (the interposer then returns -1).
pub(crate) fn real_or_enosys<T: Copy>(slot: &AtomicUsize) -> Option<T> {
    let f = real::<T>(slot);
    if f.is_none() {
        sys::set_errno(libc::ENOSYS);
    }
    f
}

/// udsproxyd's request socket address.
pub(crate) fn request_addr() -> libc::sockaddr_un {
    let mut sa: libc::sockaddr_un = {
        // SAFETY: sockaddr_un is plain data.
        unsafe { std::mem::zeroed() }
    };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, w) in SOCKET_PATH.iter().enumerate() {
        for (k, b) in w.load(Ordering::Relaxed).to_ne_bytes().into_iter().enumerate() {
            if i * 8 + k < sa.sun_path.len() {
                sa.sun_path[i * 8 + k] = b as libc::c_char;
            }
        }
    }
    sa
}
