//! Prompt coherence (INVAL): with attribute and entry timeouts of 60 s, only the engine's
//! invalidations can explain a change seen within milliseconds. Each test measures the
//! delay from the change to the moment the mount shows it (polled every 200 µs) and
//! prints the distribution; `perf/results/*-coherence.md` records a run.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::*;

const ROUNDS: usize = 200;
const BOUND: Duration = Duration::from_millis(50);

fn rig() -> Rig {
    rig_with(&["attr_timeout=60", "entry_timeout=60"])
}

/// A rig whose mount has these options.
fn rig_with(mount_opts: &[&str]) -> Rig {
    Rig::start(Opts { mount_opts: mount_opts.iter().map(|o| o.to_string()).collect(), ..Default::default() })
}

/// Polls `f` every 200 µs for at most 2 s; the time it took to become true.
fn seen_after(t0: Instant, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let deadline = t0 + Duration::from_secs(2);
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// p50, p99, max of the delays; asserts every change was seen, 99 % within `BOUND`.
fn report(what: &str, mut d: Vec<Duration>) {
    d.sort();
    let pct = |p: f64| d[((d.len() as f64 * p).ceil() as usize).clamp(1, d.len()) - 1];
    let (p50, p99, max) = (pct(0.50), pct(0.99), d[d.len() - 1]);
    eprintln!(
        "coherence {what}: n={} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        d.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(p99 <= BOUND, "{what}: p99 {p99:?} above {BOUND:?}");
}

fn content(i: usize) -> Vec<u8> {
    format!("v{i:07}").into_bytes()
}

/// A HOST write shows through an open descriptor of the mount (same size, so only the
/// dropped pages can explain it) and in `stat` (mtime, cached for 60 s otherwise).
#[test]
fn host_write_seen_promptly() {
    let rig = rig();
    std::fs::write(rig.h("f"), content(0)).unwrap();
    let f = std::fs::File::open(rig.m("f")).unwrap();
    let mut buf = [0u8; 8];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..], &content(0)[..]);
    let mut data = Vec::new();
    let mut attr = Vec::new();
    for i in 1..=ROUNDS {
        let before = std::fs::metadata(rig.m("f")).unwrap().modified().unwrap();
        let t0 = Instant::now();
        std::fs::write(rig.h("f"), content(i)).unwrap();
        let want = content(i);
        let d = seen_after(t0, || f.read_exact_at(&mut buf, 0).is_ok() && buf[..] == want[..]);
        data.push(d.unwrap_or_else(|| panic!("round {i}: the HOST write was not seen through the mount in 2 s")));
        let host_mtime = std::fs::metadata(rig.h("f")).unwrap().modified().unwrap();
        if host_mtime != before {
            let a = seen_after(t0, || std::fs::metadata(rig.m("f")).unwrap().modified().unwrap() == host_mtime);
            attr.push(a.unwrap_or_else(|| panic!("round {i}: the HOST mtime was not seen in 2 s")));
        }
    }
    report("HOST write -> data through an open fd", data);
    if !attr.is_empty() {
        report("HOST write -> mtime in stat", attr);
    }
}

/// HOST rename and unlink of names the kernel has cached for 60 s.
#[test]
fn host_rename_and_unlink_seen_promptly() {
    let rig = rig();
    let mut renames = Vec::new();
    let mut unlinks = Vec::new();
    for i in 0..ROUNDS / 2 {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        std::fs::write(rig.h(&a), b"x").unwrap();
        // Cache the name and its attributes.
        assert!(std::fs::symlink_metadata(rig.m(&a)).is_ok());
        let t0 = Instant::now();
        std::fs::rename(rig.h(&a), rig.h(&b)).unwrap();
        let d = seen_after(t0, || std::fs::symlink_metadata(rig.m(&a)).is_err());
        renames.push(d.unwrap_or_else(|| panic!("round {i}: the HOST rename was not seen in 2 s")));
        assert!(std::fs::symlink_metadata(rig.m(&b)).is_ok());
        let t0 = Instant::now();
        std::fs::remove_file(rig.h(&b)).unwrap();
        let d = seen_after(t0, || std::fs::symlink_metadata(rig.m(&b)).is_err());
        unlinks.push(d.unwrap_or_else(|| panic!("round {i}: the HOST unlink was not seen in 2 s")));
    }
    report("HOST rename -> old name gone", renames);
    report("HOST unlink -> name gone", unlinks);
}

/// A name found missing is remembered as missing (for the entry timeout, 60 s here);
/// a HOST create of it, file or directory, must still be seen promptly.
#[test]
fn host_create_of_a_name_found_missing_seen_promptly() {
    let rig = rig();
    std::fs::create_dir(rig.h("sub")).unwrap();
    let mut creates = Vec::new();
    for i in 0..ROUNDS / 2 {
        let name = format!("{}n{i}", if i % 2 == 0 { "" } else { "sub/" });
        assert!(std::fs::symlink_metadata(rig.m(&name)).is_err());
        assert!(std::fs::symlink_metadata(rig.m(&name)).is_err());
        let t0 = Instant::now();
        if i % 4 == 1 {
            std::fs::create_dir(rig.h(&name)).unwrap();
        } else {
            std::fs::write(rig.h(&name), b"x").unwrap();
        }
        let d = seen_after(t0, || std::fs::symlink_metadata(rig.m(&name)).is_ok());
        creates.push(d.unwrap_or_else(|| panic!("round {i}: the HOST create of {name} was not seen in 2 s")));
    }
    report("HOST create -> name found missing appears", creates);
}

/// A write through a second mount shows through the first.
#[test]
fn other_mount_write_seen_promptly() {
    let rig = rig();
    let second = SecondMount::new(&rig);
    std::fs::write(rig.h("shared"), content(0)).unwrap();
    let r = std::fs::File::open(rig.m("shared")).unwrap();
    let w = std::fs::OpenOptions::new().write(true).open(second.p("shared")).unwrap();
    let mut buf = [0u8; 8];
    r.read_exact_at(&mut buf, 0).unwrap();
    let mut d = Vec::new();
    for i in 1..=ROUNDS {
        let want = content(i);
        let t0 = Instant::now();
        w.write_all_at(&want, 0).unwrap();
        let s = seen_after(t0, || r.read_exact_at(&mut buf, 0).is_ok() && buf[..] == want[..]);
        d.push(s.unwrap_or_else(|| panic!("round {i}: the other mount's write was not seen in 2 s")));
    }
    report("other mount's write -> data through an open fd", d);
    // Names too: a file created and removed through the second mount.
    std::fs::write(second.p("made-there"), b"x").unwrap();
    assert!(std::fs::symlink_metadata(rig.m("made-there")).is_ok());
    let t0 = Instant::now();
    std::fs::remove_file(second.p("made-there")).unwrap();
    let s = seen_after(t0, || std::fs::symlink_metadata(rig.m("made-there")).is_err());
    assert!(s.is_some_and(|s| s <= Duration::from_millis(500)), "the other mount's unlink was not seen: {s:?}");
}

/// A live MAP_SHARED mapping sees a HOST write once the pages are invalidated.
#[test]
fn live_shared_mmap_sees_host_write() {
    let rig = rig();
    std::fs::write(rig.h("m"), vec![b'a'; 4096]).unwrap();
    let f = std::fs::File::open(rig.m("m")).unwrap();
    let p = map(&f, 4096);
    // SAFETY: a live read-only mapping of 4096 bytes (unmapped at the end).
    let first = || unsafe { std::ptr::read_volatile(p) };
    assert_eq!(first(), b'a');
    let t0 = Instant::now();
    std::fs::write(rig.h("m"), vec![b'b'; 4096]).unwrap();
    let s = seen_after(t0, || first() == b'b');
    eprintln!("coherence live MAP_SHARED mapping: HOST write seen after {s:?}");
    // SAFETY: unmaps the mapping made above; nothing uses `p` afterwards.
    unsafe { libc::munmap(p as *mut libc::c_void, 4096) };
    assert!(s.is_some_and(|s| s <= Duration::from_millis(500)), "the mapping did not see the HOST write: {s:?}");
}

fn map(f: &std::fs::File, len: usize) -> *const u8 {
    use std::os::fd::AsRawFd;
    // SAFETY: maps `len` bytes of an open file read-only; checked for MAP_FAILED.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(p, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    p as *const u8
}

/// What one mount saw of HOST changes within `window`: (data through an open fd, mtime
/// in stat, unlink of a cached name).
fn seen_within(mount_opts: &[&str], window: Duration) -> (bool, bool, bool) {
    let rig = rig_with(&[&["attr_timeout=60", "entry_timeout=60"], mount_opts].concat());
    std::fs::write(rig.h("f"), content(0)).unwrap();
    std::fs::write(rig.h("gone"), b"x").unwrap();
    let f = std::fs::File::open(rig.m("f")).unwrap();
    let mut buf = [0u8; 8];
    f.read_exact_at(&mut buf, 0).unwrap();
    let before = std::fs::metadata(rig.m("f")).unwrap().modified().unwrap();
    assert!(std::fs::symlink_metadata(rig.m("gone")).is_ok());
    // The HOST mtime must move for the stat check to mean anything (coarse clocks).
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || {
            std::fs::write(rig.h("f"), content(1)).unwrap();
            std::fs::metadata(rig.h("f")).unwrap().modified().unwrap() != before
        }),
        "the HOST mtime did not change"
    );
    std::fs::remove_file(rig.h("gone")).unwrap();
    let want = content(1);
    let (mut data, mut attr, mut name) = (false, false, false);
    // Polled for the whole window: a change seen once is seen.
    while t0.elapsed() < window {
        data |= f.read_exact_at(&mut buf, 0).is_ok() && buf[..] == want[..];
        attr |= std::fs::metadata(rig.m("f")).unwrap().modified().unwrap() != before;
        name |= std::fs::symlink_metadata(rig.m("gone")).is_err();
        if data && attr && name {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (data, attr, name)
}

/// The prompt tests above can fail: with `-o noinval` (timeouts only, 60 s) a HOST
/// change is not seen within 500 ms, while with invalidations it is.
#[test]
fn without_invalidations_a_host_change_is_not_seen_promptly() {
    let window = Duration::from_millis(500);
    assert_eq!(seen_within(&[], window), (true, true, true), "with invalidations: data, mtime, unlink seen");
    assert_eq!(seen_within(&["noinval"], window), (false, false, false), "-o noinval: nothing seen within {window:?}");
}

fn getxattr(p: &std::path::Path, name: &str) -> Result<Vec<u8>, i32> {
    use std::os::unix::ffi::OsStrExt;
    let f = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated path and name; buf is valid for its length.
    let r = unsafe { libc::getxattr(f.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(buf[..r as usize].to_vec())
    }
}

fn listxattr_len(p: &std::path::Path) -> isize {
    use std::os::unix::ffi::OsStrExt;
    let f = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated path; a size query writes nothing.
    unsafe { libc::listxattr(f.as_ptr(), std::ptr::null_mut(), 0) }
}

/// The mount remembers that a file has no extended attribute and no set-id bit (so the
/// kernel's questions around every write need no round trip); a HOST change of either
/// must still be seen promptly (attributes are cached for 60 s here), and a write by
/// another user must then clear the new set-user-ID bit.
#[test]
fn what_the_mount_learnt_of_a_file_follows_host_changes() {
    use std::os::unix::fs::PermissionsExt;
    let rig = rig();
    std::fs::write(rig.h("x"), b"x").unwrap();
    std::fs::set_permissions(rig.h("x"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut xattr = Vec::new();
    for i in 0..ROUNDS / 4 {
        let name = format!("user.k{i}");
        // Learnt: no attributes at all (root's empty listing) and this name absent.
        assert_eq!(listxattr_len(&rig.m("x")), if i == 0 { 0 } else { listxattr_len(&rig.h("x")) });
        assert_eq!(getxattr(&rig.m("x"), &name), Err(libc::ENODATA));
        assert_eq!(getxattr(&rig.m("x"), &name), Err(libc::ENODATA));
        let t0 = Instant::now();
        xattr::set(&rig.h("x"), &name, b"v");
        let s = seen_after(t0, || getxattr(&rig.m("x"), &name).as_deref() == Ok(&b"v"[..]));
        xattr.push(s.unwrap_or_else(|| panic!("round {i}: the HOST setxattr was not seen in 2 s")));
        assert_eq!(listxattr_len(&rig.m("x")), listxattr_len(&rig.h("x")), "round {i}: listing");
    }
    report("HOST setxattr -> getxattr of a name found absent", xattr);
    // A write by another user learns the mode has no set-id bit; then the HOST sets one.
    let w = |s: &str| sh_as(1000, 1000, &[], &rig.mnt, s);
    assert_eq!(w("echo a >> x"), "exit=0\n");
    std::fs::set_permissions(rig.h("x"), std::fs::Permissions::from_mode(0o4777)).unwrap();
    let t0 = Instant::now();
    let s = seen_after(t0, || std::fs::metadata(rig.m("x")).unwrap().permissions().mode() & 0o4000 != 0);
    assert!(s.is_some(), "the HOST chmod u+s was not seen in 2 s");
    assert_eq!(w("echo b >> x"), "exit=0\n");
    let mode = std::fs::metadata(rig.h("x")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o777, "a write by another user clears set-user-ID");
}

/// An open by root tells the mount whether the file has extended attributes at all
/// (`feat::XATTR_NONE`): `cp -a`'s listing and ACL questions of a file without any need
/// no round trip, a file with one lists it, and a HOST setxattr after the open is seen
/// promptly.
#[test]
fn an_open_tells_the_mount_whether_the_file_has_extended_attributes() {
    use qtfs_proto::Op;
    let rig = rig();
    std::fs::write(rig.h("plain"), b"x").unwrap();
    std::fs::write(rig.h("tagged"), b"x").unwrap();
    xattr::set(&rig.h("tagged"), "user.tag", b"v");
    let asked = || rig.engine_requests(Op::XATTR_LIST) + rig.engine_requests(Op::XATTR_GET);
    let questions = |p: &std::path::Path| {
        assert_eq!(listxattr_len(p), 0);
        assert_eq!(getxattr(p, "system.posix_acl_access"), Err(libc::ENODATA));
    };
    // Files made through the mount (its own changes bring it no invalidation): the CREATE
    // answer tells.
    let before = asked();
    for i in 0..10 {
        drop(std::fs::File::create_new(rig.m(&format!("c{i}"))).unwrap());
        questions(&rig.m(&format!("c{i}")));
    }
    assert_eq!(asked() - before, 0, "the listing and ACL questions after a CREATE asked the engine");
    // A change of their attributes through the mount drops what it learnt; then the OPEN
    // answer tells.
    for i in 0..10 {
        xattr::set(&rig.m(&format!("c{i}")), "user.t", b"v");
        xattr::remove(&rig.m(&format!("c{i}")), "user.t");
    }
    let before = asked();
    for i in 0..10 {
        let f = std::fs::File::open(rig.m(&format!("c{i}"))).unwrap();
        questions(&rig.m(&format!("c{i}")));
        drop(f);
    }
    assert_eq!(asked() - before, 0, "the listing and ACL questions after an OPEN asked the engine");
    let f = std::fs::File::open(rig.m("tagged")).unwrap();
    assert_eq!(listxattr_len(&rig.m("tagged")), listxattr_len(&rig.h("tagged")));
    assert_eq!(getxattr(&rig.m("tagged"), "user.tag").as_deref(), Ok(&b"v"[..]));
    drop(f);
    let mut seen = Vec::new();
    for i in 0..ROUNDS / 4 {
        let name = format!("user.late{i}");
        let f = std::fs::File::open(rig.m("plain")).unwrap();
        assert_eq!(getxattr(&rig.m("plain"), &name), Err(libc::ENODATA));
        let t0 = Instant::now();
        xattr::set(&rig.h("plain"), &name, b"w");
        let d = seen_after(t0, || getxattr(&rig.m("plain"), &name).as_deref() == Ok(&b"w"[..]));
        seen.push(d.unwrap_or_else(|| panic!("round {i}: the HOST setxattr after an open was not seen in 2 s")));
        xattr::remove(&rig.h("plain"), &name);
        drop(f);
    }
    report("HOST setxattr after an open -> getxattr", seen);
}

mod xattr {
    pub fn set(p: &std::path::Path, name: &str, v: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        let f = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: NUL-terminated path and name; v is valid for its length.
        let r = unsafe { libc::setxattr(f.as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        assert_eq!(r, 0, "setxattr {name}: {}", std::io::Error::last_os_error());
    }

    pub fn remove(p: &std::path::Path, name: &str) {
        use std::os::unix::ffi::OsStrExt;
        let f = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: NUL-terminated path and name.
        let r = unsafe { libc::removexattr(f.as_ptr(), n.as_ptr()) };
        assert_eq!(r, 0, "removexattr {name}: {}", std::io::Error::last_os_error());
    }
}

/// After a change made through the mount, `stat` of the directory is answered from the
/// attributes the engine sent with the change (`feat::DIR_ATTR`): they must be the HOST's
/// (mtime, link count), and a later HOST change must still show (the INVAL drops them).
#[test]
fn a_directory_changed_through_the_mount_shows_the_hosts_attributes() {
    use std::os::unix::fs::MetadataExt;
    let rig = rig();
    std::fs::create_dir(rig.h("d")).unwrap();
    let same = |what: &str| {
        let (m, h) = (std::fs::metadata(rig.m("d")).unwrap(), std::fs::metadata(rig.h("d")).unwrap());
        let key = |x: &std::fs::Metadata| (x.nlink(), x.mtime(), x.mtime_nsec(), x.ctime(), x.ctime_nsec(), x.size());
        assert_eq!(key(&m), key(&h), "after {what}: the mount's stat of the directory differs from the HOST's");
    };
    same("nothing");
    std::fs::create_dir(rig.m("d/sub")).unwrap();
    same("mkdir");
    std::fs::write(rig.m("d/f"), b"x").unwrap();
    same("create");
    std::fs::hard_link(rig.m("d/f"), rig.m("d/g")).unwrap();
    same("link");
    std::fs::rename(rig.m("d/g"), rig.m("d/sub/g")).unwrap();
    same("rename out");
    std::os::unix::fs::symlink("f", rig.m("d/l")).unwrap();
    same("symlink");
    std::fs::remove_file(rig.m("d/l")).unwrap();
    same("unlink");
    // A change of the directory itself after a change in it (tar sets a directory's
    // mtime after filling it): the attributes kept from the change are stale then.
    // By path, so that nothing asks for the directory's attributes in between; then a
    // listing, after which the kernel asks again (its atime), as `tar -c` does.
    std::fs::write(rig.m("d/f2"), b"x").unwrap();
    let times = [libc::timespec { tv_sec: 1_000_000_000, tv_nsec: 0 }; 2];
    let p = std::ffi::CString::new(rig.m("d").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and two timespecs.
    assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }, 0);
    assert_eq!(std::fs::read_dir(rig.m("d")).unwrap().count(), 3);
    same("utimes after create");
    std::fs::create_dir(rig.m("d/sub/inner")).unwrap();
    std::fs::create_dir(rig.m("d2")).unwrap();
    std::fs::rename(rig.m("d/sub"), rig.m("d2/sub")).unwrap();
    let moved = |x: &std::path::Path| {
        let m = std::fs::metadata(x).unwrap();
        (m.nlink(), m.ctime(), m.ctime_nsec(), m.mtime(), m.mtime_nsec())
    };
    assert_eq!(moved(&rig.m("d2/sub")), moved(&rig.h("d2/sub")), "the moved directory's attributes");
    same("rename of a directory away");
    std::fs::rename(rig.m("d2/sub"), rig.m("d/sub")).unwrap();
    std::fs::remove_dir(rig.m("d/sub/inner")).unwrap();
    std::fs::remove_file(rig.m("d/sub/g")).unwrap();
    std::fs::remove_dir(rig.m("d/sub")).unwrap();
    same("rmdir");
    // With 60 s timeouts, only the INVAL of the HOST's mkdir can bring the new count.
    std::fs::create_dir(rig.m("d/again")).unwrap();
    let _ = std::fs::metadata(rig.m("d")).unwrap();
    let n = std::fs::metadata(rig.h("d")).unwrap().nlink();
    std::fs::create_dir(rig.h("d/by-host")).unwrap();
    let t0 = Instant::now();
    let seen = seen_after(t0, || std::fs::metadata(rig.m("d")).unwrap().nlink() == n + 1);
    assert!(seen.is_some(), "the HOST's mkdir never showed in the mount's link count of the directory");
}

/// After a listing the kernel asks for the directory's attributes again before the next
/// `stat` (the listing may have set its atime): answered from those the engine read right
/// after the listing (`feat::LIST_ATTR`), which are the HOST's.
#[test]
fn a_directory_listed_through_the_mount_shows_the_hosts_attributes_without_asking_again() {
    use qtfs_proto::Op;
    use std::os::unix::fs::MetadataExt;
    let rig = rig();
    std::fs::create_dir(rig.h("d")).unwrap();
    for i in 0..5 {
        std::fs::write(rig.h(&format!("d/f{i}")), b"x").unwrap();
    }
    let key = |m: std::fs::Metadata| (m.nlink(), m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec(), m.size());
    // The invalidations of the HOST's creates may still be on their way (each drops what
    // the mount keeps of `d`): until one round goes without the engine, for 2 s at most.
    let quiet = seen_after(Instant::now(), || {
        // A change through the mount first, so that the listing is the engine's (not one
        // kept from the round before).
        std::fs::write(rig.m("d/made-here"), b"x").unwrap();
        std::fs::remove_file(rig.m("d/made-here")).unwrap();
        let _ = std::fs::metadata(rig.m("d")).unwrap();
        let before = rig.engine_requests(Op::GETATTR);
        assert_eq!(std::fs::read_dir(rig.m("d")).unwrap().count(), 5);
        let after = std::fs::metadata(rig.m("d")).unwrap();
        assert_eq!(
            key(after),
            key(std::fs::metadata(rig.h("d")).unwrap()),
            "the directory's attributes after a listing"
        );
        rig.engine_requests(Op::GETATTR) == before
    });
    assert!(quiet.is_some(), "the stat after a listing always asked the engine");
}

/// A directory opened again soon (`rm -r` opens each one twice) is listed from the
/// listing of the previous open, without the engine; every change of a name in it
/// through the mount shows in the next listing at once, a HOST change promptly, and the
/// attributes of the kept listing never replace newer ones the kernel has.
#[test]
fn a_directory_listed_again_is_served_from_the_last_listing_and_follows_every_change() {
    use qtfs_proto::Op;
    use std::collections::BTreeSet;
    use std::os::unix::fs::MetadataExt;
    let rig = rig();
    let listing = |d: &str| -> BTreeSet<String> {
        std::fs::read_dir(rig.m(d)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
    };
    let host = |d: &str| -> BTreeSet<String> {
        std::fs::read_dir(rig.h(d)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
    };
    let readdirs = || rig.engine_requests(Op::READDIR);
    std::fs::create_dir_all(rig.h("l/sub")).unwrap();
    std::fs::create_dir(rig.h("other")).unwrap();
    for i in 0..10 {
        std::fs::write(rig.h(&format!("l/f{i}")), content(i)).unwrap();
    }
    let before = readdirs();
    assert_eq!(listing("l"), host("l"));
    assert!(readdirs() - before >= 1, "the first listing did not ask the engine");
    // The invalidations of the HOST's creates above may still be on their way (each
    // drops what the mount knows of `l`): wait until a listing is kept.
    let kept = seen_after(Instant::now(), || {
        assert_eq!(listing("l"), host("l"));
        let before = readdirs();
        assert_eq!(listing("l"), host("l"));
        assert_eq!(listing("l"), host("l"));
        readdirs() == before
    });
    assert!(kept.is_some(), "listings soon after the first always asked the engine again");
    // A name it does not hold, found missing, leaves it as it is.
    let before = readdirs();
    assert!(std::fs::symlink_metadata(rig.m("l/not-there")).is_err());
    assert_eq!(listing("l"), host("l"));
    assert_eq!(readdirs() - before, 0, "a name found missing that the listing does not hold dropped it");
    // Every name operation through the mount: the next listing is the HOST's.
    let changes: [(&str, &dyn Fn()); 8] = [
        ("create", &|| std::fs::write(rig.m("l/new"), b"x").unwrap()),
        ("unlink", &|| std::fs::remove_file(rig.m("l/f0")).unwrap()),
        ("rename within", &|| std::fs::rename(rig.m("l/f1"), rig.m("l/g1")).unwrap()),
        ("rename out", &|| std::fs::rename(rig.m("l/f2"), rig.m("other/f2")).unwrap()),
        ("rename in", &|| std::fs::rename(rig.m("other/f2"), rig.m("l/h2")).unwrap()),
        ("link", &|| std::fs::hard_link(rig.m("l/f3"), rig.m("l/k3")).unwrap()),
        ("symlink and mkdir", &|| {
            std::os::unix::fs::symlink("f4", rig.m("l/s4")).unwrap();
            std::fs::create_dir(rig.m("l/d5")).unwrap();
        }),
        ("rmdir", &|| std::fs::remove_dir(rig.m("l/sub")).unwrap()),
    ];
    for (what, change) in changes {
        assert_eq!(listing("l"), host("l"), "before {what}");
        change();
        assert_eq!(listing("l"), host("l"), "the listing after {what} through the mount");
    }
    // A file written through the mount after a listing: the next listing (READDIRPLUS)
    // must not bring back its size of before.
    assert_eq!(listing("l"), host("l"));
    let mut f = std::fs::OpenOptions::new().append(true).open(rig.m("l/f5")).unwrap();
    std::io::Write::write_all(&mut f, b"more").unwrap();
    drop(f);
    let grown = content(5).len() as u64 + 4;
    assert_eq!(std::fs::metadata(rig.m("l/f5")).unwrap().size(), grown);
    let before = readdirs();
    assert_eq!(listing("l"), host("l"));
    assert_eq!(readdirs() - before, 0, "the write dropped the directory's listing");
    assert_eq!(
        std::fs::metadata(rig.m("l/f5")).unwrap().size(),
        grown,
        "a kept listing's attributes replaced newer ones"
    );
    // HOST changes: with 60 s timeouts only the INVAL can bring them.
    let mut seen = Vec::new();
    for i in 0..ROUNDS / 4 {
        let name = format!("hc{i}");
        assert_eq!(listing("l"), host("l"));
        let t0 = Instant::now();
        std::fs::write(rig.h(&format!("l/{name}")), b"x").unwrap();
        let d = seen_after(t0, || listing("l").contains(&name));
        seen.push(d.unwrap_or_else(|| panic!("round {i}: the HOST create of l/{name} never showed in a listing")));
        let t0 = Instant::now();
        std::fs::remove_file(rig.h(&format!("l/{name}"))).unwrap();
        let d = seen_after(t0, || !listing("l").contains(&name));
        seen.push(d.unwrap_or_else(|| panic!("round {i}: the HOST unlink of l/{name} never showed in a listing")));
    }
    report("HOST create/unlink in a listed directory -> next listing", seen);
}

/// Without `default_permissions` the kernel does not check who may read a directory: a
/// listing read with one caller's rights answers nobody else's open.
#[test]
fn without_default_permissions_every_open_of_a_directory_asks_the_engine() {
    use qtfs_proto::Op;
    let rig = rig_with(&["attr_timeout=60", "entry_timeout=60", "nodefault_permissions"]);
    std::fs::create_dir(rig.h("l")).unwrap();
    std::fs::write(rig.h("l/f"), b"x").unwrap();
    let before = rig.engine_requests(Op::READDIR);
    for _ in 0..3 {
        assert_eq!(std::fs::read_dir(rig.m("l")).unwrap().count(), 1);
    }
    assert!(rig.engine_requests(Op::READDIR) - before >= 3, "a listing was kept without default_permissions");
}

/// A directory made through the mount is known empty, so the LOOKUP the kernel sends
/// before each create in it (and of any name not made) is answered without the engine;
/// a name the HOST makes there must still show promptly, looked up before or not.
#[test]
fn a_directory_made_through_the_mount_answers_missing_names_itself_and_hears_the_host() {
    use qtfs_proto::Op;
    let rig = rig();
    let lookups = || rig.engine_requests(Op::LOOKUP);
    std::fs::create_dir(rig.m("d")).unwrap();
    let before = lookups();
    for i in 0..20 {
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(rig.m(&format!("d/f{i}"))).unwrap();
        drop(f);
    }
    assert!(std::fs::symlink_metadata(rig.m("d/missing")).is_err());
    assert_eq!(lookups() - before, 0, "creates and a missing name in a directory made here asked the engine");
    // The same in a directory the HOST made: every new name is looked up (the count
    // above would see them).
    std::fs::create_dir(rig.h("h")).unwrap();
    let before = lookups();
    for i in 0..5 {
        std::fs::write(rig.m(&format!("h/f{i}")), b"x").unwrap();
    }
    assert!(lookups() - before >= 5, "LOOKUPs of new names in a HOST-made directory not counted");
    // HOST creates in the directory made here: one name never looked up through the
    // mount, one looked up (absent) first. With 60 s timeouts only the INVAL explains it.
    let mut seen = Vec::new();
    for i in 0..ROUNDS / 4 {
        let (fresh, known) = (format!("d/h{i}"), format!("d/k{i}"));
        assert!(std::fs::symlink_metadata(rig.m(&known)).is_err());
        let t0 = Instant::now();
        std::fs::write(rig.h(&fresh), b"x").unwrap();
        std::fs::write(rig.h(&known), b"x").unwrap();
        for name in [&fresh, &known] {
            let d = seen_after(t0, || std::fs::symlink_metadata(rig.m(name)).is_ok());
            seen.push(d.unwrap_or_else(|| panic!("round {i}: the HOST create of {name} was not seen in 2 s")));
        }
        // The directory was invalidated: make the next round start from a known-empty one.
        let d2 = format!("d{i}");
        std::fs::create_dir(rig.m(&d2)).unwrap();
        std::fs::write(rig.h(&format!("{d2}/x")), b"x").unwrap();
        let d = seen_after(t0, || std::fs::symlink_metadata(rig.m(&format!("{d2}/x"))).is_ok());
        seen.push(d.unwrap_or_else(|| panic!("round {i}: the HOST create in a new directory was not seen in 2 s")));
    }
    report("HOST create in a directory made through the mount -> name appears", seen);
}

/// What a directory made through the mount knows of its names follows every name
/// operation made through the mount: with `entry_timeout=0` the kernel asks for each name
/// again on every use, so a name made (or moved in) and then answered "absent" would
/// show here.
#[test]
fn names_made_in_a_new_directory_are_found_after_the_kernel_forgets_them() {
    let rig = rig_with(&["attr_timeout=60", "entry_timeout=0", "negative_timeout=60"]);
    let m = |p: &str| rig.m(p);
    let exists = |p: &str| std::fs::symlink_metadata(m(p)).is_ok();
    std::fs::create_dir(m("d")).unwrap();
    std::fs::write(m("d/f1"), b"1").unwrap();
    std::fs::write(m("d/f2"), b"2").unwrap();
    std::fs::create_dir(m("d/sub")).unwrap();
    std::fs::write(m("d/sub/s"), b"s").unwrap();
    std::os::unix::fs::symlink("f1", m("d/sl")).unwrap();
    std::fs::hard_link(m("d/f1"), m("d/hl")).unwrap();
    std::fs::rename(m("d/f2"), m("d/g2")).unwrap();
    let c = path_c(&m("d/fifo"));
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(m("other")).unwrap();
    std::fs::write(m("other/o"), b"o").unwrap();
    std::fs::rename(m("other/o"), m("d/moved")).unwrap();
    // RENAME_WHITEOUT (overlayfs's rename) leaves a whiteout at the old name.
    std::fs::write(m("d/w1"), b"w").unwrap();
    let (from, to) = (path_c(&m("d/w1")), path_c(&m("d/w2")));
    // SAFETY: valid NUL-terminated paths; renameat2 takes no other pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_WHITEOUT,
        )
    };
    assert_eq!(r, 0, "renameat2(RENAME_WHITEOUT): {}", std::io::Error::last_os_error());
    for p in ["d/f1", "d/g2", "d/sub", "d/sub/s", "d/sl", "d/hl", "d/fifo", "d/moved", "d/w1", "d/w2"] {
        assert!(exists(p), "{p} made through the mount is not found");
        assert!(rig.h(p).symlink_metadata().is_ok(), "{p} is not on the HOST");
    }
    for p in ["d/f2", "other/o", "d/nothing"] {
        assert!(!exists(p), "{p} is found");
    }
    std::fs::remove_file(m("d/f1")).unwrap();
    assert!(!exists("d/f1"));
    std::fs::write(m("d/f1"), b"again").unwrap();
    assert_eq!(std::fs::read(m("d/f1")).unwrap(), b"again");
    // A HOST create is still seen (the timeouts would hide it for 60 s).
    std::fs::write(rig.h("d/host"), b"h").unwrap();
    assert!(qtfs_testkit::wait_until(Duration::from_secs(2), || exists("d/host")), "HOST create not seen");
    let mut listed: Vec<_> =
        std::fs::read_dir(m("d")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    listed.sort();
    assert_eq!(listed, ["f1", "fifo", "g2", "hl", "host", "moved", "sl", "sub", "w1", "w2"]);
}

fn path_c(p: &std::path::Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// A unix socket the engine itself makes in the export (a proxied listener, CHAN_LISTEN
/// from another session) shows through a mount that asked not to hear its own changes
/// (`feat::NO_ECHO`), even while that mount is the only client changing anything and in
/// a directory it made itself (whose missing names it answers on its own): the engine's
/// own change must not be taken for the mount's.
#[test]
fn a_socket_the_engine_makes_for_a_listener_shows_through_a_mount_that_changes_things_too() {
    use qtfs_proto::Op;
    let rig = rig();
    let cfg = {
        let mut c = qtfs_client::ClientConfig::new(rig.server().parse().unwrap());
        c.request_timeout = Some(Duration::from_secs(30));
        c.insecure()
    };
    let s = qtfs_client::Session::connect(cfg, 1).unwrap();
    for i in 0..10 {
        // The mount changes something (it is a maker for the next seconds) and looks the
        // socket's name up: absent, remembered for 60 s.
        let dir = format!("d{i}");
        std::fs::create_dir(rig.m(&dir)).unwrap();
        let name = format!("{dir}/l.sock");
        assert!(std::fs::symlink_metadata(rig.m(&name)).is_err());
        let host = rig.h(&name);
        let m = qtfs_testkit::root_listen_req(host.as_os_str().as_encoded_bytes(), 0o660);
        let t0 = Instant::now();
        s.call(Op::CHAN_LISTEN, &m).unwrap();
        let d = seen_after(t0, || std::fs::symlink_metadata(rig.m(&name)).is_ok());
        assert!(d.is_some(), "round {i}: the listener's socket was not seen through the mount in 2 s");
    }
}
