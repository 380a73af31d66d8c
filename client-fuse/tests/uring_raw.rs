//! FUSE over io_uring end to end, with no FUSE library: the test mounts a file system
//! with mount(2), answers INIT on `/dev/fuse` itself (offering `FUSE_OVER_IO_URING`),
//! serves one [`UringQueue`] per possible CPU on its own thread plus one `/dev/fuse`
//! reader (INIT, FORGET, INTERRUPT and requests from before the ring was ready still go
//! there), then stats and reads a file through the mount and checks that LOOKUP and READ
//! were answered through the rings. Unmounting must end every queue thread.
//!
//! Needs root and a kernel with `CONFIG_FUSE_IO_URING` (the `fuse` module's
//! `enable_uring` parameter, which the test turns on and puts back). Without them the
//! test fails, unless `QTFS_ALLOW_NO_FUSE_URING=1`, where it prints `SKIPPED: ...`.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use qtfs_client_fuse::kernel::abi::{self, init, op};
use qtfs_client_fuse::kernel::uring::{
    self, Completions, FUSE_OVER_IO_URING_FLAGS2, FUSE_URING_MIN_MINOR, RingEntry, Tasks, UringQueue,
};

const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";
const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";
const HELLO: &[u8] = b"hello through the fuse io_uring\n";
const ROOT_INO: u64 = 1;
const HELLO_INO: u64 = 2;
const MAX_WRITE: u32 = 128 * 1024;
const MAX_PAGES: u16 = 32;
const QUEUE_DEPTH: u16 = 4;

/// Which transport answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Via {
    Ring,
    Dev,
}

#[derive(Default)]
struct Stats {
    /// Requests answered, by transport and opcode.
    counts: HashMap<(Via, u32), usize>,
    /// Requests answered by each ring queue.
    per_qid: HashMap<u16, usize>,
    /// What the ring delivered for LOOKUP: (queue, op_in length, payload).
    ring_lookup: Vec<(u16, usize, Vec<u8>)>,
    /// What the ring delivered for READ: (op_in length, payload length).
    ring_read: Vec<(usize, usize)>,
}

/// Fails the test with `why`, or prints `SKIPPED: why` when the environment allows it.
fn unavailable(why: &str) {
    if std::env::var("QTFS_ALLOW_NO_FUSE_URING").as_deref() == Ok("1") {
        println!("SKIPPED: FUSE over io_uring unavailable: {why}");
    } else {
        panic!("FUSE over io_uring unavailable: {why} (set QTFS_ALLOW_NO_FUSE_URING=1 to skip this test)");
    }
}

/// Puts `enable_uring` back to what it was.
struct EnableUringGuard {
    old: String,
}

impl Drop for EnableUringGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(ENABLE_URING, self.old.as_bytes()) {
            eprintln!("could not restore {ENABLE_URING} to {:?}: {e}", self.old);
        }
    }
}

/// Detaches the mount if the test ends early.
struct MountGuard {
    path: CString,
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        // SAFETY: umount2 reads the NUL-terminated path; failure (already unmounted) is fine.
        unsafe { libc::umount2(self.path.as_ptr(), libc::MNT_DETACH) };
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// The number of possible CPUs (`num_possible_cpus()`, the kernel's queue count).
fn possible_cpus() -> usize {
    let text = std::fs::read_to_string(POSSIBLE_CPUS).expect("read /sys/devices/system/cpu/possible");
    let mut n = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a.parse().expect("cpu number");
        let b: usize = b.parse().expect("cpu number");
        n += b - a + 1;
    }
    assert!(n > 0, "no possible CPU in {text:?}");
    n
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

/// `struct fuse_attr` (88 bytes).
fn attr(ino: u64) -> Vec<u8> {
    let (size, mode, nlink) = if ino == ROOT_INO {
        (0u64, libc::S_IFDIR | 0o755, 2u32)
    } else {
        (HELLO.len() as u64, libc::S_IFREG | 0o444, 1)
    };
    let mut a = Vec::with_capacity(88);
    a.extend_from_slice(&ino.to_ne_bytes());
    a.extend_from_slice(&size.to_ne_bytes());
    a.extend_from_slice(&size.div_ceil(512).to_ne_bytes()); // blocks
    for _ in 0..3 {
        a.extend_from_slice(&1_700_000_000u64.to_ne_bytes()); // atime, mtime, ctime
    }
    for _ in 0..3 {
        a.extend_from_slice(&0u32.to_ne_bytes()); // nsecs
    }
    for v in [
        mode, nlink, 0,    /* uid */
        0,    /* gid */
        0,    /* rdev */
        4096, /* blksize */
        0,    /* flags */
    ] {
        a.extend_from_slice(&v.to_ne_bytes());
    }
    assert_eq!(a.len(), 88);
    a
}

/// The file system: the reply body for a request, or an errno. `args` is everything after
/// the in header (the opcode's struct, then names or data), as `/dev/fuse` delivers it.
fn answer(opcode: u32, nodeid: u64, args: &[u8]) -> Result<Vec<u8>, i32> {
    match opcode {
        op::LOOKUP => {
            let name = args.split(|&b| b == 0).next().unwrap_or_default();
            if nodeid != ROOT_INO || name != b"hello" {
                return Err(libc::ENOENT);
            }
            let mut e = Vec::with_capacity(128);
            e.extend_from_slice(&HELLO_INO.to_ne_bytes()); // nodeid
            e.extend_from_slice(&1u64.to_ne_bytes()); // generation
            e.extend_from_slice(&1u64.to_ne_bytes()); // entry_valid
            e.extend_from_slice(&1u64.to_ne_bytes()); // attr_valid
            e.extend_from_slice(&[0; 8]); // nsecs
            e.extend_from_slice(&attr(HELLO_INO));
            Ok(e)
        }
        op::GETATTR => {
            if nodeid != ROOT_INO && nodeid != HELLO_INO {
                return Err(libc::ENOENT);
            }
            let mut o = Vec::with_capacity(104);
            o.extend_from_slice(&1u64.to_ne_bytes()); // attr_valid
            o.extend_from_slice(&[0; 8]); // attr_valid_nsec, dummy
            o.extend_from_slice(&attr(nodeid));
            Ok(o)
        }
        op::OPEN => {
            if nodeid != HELLO_INO {
                return Err(libc::EISDIR);
            }
            let mut o = Vec::with_capacity(16);
            o.extend_from_slice(&7u64.to_ne_bytes()); // fh
            o.extend_from_slice(&[0; 8]); // open_flags, backing_id
            Ok(o)
        }
        op::READ => {
            if nodeid != HELLO_INO {
                return Err(libc::EISDIR);
            }
            if args.len() < 40 {
                return Err(libc::EINVAL);
            }
            let offset = usize::try_from(u64_at(args, 8)).unwrap_or(usize::MAX).min(HELLO.len());
            let size = u32_at(args, 16) as usize;
            Ok(HELLO[offset..HELLO.len().min(offset.saturating_add(size))].to_vec())
        }
        op::FLUSH | op::RELEASE => Ok(Vec::new()),
        op::STATFS => {
            let mut s = Vec::with_capacity(80);
            for v in [100u64, 50, 50, 10, 5] {
                s.extend_from_slice(&v.to_ne_bytes()); // blocks, bfree, bavail, files, ffree
            }
            for v in [4096u32, 255, 4096, 0] {
                s.extend_from_slice(&v.to_ne_bytes()); // bsize, namelen, frsize, padding
            }
            s.extend_from_slice(&[0; 24]); // spare
            Ok(s)
        }
        _ => Err(libc::ENOSYS),
    }
}

/// Serves `/dev/fuse` until the connection ends: requests that do not go through the rings.
fn dev_reader(fd: RawFd, stats: Arc<Mutex<Stats>>) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_WRITE as usize + 64 * 1024];
    loop {
        // SAFETY: read writes at most buf.len() bytes into buf.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN | libc::ENOENT) => continue,
                Some(libc::ENODEV) => return Ok(()), // unmounted
                _ => return Err(e),
            }
        }
        let msg = &buf[..n as usize];
        if msg.len() < 40 {
            return Err(io::Error::other(format!("short request of {} bytes on /dev/fuse", msg.len())));
        }
        let (opcode, unique, nodeid) = (u32_at(msg, 4), u64_at(msg, 8), u64_at(msg, 16));
        *stats.lock().unwrap().counts.entry((Via::Dev, opcode)).or_default() += 1;
        if matches!(opcode, op::FORGET | op::BATCH_FORGET | op::INTERRUPT) {
            continue; // no reply
        }
        let (error, body) = match answer(opcode, nodeid, &msg[40..]) {
            Ok(body) => (0, body),
            Err(errno) => (-errno, Vec::new()),
        };
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&error.to_ne_bytes());
        out.extend_from_slice(&unique.to_ne_bytes());
        out.extend_from_slice(&body);
        // SAFETY: write reads out.len() bytes from out.
        let w = unsafe { libc::write(fd, out.as_ptr().cast(), out.len()) };
        if w < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOENT) => {} // the request was interrupted meanwhile
                Some(libc::ENODEV) => return Ok(()),
                _ => return Err(e),
            }
        }
    }
}

/// Reads INIT from `/dev/fuse` and answers it with `FUSE_OVER_IO_URING`. Returns the
/// kernel's minor, or why io_uring cannot be used.
fn answer_init(fd: RawFd) -> Result<u32, String> {
    let mut buf = vec![0u8; MAX_WRITE as usize + 64 * 1024];
    // SAFETY: read writes at most buf.len() bytes into buf.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "read INIT from /dev/fuse: {}", io::Error::last_os_error());
    let msg = &buf[..n as usize];
    assert!(msg.len() >= 40 + 16, "INIT request too short: {} bytes", msg.len());
    assert_eq!(u32_at(msg, 4), op::INIT, "first request is not INIT");
    let unique = u64_at(msg, 8);
    let arg = &msg[40..];
    let (major, minor, max_readahead, flags) = (u32_at(arg, 0), u32_at(arg, 4), u32_at(arg, 8), u32_at(arg, 12));
    let flags2 = if flags & (init::INIT_EXT as u32) != 0 && arg.len() >= 20 { u32_at(arg, 16) } else { 0 };
    println!("INIT from the kernel: {major}.{minor} flags={flags:#x} flags2={flags2:#x}");
    assert_eq!(major, 7, "FUSE major");
    let usable = minor >= FUSE_URING_MIN_MINOR && flags2 & FUSE_OVER_IO_URING_FLAGS2 != 0;

    let mut init = Vec::with_capacity(64);
    for v in
        [7u32, minor, max_readahead, ((init::ASYNC_READ | init::BIG_WRITES | init::MAX_PAGES | init::INIT_EXT) as u32)]
    {
        init.extend_from_slice(&v.to_ne_bytes());
    }
    init.extend_from_slice(&16u16.to_ne_bytes()); // max_background
    init.extend_from_slice(&12u16.to_ne_bytes()); // congestion_threshold
    init.extend_from_slice(&MAX_WRITE.to_ne_bytes());
    init.extend_from_slice(&1u32.to_ne_bytes()); // time_gran
    init.extend_from_slice(&MAX_PAGES.to_ne_bytes());
    init.extend_from_slice(&0u16.to_ne_bytes()); // map_alignment
    let our_flags2 = if usable { FUSE_OVER_IO_URING_FLAGS2 } else { 0 };
    init.extend_from_slice(&our_flags2.to_ne_bytes());
    init.extend_from_slice(&0u32.to_ne_bytes()); // max_stack_depth
    init.extend_from_slice(&0u16.to_ne_bytes()); // request_timeout
    init.extend_from_slice(&[0; 22]); // unused
    assert_eq!(init.len(), 64);
    let mut out = Vec::with_capacity(80);
    out.extend_from_slice(&80u32.to_ne_bytes());
    out.extend_from_slice(&0i32.to_ne_bytes());
    out.extend_from_slice(&unique.to_ne_bytes());
    out.extend_from_slice(&init);
    // SAFETY: write reads out.len() bytes from out.
    let w = unsafe { libc::write(fd, out.as_ptr().cast(), out.len()) };
    assert_eq!(w, out.len() as isize, "INIT reply: {}", io::Error::last_os_error());
    if usable {
        Ok(minor)
    } else {
        Err(format!(
            "the kernel did not offer FUSE_OVER_IO_URING in INIT (protocol 7.{minor}, flags2 {flags2:#x}) although {ENABLE_URING} is Y"
        ))
    }
}

/// The ring handler: the same file system as `/dev/fuse`, fed `op_in` then the payload,
/// answered through the entry (the queue commits it once the entry is dropped).
fn ring_handler(stats: Arc<Mutex<Stats>>) -> impl FnMut(RingEntry) {
    move |ent| {
        let h = ent.in_header();
        let (opcode, unique, nodeid) = (u32_at(h, 4), u64_at(h, 8), u64_at(h, 16));
        {
            let mut s = stats.lock().unwrap();
            *s.counts.entry((Via::Ring, opcode)).or_default() += 1;
            *s.per_qid.entry(ent.qid()).or_default() += 1;
            match opcode {
                op::LOOKUP => s.ring_lookup.push((ent.qid(), ent.op_in().len(), ent.payload().to_vec())),
                op::READ => s.ring_read.push((ent.op_in().len(), ent.payload().len())),
                _ => {}
            }
        }
        let mut args = ent.op_in().to_vec();
        args.extend_from_slice(ent.payload());
        let (error, body) = match answer(opcode, nodeid, &args) {
            Ok(body) => (0, body),
            Err(errno) => (-errno, Vec::new()),
        };
        let out = abi::out_header(abi::OUT_HEADER_SIZE + body.len(), error, unique);
        ent.send_message(&[io::IoSlice::new(&out), io::IoSlice::new(&body)]).expect("reply fits the ring buffer");
    }
}

#[test]
fn fuse_over_io_uring_serves_lookup_and_read() {
    let before = std::fs::read_to_string(ENABLE_URING).ok();
    serve_and_check();
    if let Some(before) = before {
        let after = std::fs::read_to_string(ENABLE_URING).expect("read enable_uring");
        assert_eq!(after.trim(), before.trim(), "{ENABLE_URING} was not put back");
        println!("{ENABLE_URING} back to {}", after.trim());
    }
}

/// Mounts, serves, checks and unmounts; `enable_uring` is back to its value on return.
fn serve_and_check() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return unavailable("the test needs root (mount(2), the fuse module parameter)");
    }
    let dev = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(f) => OwnedFd::from(f),
        Err(e) => return unavailable(&format!("cannot open /dev/fuse: {e}")),
    };
    let old = match std::fs::read_to_string(ENABLE_URING) {
        Ok(s) => s.trim().to_string(),
        Err(e) => return unavailable(&format!("the kernel has no CONFIG_FUSE_IO_URING ({ENABLE_URING}: {e})")),
    };
    let _param = EnableUringGuard { old };
    if let Err(e) = std::fs::write(ENABLE_URING, b"Y") {
        return unavailable(&format!("cannot set {ENABLE_URING} to Y: {e}"));
    }
    match std::fs::read_to_string(ENABLE_URING) {
        Ok(s) if s.trim() == "Y" => {}
        other => return unavailable(&format!("{ENABLE_URING} did not turn Y: {other:?}")),
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let mnt = dir.path().to_path_buf();
    let mnt_c = CString::new(mnt.as_os_str().as_bytes()).unwrap();
    let data = CString::new(format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd())).unwrap();
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    cvt(unsafe {
        libc::mount(
            c"qtfs-uring-test".as_ptr(),
            mnt_c.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    })
    .expect("mount fuse");
    let mount_guard = MountGuard { path: mnt_c.clone() };

    let fd = dev.as_raw_fd();
    if let Err(why) = answer_init(fd) {
        return unavailable(&why);
    }

    let stats = Arc::new(Mutex::new(Stats::default()));
    let (done_tx, done_rx) = mpsc::channel::<(String, io::Result<()>)>();

    // The /dev/fuse reader.
    {
        let (stats, tx) = (stats.clone(), done_tx.clone());
        thread::spawn(move || {
            let r = dev_reader(fd, stats);
            let _ = tx.send(("/dev/fuse reader".to_string(), r));
        });
    }
    // One queue per possible CPU, each on its own thread.
    let nr_queues = possible_cpus();
    let payload = uring::min_payload_size(MAX_WRITE, MAX_PAGES);
    println!("{nr_queues} queues (possible CPUs), depth {QUEUE_DEPTH}, payload {payload} bytes");
    for qid in 0..nr_queues {
        let (stats, tx) = (stats.clone(), done_tx.clone());
        thread::Builder::new()
            .name(format!("fuse-ring-{qid}"))
            .spawn(move || {
                let r = UringQueue::new(fd, qid as u16, QUEUE_DEPTH, payload).and_then(|mut q| {
                    let completions = Completions::new()?;
                    let mut handle = ring_handler(stats);
                    q.run_async(&completions, &mut Tasks::default(), |_| {}, move |ent, _| handle(ent))
                });
                let _ = tx.send((format!("queue {qid}"), r));
            })
            .unwrap();
    }
    drop(done_tx);

    // A watchdog: if the file system hangs, abort the connection (MNT_FORCE calls
    // fuse_umount_begin, which aborts it) so that the test fails instead of hanging.
    let (ok_tx, ok_rx) = mpsc::channel::<()>();
    let watchdog_path = mnt_c.clone();
    let watchdog = thread::spawn(move || {
        if ok_rx.recv_timeout(Duration::from_secs(60)) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("watchdog: the file system hung for 60 s, aborting the connection");
            // SAFETY: umount2 reads the NUL-terminated path.
            unsafe {
                libc::umount2(watchdog_path.as_ptr(), libc::MNT_FORCE);
                libc::umount2(watchdog_path.as_ptr(), libc::MNT_DETACH);
            }
            return true;
        }
        false
    });

    let hello = mnt.join("hello");
    let io_result = (|| -> io::Result<()> {
        let md = std::fs::metadata(&hello)?;
        assert!(md.is_file(), "hello is not a file: {md:?}");
        assert_eq!(md.len(), HELLO.len() as u64, "size of hello");
        let content = std::fs::read(&hello)?;
        assert_eq!(content, HELLO, "content of hello");
        let missing = std::fs::metadata(mnt.join("missing"));
        assert_eq!(missing.map_err(|e| e.raw_os_error()).unwrap_err(), Some(libc::ENOENT));
        statvfs(&mnt)?;
        Ok(())
    })();
    // From a thread pinned to each CPU we may run on, a LOOKUP (of a missing name, never
    // cached) that must come through that CPU's queue.
    let probed: Vec<usize> = (0..nr_queues)
        .filter(|&cpu| {
            let path = mnt.join(format!("probe-{cpu}"));
            thread::spawn(move || {
                if !qtfs_testkit::pin_to_cpu(cpu) {
                    return false; // offline or not allowed: nothing to probe
                }
                let r = std::fs::metadata(&path);
                assert_eq!(r.map_err(|e| e.raw_os_error()).unwrap_err(), Some(libc::ENOENT), "{path:?}");
                true
            })
            .join()
            .unwrap()
        })
        .collect();
    assert!(!probed.is_empty(), "could not pin a thread to any CPU");
    let _ = ok_tx.send(());
    let watchdog_fired = watchdog.join().unwrap();
    assert!(!watchdog_fired, "the file system hung (watchdog fired); io result: {io_result:?}");
    io_result.expect("stat/read/statfs through the mount");

    {
        let s = stats.lock().unwrap();
        let mut counts: Vec<_> = s.counts.iter().map(|(&(p, op), &n)| (p, op, n)).collect();
        counts.sort_by_key(|&(p, op, _)| (p == Via::Dev, op));
        println!("requests answered (transport, opcode, count): {counts:?}");
        println!("per queue: {:?}", s.per_qid);
        let lookups: Vec<_> =
            s.ring_lookup.iter().map(|(q, op, p)| (q, op, String::from_utf8_lossy(p).into_owned())).collect();
        println!("ring LOOKUP (queue, op_in len, payload): {lookups:?}");
        println!("ring READ (op_in len, payload len): {:?}", s.ring_read);
        let count = |p, op| s.counts.get(&(p, op)).copied().unwrap_or(0);
        assert!(count(Via::Ring, op::LOOKUP) >= 1, "no LOOKUP came through the rings");
        assert!(count(Via::Ring, op::READ) >= 1, "no READ came through the rings");
        assert_eq!(count(Via::Dev, op::LOOKUP), 0, "a LOOKUP went through /dev/fuse");
        assert_eq!(count(Via::Dev, op::READ), 0, "a READ went through /dev/fuse");
        assert!(count(Via::Ring, op::OPEN) >= 1, "no OPEN came through the rings");
        // The kernel's layout, as the protocol layer must parse it: LOOKUP's name is in the
        // payload (its first argument is empty), READ's fuse_read_in is op_in.
        assert!(s.ring_lookup.iter().any(|(_, op, p)| *op == 0 && p == b"hello\0"), "LOOKUP layout: {lookups:?}");
        assert!(s.ring_read.iter().all(|&r| r == (40, 0)), "READ layout: {:?}", s.ring_read);
        // A request goes to the queue of the CPU its caller runs on.
        for &cpu in &probed {
            let name = format!("probe-{cpu}\0");
            assert!(
                s.ring_lookup.iter().any(|(q, _, p)| usize::from(*q) == cpu && p == name.as_bytes()),
                "the LOOKUP of a thread pinned to CPU {cpu} did not come through queue {cpu}: {lookups:?}"
            );
        }
    }

    // Unmount: every queue thread and the reader must end, cleanly.
    // SAFETY: umount2 reads the NUL-terminated path.
    cvt(unsafe { libc::umount2(mnt_c.as_ptr(), libc::MNT_DETACH) }).expect("umount2");
    std::mem::forget(mount_guard);
    let mut ended = Vec::new();
    for _ in 0..nr_queues + 1 {
        match done_rx.recv_timeout(Duration::from_secs(20)) {
            Ok((who, r)) => {
                assert!(r.is_ok(), "{who} ended with an error: {r:?}");
                ended.push(who);
            }
            Err(e) => panic!("not every queue thread ended after unmount ({e:?}); ended: {ended:?}"),
        }
    }
    ended.sort();
    println!("ended cleanly after unmount: {ended:?}");
}

fn statvfs(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st is a valid statvfs to write.
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut st) })?;
    assert_eq!(st.f_blocks, 100, "statfs blocks");
    Ok(())
}
