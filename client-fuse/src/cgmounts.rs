//! The HOST's cgroup file systems in a DPU process's mount table (`-o proc`).
//!
//! libvirt (and anything else) finds cgroups by parsing `/proc/mounts`; through `-o proc`
//! that is the reader's own, local mount table, where the HOST's `/sys` is one
//! `fuse.qtfs` line. So for every line of a qtfs-fuse mount in it (type `fuse.qtfs`,
//! source `qtfs:EXPORT`), qtfs-fuse adds after it one line per HOST cgroup file system
//! mounted at `EXPORT` or beneath it, as the HOST's mount table says (the engine's
//! `/proc/self/mountinfo`, read through this mount's own engine), with the mount point
//! moved to where the qtfs-fuse mount shows it: HOST `/sys/fs/cgroup/cpu` (`cgroup`,
//! `rw,…,cpu`) under a mount of HOST `/sys` at `/sys` is shown as
//! `cgroup /sys/fs/cgroup/cpu cgroup rw,…,cpu 0 0`, with its HOST type (`cgroup`,
//! `cgroup2`) and options (the v1 controllers). Named v1 hierarchies (`name=systemd`)
//! are left out: they hold no controller, and a program would look for its own
//! placement in them. The qtfs-fuse line itself is kept.
//!
//! How a mount tells what it is: its source `qtfs:EXPORT` (qtfs-fuse's fsname) names the
//! HOST directory; the HOST is taken to be this mount's (a DPU's qtfs mounts all talk to
//! its one HOST: `dpu-start.sh --host`). Only the mount table is changed: the added
//! mount points are directories of the qtfs-fuse mount, so `statfs(2)` there still says
//! FUSE, and `umount` of them fails. Who sees the added lines: every reader of a local
//! process's `mounts`/`mountinfo` through the `-o proc` mount (`/proc/mounts`,
//! `/proc/self/mountinfo`: libvirt, `findmnt`, `mount`, `df` in libvirt's root), never the
//! DPU's own `/proc`.
//!
//! Owns the mount-table rewrite (`rewrite_mounts`) and the in-memory file that serves it.

use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A HOST cgroup mount from its mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostCgroup<'a> {
    devno: &'a [u8],
    root: &'a [u8],
    mp: &'a [u8],
    mnt_opts: &'a [u8],
    fstype: &'a [u8],
    source: &'a [u8],
    super_opts: &'a [u8],
}

/// The cgroup file systems of a mountinfo text (named v1 hierarchies left out).
fn host_cgroups(mountinfo: &[u8]) -> Vec<HostCgroup<'_>> {
    let mut out = Vec::new();
    for line in mountinfo.split(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(dash) = f.iter().position(|x| *x == b"-") else { continue };
        if dash < 6 || f.len() < dash + 4 {
            continue;
        }
        let (fstype, super_opts) = (f[dash + 1], f[dash + 3]);
        let named = super_opts.split(|&b| b == b',').any(|o| o.starts_with(b"name="));
        if !(fstype == b"cgroup2" || (fstype == b"cgroup" && !named)) {
            continue;
        }
        out.push(HostCgroup {
            devno: f[2],
            root: f[3],
            mp: f[4],
            mnt_opts: f[5],
            fstype,
            source: f[dash + 2],
            super_opts,
        });
    }
    out
}

/// `mp` (a HOST mount point) seen under a qtfs-fuse mount of HOST `export` at local
/// `local`, if it is at or beneath `export`. All three are as the kernel escapes them.
fn moved(mp: &[u8], export: &[u8], local: &[u8]) -> Option<Vec<u8>> {
    let export = if export.len() > 1 { export.strip_suffix(b"/").unwrap_or(export) } else { export };
    let rest = if export == b"/" {
        if mp == b"/" { &b""[..] } else { mp }
    } else if mp == export {
        &b""[..]
    } else if mp.starts_with(export) && mp.get(export.len()) == Some(&b'/') {
        &mp[export.len()..]
    } else {
        return None;
    };
    let mut p = if local == b"/" && !rest.is_empty() { Vec::new() } else { local.to_vec() };
    p.extend_from_slice(rest);
    Some(p)
}

/// The export of a local mount line's (type, source) if it is a qtfs-fuse mount.
fn qtfs_export<'a>(fstype: &[u8], source: &'a [u8]) -> Option<&'a [u8]> {
    let export = source.strip_prefix(b"qtfs:")?;
    (fstype == b"fuse.qtfs" || fstype.starts_with(b"fuse")).then_some(export).filter(|e| e.starts_with(b"/"))
}

/// Does a local mounts/mountinfo text hold a qtfs-fuse mount (so the HOST's table is
/// worth reading)?
pub fn has_qtfs_mount(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|l| l.starts_with(b"qtfs:") || l.windows(6).any(|w| w == b" qtfs:"))
}

/// The `/proc/<pid>/mounts` options of a mount: the mount's, then the super block's
/// without its leading `rw`/`ro` (as the kernel prints them).
fn mounts_opts(c: &HostCgroup<'_>) -> Vec<u8> {
    let mut o = c.mnt_opts.to_vec();
    for s in c.super_opts.split(|&b| b == b',') {
        if s != b"rw" && s != b"ro" && !s.is_empty() {
            o.push(b',');
            o.extend_from_slice(s);
        }
    }
    o
}

/// `local` (a `/proc/<pid>/mounts` text, or `mountinfo` when `info`) with the HOST's
/// cgroup mounts added after each qtfs-fuse mount that shows them (module comment).
pub fn rewrite_mounts(local: &[u8], host_mountinfo: &[u8], info: bool) -> Vec<u8> {
    let host = host_cgroups(host_mountinfo);
    let mut next_id = if info {
        local
            .split(|&b| b == b'\n')
            .filter_map(|l| {
                l.split(|&b| b == b' ').next().and_then(|id| std::str::from_utf8(id).ok()?.parse::<u32>().ok())
            })
            .max()
            .unwrap_or(0)
            + 1
    } else {
        0
    };
    let mut out = Vec::with_capacity(local.len() + 256);
    for line in local.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line);
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let f: Vec<&[u8]> = body.split(|&b| b == b' ').collect();
        let (id, mp, fstype, source) = if info {
            let Some(dash) = f.iter().position(|x| *x == b"-") else { continue };
            if dash < 6 || f.len() < dash + 3 {
                continue;
            }
            (f[0], f[4], f[dash + 1], f[dash + 2])
        } else {
            if f.len() < 4 {
                continue;
            }
            (&b""[..], f[1], f[2], f[0])
        };
        let Some(export) = qtfs_export(fstype, source) else { continue };
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
        for c in &host {
            let Some(at) = moved(c.mp, export, mp) else { continue };
            if info {
                let l = [
                    next_id.to_string().as_bytes(),
                    id,
                    c.devno,
                    c.root,
                    &at,
                    c.mnt_opts,
                    b"-",
                    c.fstype,
                    c.source,
                    c.super_opts,
                ]
                .join(&b' ');
                next_id += 1;
                out.extend_from_slice(&l);
            } else {
                let l = [c.source, &at[..], c.fstype, &mounts_opts(c), b"0", b"0"].join(&b' ');
                out.extend_from_slice(&l);
            }
            out.push(b'\n');
        }
    }
    out
}

/// Is `path` (a local procfs path) a process's `mounts` or `mountinfo`? (true for the
/// latter).
pub fn mount_table(path: &Path) -> Option<bool> {
    match path.file_name()?.as_bytes() {
        b"mounts" => Some(false),
        b"mountinfo" => Some(true),
        _ => None,
    }
}

/// A read-only in-memory file holding `data` (served like a local file).
pub fn memfile(data: &[u8]) -> io::Result<File> {
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is ours.
    let fd = unsafe { libc::memfd_create(c"qtfs-mounts".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    let f = unsafe { File::from_raw_fd(fd) };
    std::os::unix::fs::FileExt::write_all_at(&f, data, 0)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:25 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
28 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
29 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn mounts_gain_the_host_cgroups_under_a_qtfs_mount_of_sys() {
        let local = b"proc /proc proc rw 0 0\nqtfs:/sys /sys fuse.qtfs rw,relatime,user_id=0 0 0\nqtfs:/home/VMs /home/VMs fuse.qtfs rw 0 0\n";
        let out = String::from_utf8(rewrite_mounts(local, HOST.as_bytes(), false)).unwrap();
        let want = "proc /proc proc rw 0 0\nqtfs:/sys /sys fuse.qtfs rw,relatime,user_id=0 0 0\n\
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n\
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0\n\
qtfs:/home/VMs /home/VMs fuse.qtfs rw 0 0\n";
        assert_eq!(out, want);
        // Nothing to add without a qtfs mount, or for one of a directory without cgroups.
        let plain = b"proc /proc proc rw 0 0\n";
        assert_eq!(rewrite_mounts(plain, HOST.as_bytes(), false), plain);
        assert!(!has_qtfs_mount(plain) && has_qtfs_mount(local));
    }

    #[test]
    fn a_mount_of_the_cgroup_root_itself_and_mountinfo() {
        // HOST /sys/fs/cgroup/unified mounted at /cg: a cgroup2 line at /cg itself.
        let local = b"30 20 0:50 / /cg rw,relatime - fuse.qtfs qtfs:/sys/fs/cgroup/unified rw,user_id=0\n";
        let out = String::from_utf8(rewrite_mounts(local, HOST.as_bytes(), true)).unwrap();
        assert_eq!(
            out,
            "30 20 0:50 / /cg rw,relatime - fuse.qtfs qtfs:/sys/fs/cgroup/unified rw,user_id=0\n\
31 30 0:26 / /cg rw,relatime - cgroup2 cgroup2 rw\n"
        );
        assert_eq!(moved(b"/sys/fs/cgroupX", b"/sys/fs/cgroup", b"/m"), None);
        assert_eq!(moved(b"/sys/fs/cgroup/cpu", b"/", b"/host"), Some(b"/host/sys/fs/cgroup/cpu".to_vec()));
        assert_eq!(moved(b"/sys/fs/cgroup/cpu", b"/sys/", b"/"), Some(b"/fs/cgroup/cpu".to_vec()));
    }
}
