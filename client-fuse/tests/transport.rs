//! How the transport the suite runs on (`QTFS_FUSE_TRANSPORT`) serves requests: over
//! FUSE io_uring, and over `/dev/fuse` with ring threads (`-o dev_ring=on`), each ring's
//! thread serves the requests that wait only for the engine itself, many at once (tasks
//! suspended while their engine request is out), and hands the ones that may wait for
//! something else (locks) to the worker pool; the plain `/dev/fuse` workers have no rings.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;

const THREADS: usize = 8;
const ROUNDS: usize = 300;
const FORGOTTEN: usize = 40;

/// (requests served on the ring's thread, most in flight at once, requests given to the
/// pool) of one `fuse io_uring queue N ended: ...` or `/dev/fuse ring thread N ended: ...`
/// line.
fn queue_counts(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.split("ended: ").nth(1)?;
    let num = |s: &str| s.trim().split(' ').next()?.parse::<u64>().ok();
    let here = num(rest)?;
    let most = num(rest.split("at most ").nth(1)?)?;
    let pool = num(rest.split("in flight at once), ").nth(1)?)?;
    Some((here, most, pool))
}

#[test]
fn ring_queues_serve_many_requests_at_once_on_their_own_thread() {
    require_fuse();
    let mut rig = Rig::start(Opts::default());
    for i in 0..THREADS {
        fs::write(rig.h(&format!("f{i}")), format!("file {i}")).unwrap();
    }
    // Extended attributes are never cached by the kernel: every getxattr is a request;
    // so is every write (write-through).
    std::thread::scope(|s| {
        for i in 0..THREADS {
            let path = CString::new(rig.m(&format!("f{i}")).into_os_string().into_encoded_bytes()).unwrap();
            let file = fs::OpenOptions::new().write(true).open(rig.m(&format!("f{i}"))).unwrap();
            s.spawn(move || {
                // All on CPU 0, so that every request goes to queue 0.
                assert!(qtfs_testkit::pin_to_cpu(0), "cannot run on CPU 0");
                let name = c"user.absent";
                for r in 0..ROUNDS {
                    // SAFETY: valid C strings; size 0 asks for the length only.
                    let rc = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
                    let e = std::io::Error::last_os_error().raw_os_error();
                    assert!(rc < 0 && e == Some(libc::ENODATA), "getxattr: rc {rc}, {e:?}");
                    use std::os::unix::fs::FileExt;
                    file.write_all_at(format!("file {i}").as_bytes(), (r % 4) as u64 * 4096).unwrap();
                }
            });
        }
    });
    // A lock may wait for its holder: not served on a queue's thread.
    let f = fs::File::open(rig.m("f0")).unwrap();
    // SAFETY: flock on our descriptor.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) }, 0);
    drop(f);
    // Each unlinked file's inode is forgotten at once (FORGET): local bookkeeping, never
    // given to the pool. Each `isatty` asks the file system (IOCTL), answered at once.
    for i in 0..FORGOTTEN {
        fs::write(rig.m(&format!("gone{i}")), b"x").unwrap();
        let f = fs::File::open(rig.m(&format!("gone{i}"))).unwrap();
        // SAFETY: isatty on our descriptor.
        assert_eq!(unsafe { libc::isatty(f.as_raw_fd()) }, 0, "a file is no terminal");
        drop(f);
        fs::remove_file(rig.m(&format!("gone{i}"))).unwrap();
    }
    assert!(fs::read(rig.m("f3")).unwrap().starts_with(b"file 3"));
    assert_eq!(fs::read(rig.h("f3")).unwrap()[3 * 4096..], *b"file 3", "the writes reached the HOST");
    assert_eq!(rig.unmount(), Some(0), "qtfs-fuse exits 0 after unmount");

    let ring_line = |l: &String| l.contains("fuse io_uring queue") || l.contains("/dev/fuse ring thread");
    let lines = || -> Vec<String> { rig.fuse_log.lock().unwrap().iter().filter(|l| ring_line(l)).cloned().collect() };
    // One line per ring once qtfs-fuse ended (its log is read by another thread).
    let queues = match transport() {
        Transport::Dev => {
            assert!(lines().is_empty(), "the /dev/fuse workers have no rings: {:?}", lines());
            return;
        }
        Transport::Uring => qtfs_client_fuse::kernel::ring::possible_cpus().unwrap(),
        Transport::DevRing => std::thread::available_parallelism().unwrap().get(),
    };
    assert!(
        wait_until(Duration::from_secs(10), || lines().len() == queues),
        "a line per queue ({queues}): {:?}",
        lines()
    );
    let counts: Vec<(u64, u64, u64)> =
        lines().iter().map(|l| queue_counts(l).unwrap_or_else(|| panic!("cannot read {l:?}"))).collect();
    let here: u64 = counts.iter().map(|c| c.0).sum();
    let most = counts.iter().map(|c| c.1).max().unwrap();
    let pool: u64 = counts.iter().map(|c| c.2).sum();
    println!("rings (served here, most at once, pool): {counts:?}");
    assert!(here >= (2 * THREADS * ROUNDS) as u64, "every getxattr and write served on a ring's thread: {counts:?}");
    assert!(most >= 2, "requests of one ring overlap while their engine requests are out: {counts:?}");
    assert!(
        (2..=8).contains(&pool),
        "flock's requests, and nothing else (no FORGET or IOCTL of the {FORGOTTEN} unlinked files), went to the worker pool: {counts:?}"
    );
}

#[test]
fn queue_line_reading() {
    let l = "INFO fuse io_uring queue 0 ended: 2400 requests served on its thread (at most 7 in flight at once), 3 by the worker pool";
    assert_eq!(queue_counts(l), Some((2400, 7, 3)));
    let l = "INFO /dev/fuse ring thread 1 ended: 209400 requests served on its thread (at most 16 in flight at once), 2 by the worker pool";
    assert_eq!(queue_counts(l), Some((209400, 16, 2)));
    assert_eq!(queue_counts("something else"), None);
}
