//! Mounting and unmounting: as root a mount(2) of type `fuse` on an open `/dev/fuse`;
//! otherwise (mount(2) refused with EPERM) through `fusermount3`, which mounts and passes
//! the device back over the socket named in `_FUSE_COMMFD`.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// The source shown in the mount table.
    pub fsname: String,
    /// `fuse.<subtype>` where fusermount3 mounts.
    pub subtype: String,
    pub default_permissions: bool,
    pub allow_other: bool,
    pub read_only: bool,
    /// mount(8) flags: nosuid, suid, nodev, dev, noexec, exec, noatime, atime, sync,
    /// async, dirsync. Without `suid`/`dev`, nosuid and nodev hold.
    pub flags: Vec<String>,
}

impl MountOptions {
    fn has(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// The kernel's mount flags.
    fn ms_flags(&self) -> libc::c_ulong {
        let mut fl = 0;
        if !self.has("dev") {
            fl |= libc::MS_NODEV;
        }
        if !self.has("suid") {
            fl |= libc::MS_NOSUID;
        }
        if self.read_only {
            fl |= libc::MS_RDONLY;
        }
        for f in &self.flags {
            fl |= match f.as_str() {
                "nodev" => libc::MS_NODEV,
                "nosuid" => libc::MS_NOSUID,
                "noexec" => libc::MS_NOEXEC,
                "noatime" => libc::MS_NOATIME,
                "sync" => libc::MS_SYNCHRONOUS,
                "dirsync" => libc::MS_DIRSYNC,
                _ => 0,
            };
        }
        fl
    }

    /// Options for fusermount3 (`-o`).
    fn fusermount_opts(&self) -> String {
        let mut o = vec![format!("fsname={}", self.fsname), format!("subtype={}", self.subtype)];
        if self.default_permissions {
            o.push("default_permissions".into());
        }
        o.push(if self.read_only { "ro" } else { "rw" }.into());
        o.extend(self.flags.iter().cloned());
        if self.allow_other {
            o.push("allow_other".into());
        }
        o.join(",")
    }
}

/// A mounted FUSE file system.
#[derive(Debug)]
pub struct Mount {
    mountpoint: PathBuf,
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Mounts at `mountpoint`; returns the device and the mount.
pub fn mount(mountpoint: &Path, o: &MountOptions) -> io::Result<(OwnedFd, Mount)> {
    let mountpoint = mountpoint.canonicalize()?;
    let m = Mount { mountpoint: mountpoint.clone() };
    if let Some(fd) = mount_direct(&mountpoint, o)? {
        return Ok((fd, m));
    }
    Ok((mount_fusermount(&mountpoint, o)?, m))
}

/// mount(2); None where it is not permitted.
fn mount_direct(mp: &Path, o: &MountOptions) -> io::Result<Option<OwnedFd>> {
    let rootmode = std::fs::metadata(mp)?.permissions().mode();
    let dev = OwnedFd::from(std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse")?);
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!("fd={},rootmode={rootmode:o},user_id={uid},group_id={gid}", dev.as_raw_fd());
    if o.default_permissions {
        data.push_str(",default_permissions");
    }
    if o.allow_other {
        data.push_str(",allow_other");
    }
    let (src, target, data_c) = (
        CString::new(o.fsname.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        cpath(mp)?,
        CString::new(data.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
    );
    let (fstype, flags, data_p) = (c"fuse".as_ptr(), o.ms_flags(), data_c.as_ptr().cast());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let r = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype, flags, data_p) };
    if r == 0 {
        return Ok(Some(dev));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) {
        return Ok(None);
    }
    Err(io::Error::new(e.kind(), format!("mount({}) with {data:?}: {e}", mp.display())))
}

/// fusermount3 with `_FUSE_COMMFD`: it mounts and sends the device back.
fn mount_fusermount(mp: &Path, o: &MountOptions) -> io::Result<OwnedFd> {
    let (ours, theirs) = UnixStream::pair()?;
    let their_fd = theirs.as_raw_fd();
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-o").arg(o.fusermount_opts()).arg("--").arg(mp);
    cmd.env("_FUSE_COMMFD", their_fd.to_string()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the closure only calls fcntl (async-signal-safe) in the forked child.
    unsafe {
        cmd.pre_exec(move || {
            // The child keeps its end of the socket across exec.
            if libc::fcntl(their_fd, libc::F_SETFD, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    let mut buf = [MaybeUninit::<u8>::uninit(); 1];
    let got = loop {
        match qtfs_sys::recvmsg_fds(ours.as_raw_fd(), &mut buf, libc::MSG_CMSG_CLOEXEC, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    let out = child.wait_with_output()?;
    match got {
        Ok(mut r) if !r.fds.is_empty() => Ok(r.fds.swap_remove(0)),
        _ => Err(io::Error::other(format!("fusermount3 failed: {}", String::from_utf8_lossy(&out.stderr).trim()))),
    }
}

/// Is the connection of device `dev` still up? (The kernel reports POLLERR once it
/// was aborted or unmounted.)
pub fn connected(dev: &OwnedFd) -> bool {
    let mut p = libc::pollfd { fd: dev.as_raw_fd(), events: 0, revents: 0 };
    loop {
        // SAFETY: one pollfd that lives across the call.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return !(r == 1 && p.revents & libc::POLLERR != 0);
    }
}

impl Mount {
    /// Ends the connection even while the mount is busy (`MNT_FORCE` aborts a FUSE
    /// connection: requests waiting in the kernel fail at once), then unmounts, lazily if
    /// need be; without the right to, as [`umount`](Self::umount).
    pub fn abort(&self) -> io::Result<()> {
        let p = cpath(&self.mountpoint)?;
        // SAFETY: p is a NUL-terminated path.
        if unsafe { libc::umount2(p.as_ptr(), libc::MNT_FORCE) } == 0 {
            return Ok(());
        }
        // SAFETY: as above.
        if unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        self.umount()
    }

    /// umount(2); where that is not permitted, `fusermount3 -u -q -z`.
    pub fn umount(&self) -> io::Result<()> {
        let p = cpath(&self.mountpoint)?;
        // SAFETY: p is a NUL-terminated path.
        if unsafe { libc::umount2(p.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
        let out = Command::new("fusermount3").args(["-u", "-q", "-z", "--"]).arg(&self.mountpoint).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }
}
