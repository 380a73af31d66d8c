//! `loadgen --engine-cpu`: the engine's own CPU time per request beside the CPU time of
//! the bare syscalls it makes for that request, measured in the same run (issue 15: at
//! most 2× for getattr, 4 KiB read and 4 KiB write).
//!
//! - **engine**: `engine --cores 1` on the tmpfs export, driven like every loadgen case
//!   (one connection per `--conns`, `--qd` requests in flight). Its CPU time is the whole
//!   process's — every thread, io_uring workers included, user and system — read from
//!   the process CPU clock of its pid before and after the timed run, divided by the
//!   requests answered. It includes what serving costs beyond the file operation: the
//!   socket receive and send, the ring, frame parsing, the whitelist, the counters.
//! - **syscalls**: the calls the engine makes for that request, on the same file of the
//!   same tmpfs, in a tight loop on this thread (its thread CPU clock):
//!   - getattr: `openat2(O_PATH | O_NOFOLLOW, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
//!     RESOLVE_CACHED)` + `statx(AT_EMPTY_PATH)` + `close`;
//!   - open-close: the same `openat2(O_PATH)` + `statx`, `openat2` of `/proc/self/fd/N`
//!     with `O_RDONLY`, two `close`s;
//!   - read4k / write4k: `pread` / `pwrite` of 4 KiB at a random 4 KiB-aligned offset.
//!
//! Every `--qd` is measured (default 1 and 32); the target applies at the largest, where
//! the socket's receive and send and the loop's wake-up are shared by a batch of requests
//! as on a busy engine. At depth 1 each request pays them alone: informative.
//!
//! Rounds alternate the two, case by case (A, B, A, B …); the ratio engine/syscalls of
//! the best rounds is what the target bounds.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use super::{Cli, FILE_SIZE, Target, Workload, progress, run_case};
use qtfs_client::ClientConfig;
use qtfs_perf::procs::{self, Tmpfs};
use qtfs_perf::{CaseResult, System};

/// The workloads this mode measures (the others have no single syscall twin).
const CASES: [Workload; 4] = [Workload::Getattr, Workload::OpenClose, Workload::Read4k, Workload::Write4k];

fn clock_ns(clk: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer for the duration of the call.
    let r = unsafe { libc::clock_gettime(clk, &mut ts) };
    (r == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time of process `pid` so far, all its threads, living and gone.
fn process_cpu_ns(pid: u32) -> Option<u64> {
    let mut clk: libc::clockid_t = 0;
    // SAFETY: clk is a valid out-pointer; the call only looks the process up.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clk) } != 0 {
        return None;
    }
    clock_ns(clk)
}

fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

fn last_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// `openat2(2)`, as the engine calls it.
fn openat2(dirfd: i32, path: &CString, flags: i32, resolve: u64) -> std::io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: path is NUL-terminated and `how` lives across the call with its true size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const libc::open_how,
            size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(last_err());
    }
    // SAFETY: the kernel just returned this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn statx_fd(fd: i32) -> std::io::Result<()> {
    // SAFETY: statx is plain data; all-zero is valid.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let flags = libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_AS_STAT;
    // SAFETY: "" is NUL-terminated and stx a valid out-pointer.
    let r = unsafe { libc::statx(fd, c"".as_ptr(), flags, libc::STATX_BASIC_STATS | libc::STATX_BTIME, &mut stx) };
    if r < 0 { Err(last_err()) } else { Ok(()) }
}

/// The engine's syscalls for one request of `w` on `export/f`, in a loop for `secs` of
/// wall time; returns (requests, CPU ns of this thread per request).
fn bare(w: Workload, export: &Path, secs: f64) -> std::io::Result<(u64, f64)> {
    let root = CString::new(export.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let root = openat2(libc::AT_FDCWD, &root, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let name = CString::new("f").expect("no NUL");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(export.join("f"))?;
    let safe = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    let mut buf = vec![0x5au8; 4096];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut one = || -> std::io::Result<()> {
        match w {
            Workload::Getattr => {
                let fd =
                    openat2(root.as_raw_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, safe | libc::RESOLVE_CACHED)?;
                statx_fd(fd.as_raw_fd())
            }
            Workload::OpenClose => {
                let p = openat2(root.as_raw_fd(), &name, libc::O_PATH, safe | libc::RESOLVE_CACHED)?;
                statx_fd(p.as_raw_fd())?;
                let proc = CString::new(format!("/proc/self/fd/{}", p.as_raw_fd())).map_err(std::io::Error::other)?;
                openat2(libc::AT_FDCWD, &proc, libc::O_RDONLY | libc::O_NOCTTY, 0).map(drop)
            }
            Workload::Read4k | Workload::Write4k => {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let off = ((rng % (FILE_SIZE / 4096)) * 4096) as libc::off_t;
                let fd = file.as_raw_fd();
                // SAFETY: buf is 4096 bytes, valid for reading into and writing from.
                let n = unsafe {
                    if w == Workload::Read4k {
                        libc::pread(fd, buf.as_mut_ptr().cast(), 4096, off)
                    } else {
                        libc::pwrite(fd, buf.as_ptr().cast(), 4096, off)
                    }
                };
                if n != 4096 { Err(last_err()) } else { Ok(()) }
            }
            Workload::Read1m | Workload::Readdir => Err(std::io::Error::other("no syscall twin")),
        }
    };
    // Warm-up: the dentry and the pages are as hot as the engine finds them.
    for _ in 0..1000 {
        one()?;
    }
    let t0 = Instant::now();
    let c0 = thread_cpu_ns();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        for _ in 0..256 {
            one()?;
        }
        n += 256;
    }
    let cpu = thread_cpu_ns() - c0;
    Ok((n, cpu as f64 / n as f64))
}

/// One engine run of `w`: (requests per second, engine CPU ns per request, share of a CPU
/// the engine used).
fn engine_run(
    t: &Target,
    pid: u32,
    w: Workload,
    qd: usize,
    conns: usize,
    secs: f64,
) -> std::io::Result<(f64, f64, f64)> {
    let c0 = process_cpu_ns(pid).ok_or_else(|| std::io::Error::other("engine CPU clock"))?;
    let o = run_case(t, w, qd, conns, secs)?;
    let c1 = process_cpu_ns(pid).ok_or_else(|| std::io::Error::other("engine CPU clock"))?;
    let cpu = (c1 - c0) as f64;
    Ok((o.ops as f64 / o.secs, cpu / o.ops.max(1) as f64, cpu / 1e9 / o.secs))
}

/// `loadgen --engine-cpu`: runs the comparison and writes
/// `perf/results/<date>-<host>-engine-cpu.{json,md}`.
pub(super) fn run(cli: &Cli, secs: f64, rounds: u32) {
    let cases: Vec<Workload> = CASES.into_iter().filter(|w| cli.ops.contains(w)).collect();
    let cases = if cases.is_empty() { CASES.to_vec() } else { cases };
    let mut qds = cli.qd.clone();
    qds.sort_unstable();
    qds.dedup();
    let qd_max = qds.last().copied().unwrap_or(32);
    let conns = cli.conns.iter().copied().min().unwrap_or(1).max(1);
    let work = cli.work.clone();
    let _ = std::fs::create_dir_all(&work);
    let tmp = Tmpfs::mount(&work.join("export"), 256).expect("tmpfs export (run as root)");
    let export = tmp.0.canonicalize().expect("export path");
    super::prepare(&export).expect("prepare export");
    let cpus = qtfs_perf::machine::cpus();
    progress(&format!("engine --cores 1 on a tmpfs export, qd {qds:?}, {conns} connection(s); syscalls in a loop"));
    let engine = procs::start_engine(&work, &export, 1, &[]).expect("start engine");
    let pid = engine.pid();
    let t = Target {
        cfg: ClientConfig::new(engine.addr.clone().expect("engine address")).insecure(),
        export_path: export.display().to_string(),
    };
    let mut results = super::interleaved(
        "engine-cpu",
        rounds,
        secs,
        format!(
            "CPU ns per request; engine --cores 1 (whole process: process CPU clock) over TCP loopback, \
             qd {qds:?}, {conns} connection(s), loadgen on the same {cpus} CPUs; syscalls: the engine's \
             calls for the request in a loop on one thread (thread CPU clock); tmpfs export; the target \
             (engine <= 2x syscalls) applies at the largest queue depth, where requests arrive in batches \
             as on a busy engine; at depth 1 every request pays its own receive, send and wake-up"
        ),
        vec![
            System::new("engine", "measured", "engine --cores 1, io_uring, TCP loopback: CPU per request served"),
            System::new("syscalls", "limit", "the engine's syscalls for that request, tight loop, same tmpfs file"),
        ],
    );
    for (w, qd) in cases.iter().flat_map(|&w| qds.iter().map(move |&q| (w, q))) {
        let name = format!("cpu-{}-qd{qd}-c{conns}", w.name());
        let mut cr = CaseResult::new(&name, "cpu_per_request", "ns", false);
        let (mut best_e, mut best_b) = (f64::MAX, f64::MAX);
        for _ in 0..rounds {
            match engine_run(&t, pid, w, qd, conns, secs) {
                Ok((rate, ns, util)) => {
                    cr.add("engine", ns);
                    if ns < best_e {
                        best_e = ns;
                        cr.extra("engine", "ops_per_s", rate);
                        cr.extra("engine", "cpu_utilisation", util);
                    }
                }
                Err(e) => progress(&format!("{name} on the engine: {e}")),
            }
            match bare(w, &export, secs.min(2.0)) {
                Ok((n, ns)) => {
                    cr.add("syscalls", ns);
                    if ns < best_b {
                        best_b = ns;
                        cr.extra("syscalls", "loops", n as f64);
                    }
                }
                Err(e) => progress(&format!("{name} syscalls: {e}")),
            }
        }
        let target: &[(&str, Option<f64>, Option<f64>)] = match w {
            Workload::Getattr | Workload::Read4k | Workload::Write4k if qd == qd_max => {
                &[("engine/syscalls", None, Some(2.0))]
            }
            _ => &[],
        };
        cr.finish(&[("engine", "syscalls")], target);
        progress(&format!(
            "{name:<26} engine {:>7.0} ns/req  syscalls {:>7.0} ns/req  ratio {:.2}",
            cr.best.get("engine").copied().unwrap_or(0.0),
            cr.best.get("syscalls").copied().unwrap_or(0.0),
            cr.ratios.get("engine/syscalls").copied().unwrap_or(0.0)
        ));
        results.results.push(cr);
    }
    drop(engine);
    qtfs_perf::publish(&results, &cli.out, "loadgen");
}
