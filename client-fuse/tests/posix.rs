//! POSIX behaviour through a real qtfs-fuse mount, in the spirit of pjdfstest: each
//! scenario runs once on a plain local directory and once on the mount (both on the same
//! HOST file system) and the logged results must be identical; then the HOST side of the
//! export is checked where the mount alone could hide a mistake.

mod common;

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

use common::*;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn renameat2(a: &Path, b: &Path, flags: u32) -> std::io::Result<()> {
    let (a, b) = (cpath(a), cpath(b));
    // SAFETY: two valid C strings; renameat2 does not keep them.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), flags) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A tree listing (relative names, types, modes, sizes, link counts; no inode numbers or
/// times) for comparisons.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let extra = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                format!("size={}", m.len())
            } else {
                String::new()
            };
            out.push(format!("{rel} mode={:o} nlink={} uid={} gid={} {extra}", m.mode(), m.nlink(), m.uid(), m.gid()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn files_dirs_and_errors_match_a_local_directory() {
    let rig = same_on_both("basic", |r, log| {
        log.push(res(fs::write(r.join("f"), b"hello world")));
        log.push(format!("{:?}", fs::read(r.join("f")).unwrap()));
        log.push(res(fs::create_dir(r.join("d"))));
        log.push(res(fs::create_dir(r.join("d"))));
        log.push(res(fs::create_dir(r.join("nope/x"))));
        log.push(res(fs::remove_dir(r.join("f"))));
        log.push(res(fs::remove_file(r.join("d"))));
        log.push(res(fs::write(r.join("d/g"), b"x")));
        log.push(res(fs::remove_dir(r.join("d"))));
        log.push(res(fs::read(r.join("missing"))));
        log.push(res(fs::File::open(r.join("f/sub"))));
        log.push(res(fs::OpenOptions::new().write(true).create_new(true).open(r.join("f"))));
        let long = "x".repeat(256);
        log.push(res(fs::write(r.join(&long), b"")));
        // O_APPEND, truncate, extend.
        let mut f = fs::OpenOptions::new().append(true).open(r.join("f")).unwrap();
        f.write_all(b"!!").unwrap();
        drop(f);
        log.push(String::from_utf8(fs::read(r.join("f")).unwrap()).unwrap());
        let f = fs::OpenOptions::new().write(true).open(r.join("f")).unwrap();
        f.set_len(5).unwrap();
        log.push(format!("{}", f.metadata().unwrap().len()));
        f.set_len(100_000).unwrap();
        drop(f);
        let data = fs::read(r.join("f")).unwrap();
        log.push(format!("{} {:?} {}", data.len(), &data[..5], data[5..].iter().all(|&b| b == 0)));
        // O_TRUNC on open.
        fs::write(r.join("f"), b"short").unwrap();
        log.push(format!("{:?}", fs::read(r.join("f")).unwrap()));
        // Positional writes and reads.
        let mut f = fs::OpenOptions::new().read(true).write(true).open(r.join("f")).unwrap();
        f.seek(SeekFrom::Start(3)).unwrap();
        f.write_all(b"XYZ").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        log.push(s);
        // mkfifo shows up as a FIFO.
        let fifo = cpath(&r.join("fifo"));
        // SAFETY: valid C string.
        log.push(format!("{}", unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }));
        log.extend(tree(r));
    });
    // The HOST sees the same tree the mount showed.
    assert_eq!(tree(&rig.h("basic")), tree(&rig.local.join("basic")));
}

#[test]
fn rename_edge_cases() {
    same_on_both("rename", |r, log| {
        let j = |s: &str| r.join(s);
        fs::write(j("a"), b"a").unwrap();
        fs::write(j("b"), b"b").unwrap();
        fs::create_dir(j("d1")).unwrap();
        fs::create_dir(j("d2")).unwrap();
        fs::create_dir(j("full")).unwrap();
        fs::write(j("full/x"), b"x").unwrap();
        log.push(res(fs::rename(j("a"), j("b")))); // file over file
        log.push(String::from_utf8(fs::read(j("b")).unwrap()).unwrap());
        log.push(res(fs::rename(j("d1"), j("d2")))); // dir over empty dir
        log.push(res(fs::rename(j("d2"), j("full")))); // dir over non-empty dir
        log.push(res(fs::rename(j("b"), j("full")))); // file over dir
        log.push(res(fs::rename(j("full"), j("b")))); // dir over file
        log.push(res(fs::rename(j("full"), j("full/inside")))); // into itself
        log.push(res(fs::rename(j("nope"), j("x"))));
        log.push(res(fs::rename(j("b"), j("b")))); // same name
        fs::write(j("c"), b"c").unwrap();
        log.push(res(renameat2(&j("c"), &j("b"), libc::RENAME_NOREPLACE)));
        log.push(res(renameat2(&j("c"), &j("c2"), libc::RENAME_NOREPLACE)));
        log.push(res(renameat2(&j("c2"), &j("full"), libc::RENAME_EXCHANGE)));
        log.push(res(renameat2(&j("c2"), &j("zzz"), libc::RENAME_EXCHANGE)));
        // After the exchange `c2` is the directory and `full` the file.
        log.push(String::from_utf8(fs::read(j("full")).unwrap()).unwrap());
        log.push(res(fs::read(j("c2/x"))));
        // Rename a directory, then use a path below it (the client's names must follow).
        fs::create_dir_all(j("p/q/r")).unwrap();
        fs::write(j("p/q/r/f"), b"deep").unwrap();
        log.push(res(fs::rename(j("p"), j("p2"))));
        log.push(String::from_utf8(fs::read(j("p2/q/r/f")).unwrap()).unwrap());
        log.push(res(fs::metadata(j("p/q/r/f"))));
        log.push(res(fs::rename(j("p2/q"), j("q"))));
        log.push(String::from_utf8(fs::read(j("q/r/f")).unwrap()).unwrap());
        log.extend(tree(r));
    });
}

#[test]
fn hard_links_symlinks_and_unlink_while_open() {
    same_on_both("links", |r, log| {
        let j = |s: &str| r.join(s);
        fs::write(j("f"), b"data").unwrap();
        log.push(res(fs::hard_link(j("f"), j("h"))));
        log.push(res(fs::hard_link(j("f"), j("h"))));
        fs::create_dir(j("d")).unwrap();
        log.push(res(fs::hard_link(j("d"), j("dl"))));
        let (a, b) = (fs::metadata(j("f")).unwrap(), fs::metadata(j("h")).unwrap());
        log.push(format!("same ino {} nlink {} {}", a.ino() == b.ino(), a.nlink(), b.nlink()));
        fs::write(j("h"), b"changed").unwrap();
        log.push(String::from_utf8(fs::read(j("f")).unwrap()).unwrap());
        fs::remove_file(j("f")).unwrap();
        log.push(format!("nlink {}", fs::metadata(j("h")).unwrap().nlink()));
        // Symlinks: relative, absolute, dangling, loop, through a directory link.
        log.push(res(symlink("h", j("s"))));
        log.push(res(symlink("/nonexistent/abs", j("abs"))));
        log.push(res(symlink("missing", j("dangling"))));
        log.push(res(symlink("loop2", j("loop1"))));
        log.push(res(symlink("loop1", j("loop2"))));
        log.push(res(symlink("d", j("dlink"))));
        log.push(format!("{:?}", fs::read_link(j("s")).unwrap()));
        log.push(format!("{:?}", fs::read_link(j("abs")).unwrap()));
        log.push(String::from_utf8(fs::read(j("s")).unwrap()).unwrap());
        log.push(res(fs::read(j("dangling"))));
        log.push(res(fs::read(j("loop1"))));
        log.push(res(fs::write(j("dlink/viasym"), b"v")));
        log.push(res(fs::read_link(j("h"))));
        log.push(format!("{}", fs::symlink_metadata(j("s")).unwrap().file_type().is_symlink()));
        log.push(format!("{}", fs::metadata(j("s")).unwrap().len()));
        // Unlink while open: the open file lives on.
        let mut f = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(j("u")).unwrap();
        f.write_all(b"still here").unwrap();
        fs::remove_file(j("u")).unwrap();
        log.push(res(fs::metadata(j("u"))));
        f.write_all(b"!").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        log.push(s);
        let m = f.metadata().unwrap();
        log.push(format!("fstat nlink={} size={}", m.nlink(), m.len()));
        f.set_len(3).unwrap();
        log.push(format!("after ftruncate {}", f.metadata().unwrap().len()));
        drop(f);
        log.extend(tree(r));
    });
}

#[test]
fn permissions_ownership_and_groups_as_other_users() {
    let rig = Rig::start(Opts::default());
    for root in [&rig.local, &rig.mnt] {
        let j = |s: &str| root.join("perm").join(s);
        fs::create_dir(root.join("perm")).unwrap();
        fs::set_permissions(root.join("perm"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::create_dir(j("priv")).unwrap();
        fs::set_permissions(j("priv"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(j("priv/secret"), b"s").unwrap();
        fs::write(j("ro"), b"ro").unwrap();
        fs::set_permissions(j("ro"), fs::Permissions::from_mode(0o444)).unwrap();
        fs::write(j("grp"), b"group readable").unwrap();
        std::os::unix::fs::chown(j("grp"), Some(0), Some(4321)).unwrap();
        fs::set_permissions(j("grp"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::create_dir(j("sticky")).unwrap();
        fs::set_permissions(j("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(j("sticky/roots"), b"r").unwrap();
        fs::write(j("setid"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(j("setid"), fs::Permissions::from_mode(0o6777)).unwrap();
        fs::create_dir(j("sgid")).unwrap();
        std::os::unix::fs::chown(j("sgid"), Some(0), Some(4321)).unwrap();
        fs::set_permissions(j("sgid"), fs::Permissions::from_mode(0o2777)).unwrap();
    }
    let script = "
        cat priv/secret; touch priv/new; echo x > ro; cat ro; cat grp;
        touch mine; chmod 600 mine; chown 0 mine; chgrp 4321 mine;
        rm -f sticky/roots; touch sticky/own; rm sticky/own;
        chmod 777 ro; touch -d '2001-02-03 04:05:06' ro; touch -d '2001-02-03 04:05:06' mine;
        echo more >> setid; stat -c 'setid after write: %a' setid;
        mkdir d; chmod 500 d; touch d/x; mkdir sgid/sub; touch sgid/f;
        ls -ln mine sgid | grep -v '^total' | sed 's/  */ /g' | cut -d' ' -f1-4,9-; stat -c '%a %u %g %X %Y' mine; echo done";
    let local = sh_as(1000, 1000, &[], &rig.local.join("perm"), script);
    let mount = sh_as(1000, 1000, &[], &rig.mnt.join("perm"), script);
    assert_eq!(local, mount, "as uid 1000 without groups");
    assert!(local.contains("Permission denied"), "the scenario must hit denials: {local}");
    // With the supplementary group 4321 the group-readable file and chgrp work, and that
    // only holds if the groups reach the engine.
    let script2 = "cat grp; touch g2; chgrp 4321 g2; stat -c '%a %u %g' g2; mkdir gd; echo done";
    let local = sh_as(1001, 1001, &[4321], &rig.local.join("perm"), script2);
    let mount = sh_as(1001, 1001, &[4321], &rig.mnt.join("perm"), script2);
    assert_eq!(local, mount, "as uid 1001 with group 4321");
    assert!(local.contains("group readable") && local.contains("4321"), "{local}");
    // Ownership on the HOST is the caller's.
    let m = fs::metadata(rig.h("perm/g2")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1001, 4321));
    let m = fs::metadata(rig.h("perm/mine")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    let m = fs::metadata(rig.h("perm/sgid/f")).unwrap();
    assert_eq!(m.gid(), 4321, "setgid directory passes its group on");
    assert_eq!(tree(&rig.h("perm")), tree(&rig.local.join("perm")));
}

#[test]
fn timestamps_follow_posix() {
    same_on_both("times", |r, log| {
        let f = r.join("f");
        fs::write(&f, b"x").unwrap();
        let t = fs::FileTimes::new()
            .set_accessed(std::time::UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789))
            .set_modified(std::time::UNIX_EPOCH + Duration::new(999_999_999, 987_654_321));
        fs::File::options().write(true).open(&f).unwrap().set_times(t).unwrap();
        let m = fs::metadata(&f).unwrap();
        log.push(format!("{}.{} {}.{}", m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec()));
        // Pre-1970 times survive too.
        let old = fs::FileTimes::new().set_modified(std::time::UNIX_EPOCH - Duration::new(86_400, 500));
        fs::File::options().write(true).open(&f).unwrap().set_times(old).unwrap();
        let m = fs::metadata(&f).unwrap();
        log.push(format!("{}.{}", m.mtime(), m.mtime_nsec()));
        // A write moves mtime and ctime; chmod moves ctime only.
        let before = fs::metadata(&f).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fs::OpenOptions::new().write(true).open(&f).unwrap().write_all(b"y").unwrap();
        let after = fs::metadata(&f).unwrap();
        log.push(format!(
            "write: mtime moved {} ctime moved {}",
            after.mtime() > before.mtime(),
            after.ctime_nsec() != before.ctime_nsec() || after.ctime() != before.ctime()
        ));
        std::thread::sleep(Duration::from_millis(20));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let c = fs::metadata(&f).unwrap();
        log.push(format!(
            "chmod: mtime same {} ctime moved {}",
            (c.mtime(), c.mtime_nsec()) == (after.mtime(), after.mtime_nsec()),
            (c.ctime(), c.ctime_nsec()) != (after.ctime(), after.ctime_nsec())
        ));
        // Creating an entry moves the directory's mtime.
        let d0 = fs::metadata(r).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fs::write(r.join("g"), b"").unwrap();
        let d1 = fs::metadata(r).unwrap();
        log.push(format!("dir mtime moved {}", (d1.mtime(), d1.mtime_nsec()) != (d0.mtime(), d0.mtime_nsec())));
    });
}

/// Under `-o writeback_cache` the kernel keeps mtime/ctime itself and sends explicit
/// times; a non-owner with write access must still be able to `touch` (UTIME_NOW) and to
/// write, and the times the HOST ends with must move as they do locally.
#[test]
fn writeback_cache_timestamps_for_a_non_owner_with_write_access() {
    let rig = Rig::start(Opts { mount_opts: vec!["writeback_cache".into()], ..Default::default() });
    for root in [&rig.local, &rig.mnt] {
        fs::create_dir(root.join("wb")).unwrap();
        fs::set_permissions(root.join("wb"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(root.join("wb/shared"), b"x").unwrap();
        fs::set_permissions(root.join("wb/shared"), fs::Permissions::from_mode(0o666)).unwrap();
        let old = fs::FileTimes::new()
            .set_accessed(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
        fs::File::options().write(true).open(root.join("wb/shared")).unwrap().set_times(old).unwrap();
    }
    let script = "touch shared && echo touched; t=$(stat -c %Y shared); [ \"$t\" -gt 1000000000 ] && echo mtime-moved;
        touch -d '2001-02-03 04:05:06' shared || echo explicit-refused;
        echo more >> shared && echo appended; echo done";
    let local = sh_as(1000, 1000, &[], &rig.local.join("wb"), script);
    let mount = sh_as(1000, 1000, &[], &rig.mnt.join("wb"), script);
    assert_eq!(local, mount, "as uid 1000, not the owner, with write access");
    assert!(local.contains("mtime-moved") && local.contains("explicit-refused"), "{local}");
    // What the HOST holds after the kernel flushed the cached times (on close).
    let h = fs::metadata(rig.h("wb/shared")).unwrap();
    assert!(h.mtime() > 1_000_000_000, "the HOST's mtime did not move: {}", h.mtime());
    assert_eq!(fs::read(rig.h("wb/shared")).unwrap(), b"xmore\n");
}

#[test]
fn xattrs_match_a_local_directory() {
    same_on_both("xattr", |r, log| {
        let f = cpath(&r.join("f"));
        fs::write(r.join("f"), b"x").unwrap();
        let set = |name: &str, v: &[u8], flags: i32| {
            let n = CString::new(name).unwrap();
            // SAFETY: valid C strings and a value buffer of the given length.
            let rc = unsafe { libc::setxattr(f.as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), flags) };
            if rc == 0 { "ok".to_string() } else { errno_name(std::io::Error::last_os_error().raw_os_error().unwrap()) }
        };
        let get = |name: &str, size: usize| {
            let n = CString::new(name).unwrap();
            let mut buf = vec![0u8; size];
            // SAFETY: buf has `size` bytes.
            let rc = unsafe { libc::getxattr(f.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) };
            if rc < 0 {
                errno_name(std::io::Error::last_os_error().raw_os_error().unwrap())
            } else if size == 0 {
                format!("size {rc}")
            } else {
                format!("{:?}", String::from_utf8_lossy(&buf[..rc as usize]))
            }
        };
        let list = |size: usize| {
            let mut buf = vec![0u8; size];
            // SAFETY: buf has `size` bytes.
            let rc = unsafe { libc::listxattr(f.as_ptr(), buf.as_mut_ptr().cast(), size) };
            if rc < 0 {
                errno_name(std::io::Error::last_os_error().raw_os_error().unwrap())
            } else if size == 0 {
                format!("size {rc}")
            } else {
                let mut names: Vec<_> = buf[..rc as usize]
                    .split(|&b| b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).to_string())
                    .collect();
                names.sort();
                names.join(",")
            }
        };
        log.push(set("user.a", b"1", 0));
        log.push(set("user.a", b"2", libc::XATTR_CREATE));
        log.push(set("user.b", b"2", libc::XATTR_REPLACE));
        log.push(set("user.b", &[7u8; 4000], 0));
        log.push(get("user.a", 100));
        log.push(get("user.a", 0));
        log.push(get("user.b", 10));
        log.push(get("user.b", 0));
        log.push(get("user.missing", 10));
        log.push(list(0));
        log.push(list(1000));
        log.push(list(3));
        let n = CString::new("user.a").unwrap();
        // SAFETY: valid C strings.
        log.push(format!("{}", unsafe { libc::removexattr(f.as_ptr(), n.as_ptr()) }));
        // SAFETY: as above.
        log.push(format!("{}", unsafe { libc::removexattr(f.as_ptr(), n.as_ptr()) }));
        log.push(list(1000));
    });
}

#[test]
fn sparse_file_beyond_4_gib() {
    let rig = same_on_both("sparse", |r, log| {
        let p = r.join("big");
        let mut f = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        let off = 5u64 << 30;
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(b"end").unwrap();
        f.sync_all().unwrap();
        log.push(format!("size {}", f.metadata().unwrap().len()));
        let mut buf = [1u8; 4096];
        f.seek(SeekFrom::Start((4u64 << 30) + 12345)).unwrap();
        f.read_exact(&mut buf).unwrap();
        log.push(format!("hole reads zeros {}", buf.iter().all(|&b| b == 0)));
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut tail = String::new();
        f.read_to_string(&mut tail).unwrap();
        log.push(tail);
        use std::os::fd::AsRawFd;
        // SAFETY: lseek on our open descriptor.
        let data = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_DATA) };
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_HOLE) };
        log.push(format!("first data {} (past 4 GiB: {}), first hole {hole}", data, data as u64 >= 4 << 30));
        f.set_len((4u64 << 30) + 1).unwrap();
        log.push(format!("size {}", fs::metadata(&p).unwrap().len()));
        log.push(format!("allocated little {}", fs::metadata(&p).unwrap().blocks() < 1024));
    });
    // On the HOST the file is sparse too.
    let m = fs::metadata(rig.h("sparse/big")).unwrap();
    assert_eq!(m.len(), (4u64 << 30) + 1);
    assert!(m.blocks() < 1024, "HOST file must stay sparse: {} blocks", m.blocks());
}

#[test]
fn directory_with_10000_entries() {
    let rig = Rig::start(Opts::default());
    let dir = rig.h("big");
    fs::create_dir(&dir).unwrap();
    // Most entries made on the HOST (fast), some through the mount.
    for i in 0..9_000 {
        fs::File::create(dir.join(format!("host-{i:05}"))).unwrap();
    }
    for i in 0..1_000 {
        fs::File::create(rig.m(&format!("big/mnt-{i:05}"))).unwrap();
    }
    let mut via_mount: Vec<String> =
        fs::read_dir(rig.m("big")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    via_mount.sort();
    let mut on_host: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    on_host.sort();
    assert_eq!(via_mount.len(), 10_000);
    assert_eq!(via_mount, on_host);
    // `ls -la` style: every entry with attributes, plus `.` and `..`.
    let out = std::process::Command::new("ls").arg("-la").arg(rig.m("big")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(text.lines().count(), 10_000 + 3, "total line, ., .. and 10,000 entries");
    // Remove them through the mount.
    for n in &via_mount {
        fs::remove_file(rig.m("big").join(n)).unwrap();
    }
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    fs::remove_dir(rig.m("big")).unwrap();
    assert!(!dir.exists());
}

/// An open file keeps its identity when its name goes away on the HOST: fstat answers
/// for the open file (nlink 0 after an unlink, its own size after a rename and a new file
/// at the old name), ftruncate and writes still work — as they would locally.
#[test]
fn open_file_keeps_its_attributes_after_a_host_unlink_or_rename() {
    // Timeouts of 0 so that fstat really asks the engine each time.
    let rig = Rig::start(Opts { mount_opts: vec!["attr_timeout=0,entry_timeout=0".into()], ..Default::default() });
    fs::write(rig.h("gone"), b"0123456789").unwrap();
    let mut f = fs::OpenOptions::new().read(true).write(true).open(rig.m("gone")).unwrap();
    fs::remove_file(rig.h("gone")).unwrap();
    let m = f.metadata().expect("fstat of an open file whose name the HOST removed");
    assert_eq!((m.len(), m.nlink()), (10, 0));
    f.set_len(4).expect("ftruncate of the unlinked open file");
    f.write_all(b"ab").unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4);
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "ab23");

    // Renamed away on the HOST and replaced by another file under the old name.
    fs::write(rig.h("moved"), b"twelve bytes").unwrap();
    let g = fs::File::open(rig.m("moved")).unwrap();
    let ino = g.metadata().unwrap().ino();
    fs::rename(rig.h("moved"), rig.h("elsewhere")).unwrap();
    fs::write(rig.h("moved"), b"x").unwrap();
    let m = g.metadata().unwrap();
    assert_eq!((m.ino(), m.len(), m.nlink()), (ino, 12, 1), "fstat must describe the open file, not the new name");
    assert_eq!(fs::metadata(rig.m("moved")).unwrap().len(), 1, "the name now leads to the new file");
}

#[test]
fn host_changes_are_seen_within_the_attribute_timeout() {
    let rig = Rig::start(Opts { mount_opts: vec!["attr_timeout=0.5,entry_timeout=0.5".into()], ..Default::default() });
    fs::write(rig.h("f"), b"version one").unwrap();
    let mut f = fs::File::open(rig.m("f")).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "version one");
    drop(f);
    // Changed on the HOST (same size, new mtime), then a new name appears.
    std::thread::sleep(Duration::from_millis(20));
    fs::write(rig.h("f"), b"version TWO").unwrap();
    fs::write(rig.h("new"), b"n").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(fs::read_to_string(rig.m("f")).unwrap(), "version TWO", "stale page cache after the timeout");
    assert_eq!(fs::read_to_string(rig.m("new")).unwrap(), "n");
    fs::remove_file(rig.h("new")).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(fs::metadata(rig.m("new")).is_err(), "a name removed on the HOST must vanish");
    // Data written through the mount is on the HOST when write(2) returns.
    let mut w = fs::OpenOptions::new().write(true).open(rig.m("f")).unwrap();
    w.write_all(b"VERSION").unwrap();
    assert_eq!(fs::read_to_string(rig.h("f")).unwrap(), "VERSION TWO");
}

#[test]
fn statfs_fallocate_and_seek_data() {
    let rig = same_on_both("alloc", |r, log| {
        let f = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(r.join("f")).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: fallocate on our descriptor.
        let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 1 << 20) };
        log.push(format!("fallocate {rc} size {}", f.metadata().unwrap().len()));
        // SAFETY: as above.
        let rc = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20) };
        log.push(format!("keep_size {rc} size {}", f.metadata().unwrap().len()));
        // SAFETY: as above.
        let rc =
            unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, 4096) };
        log.push(format!("punch {rc}"));
        // SAFETY: lseek on our descriptor.
        log.push(format!("seek_hole {}", unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_HOLE) }));
    });
    let a = nix_statvfs(&rig.mnt);
    let b = nix_statvfs(&rig.export);
    assert_eq!((a.0, a.1), (b.0, b.1), "block size and total blocks as on the HOST");
}

fn nix_statvfs(p: &Path) -> (u64, u64) {
    let c = cpath(p);
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    (s.f_bsize as u64, s.f_blocks as u64)
}
