//! Processes and limits: CPU affinity of a HOST process, the open descriptor limit, and
//! pinning the engine's threads to CPUs. Pidfds and signals through them come from
//! `qtfs-sys` (re-exported here).

use std::io;

use super::{check, check_i};

pub use qtfs_sys::{pidfd_open, pidfd_send_signal};

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
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check_i(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)).map(|_| ())
    }
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; CPU_ISSET reads within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// The soft `RLIMIT_NOFILE` of the process.
pub fn nofile_limit() -> u64 {
    qtfs_sys::nofile_limit().0
}
