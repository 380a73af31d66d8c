//! The CPU affinity interposers, `sched_getaffinity()` and `sched_setaffinity()`: where
//! the pid or thread id the caller names lives (the rule of the crate comment: local, a
//! local rexec standing for a HOST pid in the pid map, or a number the HOST decides
//! about), and the exchange with udsproxyd that acts on the HOST.

use std::ffi::CStr;
use std::sync::atomic::Ordering;

use libc::{c_int, size_t};

use crate::rt::{
    ConnectFn, DISABLED, GetAffinityFn, PIDS_DIR, REAL_CONNECT, REAL_GETAFFINITY, REAL_SETAFFINITY, SetAffinityFn,
    load_env, real, real_or_enosys, request_addr,
};
use crate::sys::{self, errno, set_errno};
use crate::wire;

/// How long an affinity request waits for the HOST's answer.
const AFFINITY_TIMEOUT_S: i64 = 10;

/// Where a pid/tid named by the caller lives (see the module comment for the rule).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    /// Rule 1 or 4: the real function.
    Local,
    /// Rule 2: a local rexec's pid, standing for this HOST pid.
    Mapped(i32),
    /// Rule 3: the HOST decides whether the number is one of its rexec processes/threads.
    Ask(i32),
}

/// Appends the decimal digits of `v` (> 0) to `out` at `n`; the new length.
fn put_decimal(out: &mut [u8], mut n: usize, v: i32) -> Option<usize> {
    let mut digits = [0u8; 12];
    let mut k = 0;
    let mut v = v as u32;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n + k >= out.len() {
        return None;
    }
    for d in digits[..k].iter().rev() {
        out[n] = *d;
        n += 1;
    }
    Some(n)
}

/// The HOST pid in the live pid-map entry `<dir>/<pid>`, if there is one. An entry no
/// rexec holds locked any more (its rexec died; the next rexec removes it) is ignored.
fn pidmap_entry(pid: i32) -> Option<i32> {
    let mut path = [0u8; 256];
    let mut n = load_env(&PIDS_DIR, &mut path);
    if n == 0 {
        return None;
    }
    path[n] = b'/';
    n = put_decimal(&mut path, n + 1, pid)?;
    path[n] = 0;
    let path = CStr::from_bytes_until_nul(&path).ok()?;
    let mut buf = [0u8; 24];
    let fd = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)?;
    // Held by its rexec (LOCK_EX) while that lives: a shared lock must not be granted.
    if sys::flock(fd, libc::LOCK_SH | libc::LOCK_NB) == 0 {
        sys::flock(fd, libc::LOCK_UN);
        sys::close(fd);
        return None;
    }
    let got = sys::read(fd, &mut buf);
    sys::close(fd);
    if got <= 0 {
        return None;
    }
    let txt = &buf[..got as usize];
    let txt = txt.strip_suffix(b"\n").unwrap_or(txt);
    if txt.is_empty() || txt.len() > 10 || !txt.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = txt.iter().fold(0u64, |a, &d| a * 10 + (d - b'0') as u64);
    (v > 0 && v <= i32::MAX as u64).then_some(v as i32)
}

/// Whether the pid map has any entry (a directory we may not list counts as non-empty:
/// the HOST then decides).
fn pidmap_nonempty() -> bool {
    let mut path = [0u8; 256];
    let n = load_env(&PIDS_DIR, &mut path);
    if n == 0 {
        return false;
    }
    path[n] = 0;
    let Ok(path) = CStr::from_bytes_until_nul(&path) else { return false };
    let Some(fd) = sys::open(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) else {
        return errno() == libc::EACCES;
    };
    let mut buf = [0u64; 512];
    let mut found = false;
    while let Some(bytes) = sys::getdents64(fd, &mut buf) {
        if has_entry(bytes) {
            found = true;
            break;
        }
    }
    sys::close(fd);
    found
}

/// Whether `getdents64` records hold a name other than `.` and `..`.
fn has_entry(bytes: &[u8]) -> bool {
    let mut off = 0;
    // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
    while off + 19 < bytes.len() {
        let reclen = u16::from_ne_bytes([bytes[off + 16], bytes[off + 17]]) as usize;
        if reclen == 0 {
            break;
        }
        let name = &bytes[off + 19..(off + reclen).min(bytes.len())];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            return true;
        }
        off += reclen;
    }
    false
}

/// Applies the decision rule of the crate comment to `pid`.
fn classify(pid: libc::pid_t) -> Target {
    if pid <= 0 || DISABLED.load(Ordering::Relaxed) {
        return Target::Local;
    }
    if sys::is_own_thread(pid) {
        return Target::Local;
    }
    if let Some(host) = pidmap_entry(pid) {
        return Target::Mapped(host);
    }
    if pidmap_nonempty() { Target::Ask(pid) } else { Target::Local }
}

/// What the HOST said about an affinity request.
enum Answer {
    /// Not asked (no udsproxyd, no engine, caller not allowed): act locally.
    Pass,
    /// Done; for GET, the HOST's mask is the first `usize` bytes of the buffer.
    Done(usize),
    /// The HOST's errno.
    Failed(c_int),
}

/// One affinity exchange with udsproxyd. `mask` is empty for GET; a GET's answer goes to
/// `out`.
fn ask_affinity(which: u16, pid: i32, mask: &[u8], out: &mut [u8; wire::MASK_MAX]) -> Answer {
    let Some(real_connect) = real::<ConnectFn>(&REAL_CONNECT) else { return Answer::Pass };
    let sa = request_addr();
    let mut req = [0u8; wire::AFF_REQ_MAX];
    let Some(n) = wire::encode_affinity(&mut req, which, pid, mask) else { return Answer::Failed(libc::EINVAL) };
    let mut ans = [0u8; wire::AFF_RSP_MAX];
    let Some(s) = sys::request_socket(real_connect, &sa, AFFINITY_TIMEOUT_S, true, &req[..n]) else {
        return Answer::Pass;
    };
    let got = sys::recv_retry(s, &mut ans);
    sys::close(s);
    if got < 0 {
        // Sent, never answered: the HOST may have acted; do not act locally too.
        return Answer::Failed(libc::ETIMEDOUT);
    }
    match wire::decode_affinity_answer(&ans[..got as usize]) {
        Some((0, m)) => {
            out[..m.len()].copy_from_slice(m);
            Answer::Done(m.len())
        }
        Some((wire::PASS, _)) => Answer::Pass,
        Some((e, _)) if e > 0 => Answer::Failed(e),
        // udsproxyd went away mid-request (EOF) or answered nonsense.
        _ => Answer::Failed(libc::EIO),
    }
}

/// Sends the request to the HOST per the rule: None = act locally, else the HOST's
/// outcome (for GET, the mask's length in `out`).
fn remote_affinity(
    target: Target,
    which: u16,
    mask: &[u8],
    out: &mut [u8; wire::MASK_MAX],
) -> Option<Result<usize, c_int>> {
    let (pid, local_on) = match target {
        Target::Local => return None,
        Target::Mapped(host) => (host, &[][..]),
        Target::Ask(n) => (n, &[libc::ESRCH, libc::EPERM][..]),
    };
    match ask_affinity(which, pid, mask, out) {
        Answer::Pass => None,
        Answer::Done(n) => Some(Ok(n)),
        Answer::Failed(e) if local_on.contains(&e) => None,
        Answer::Failed(e) => Some(Err(e)),
    }
}

/// # Safety
/// Same contract as `sched_getaffinity(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sched_getaffinity(pid: libc::pid_t, size: size_t, set: *mut libc::cpu_set_t) -> c_int {
    let Some(real_get) = real_or_enosys::<GetAffinityFn>(&REAL_GETAFFINITY) else { return -1 };
    let saved = errno();
    let target = classify(pid);
    let mut mask = [0u8; wire::MASK_MAX];
    let answer = remote_affinity(target, wire::AFF_GET, &[], &mut mask);
    set_errno(saved);
    match answer {
        None => {
            // SAFETY: forwarded unchanged to the real function.
            unsafe { real_get(pid, size, set) }
        }
        Some(Ok(n)) => {
            // As the kernel: the caller's set must be whole words and hold every CPU the
            // HOST reports; glibc clears what the kernel did not write.
            let fits = mask[n.min(size)..n].iter().all(|&b| b == 0);
            if !size.is_multiple_of(std::mem::size_of::<libc::c_ulong>()) || !fits {
                set_errno(libc::EINVAL);
                return -1;
            }
            if set.is_null() {
                set_errno(libc::EFAULT);
                return -1;
            }
            // SAFETY: the caller passes `size` writable bytes at `set`.
            let dst = unsafe { std::slice::from_raw_parts_mut(set.cast::<u8>(), size) };
            let k = n.min(size);
            dst[..k].copy_from_slice(&mask[..k]);
            dst[k..].fill(0);
            0
        }
        Some(Err(e)) => {
            set_errno(e);
            -1
        }
    }
}

/// # Safety
/// Same contract as `sched_setaffinity(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sched_setaffinity(pid: libc::pid_t, size: size_t, set: *const libc::cpu_set_t) -> c_int {
    let Some(real_set) = real_or_enosys::<SetAffinityFn>(&REAL_SETAFFINITY) else { return -1 };
    let saved = errno();
    let target = classify(pid);
    if target == Target::Local || set.is_null() {
        set_errno(saved);
        // SAFETY: forwarded unchanged to the real function.
        return unsafe { real_set(pid, size, set) };
    }
    // SAFETY: the caller passes `size` readable bytes at `set`.
    let src = unsafe { std::slice::from_raw_parts(set.cast::<u8>(), size) };
    // Only the words up to the highest CPU set travel (at least one word); a set naming
    // CPUs beyond what the wire carries is refused as the kernel refuses an impossible one.
    let word = std::mem::size_of::<libc::c_ulong>();
    let used = src.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let len = used.div_ceil(word).max(1) * word;
    if len > wire::MASK_MAX {
        set_errno(libc::EINVAL);
        return -1;
    }
    let mut mask = [0u8; wire::MASK_MAX];
    mask[..used].copy_from_slice(&src[..used]);
    let mut out = [0u8; wire::MASK_MAX];
    let answer = remote_affinity(target, wire::AFF_SET, &mask[..len], &mut out);
    set_errno(saved);
    match answer {
        None => {
            // SAFETY: forwarded unchanged to the real function.
            unsafe { real_set(pid, size, set) }
        }
        Some(Ok(_)) => 0,
        Some(Err(e)) => {
            set_errno(e);
            -1
        }
    }
}
