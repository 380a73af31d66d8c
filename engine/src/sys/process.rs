//! Processes and limits: CPU affinity of a HOST process, the open descriptor limit, and
//! pinning the engine's threads to CPUs. Pidfds and signals through them come from
//! `qtfs-sys` (re-exported here).

use std::io;

use rustix::thread::CpuSet;

use super::{check, rx};

pub use qtfs_sys::{pidfd_open, pidfd_send_signal};

// libc: the raw mask bytes and the length the kernel copied travel as they are; rustix's
// CpuSet is fixed-size and drops that length.
pub fn sched_getaffinity(pid: i32) -> io::Result<Vec<u8>> {
    let mut mask = vec![0u8; 128];
    // SAFETY: mask valid for its length.
    let n = check(unsafe { libc::syscall(libc::SYS_sched_getaffinity, pid, mask.len(), mask.as_mut_ptr()) })?;
    mask.truncate(n as usize);
    Ok(mask)
}

pub fn sched_setaffinity(pid: i32, mask: &[u8]) -> io::Result<()> {
    // SAFETY: mask valid for its length.
    check(unsafe { libc::syscall(libc::SYS_sched_setaffinity, pid, mask.len(), mask.as_ptr()) }).map(|_| ())
}

/// Raises the soft limit on open descriptors to the hard limit: every open handle and
/// every channel holds one.
pub fn raise_nofile() {
    qtfs_sys::raise_nofile(u64::MAX);
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    rx(rustix::thread::sched_setaffinity(None, &set))
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect(),
    }
}

/// The soft `RLIMIT_NOFILE` of the process.
pub fn nofile_limit() -> u64 {
    qtfs_sys::nofile_limit().0
}
