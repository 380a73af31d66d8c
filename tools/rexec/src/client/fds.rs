//! Inherited descriptors: what each descriptor above 2 becomes on the HOST (a relayed
//! stream, a file reopened by path on a qtfs mount, a shared device, a relayed
//! listener, or left out) and the one warning line about those left out.

use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use qtfs_proto::consts::{open as wire_open, rexec as k};

use crate::error::{Error, Result};
use crate::sys;

/// One inherited descriptor above 2 and what it becomes.
#[derive(Debug)]
pub struct Inherited {
    pub fd: RawFd,
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub path: Vec<u8>,
    /// The HOST can reopen it whatever the route: not a DPU-local regular file.
    pub host_visible: bool,
}

/// Whether a mount (file system type and source, as in /proc/self/mountinfo) is qtfs:
/// the kernel module's `qtfs`, or qtfs-fuse (subtype `qtfs`, source `qtfs:REMOTE`).
pub fn is_qtfs(fstype: &str, source: &str) -> bool {
    matches!(fstype, "qtfs" | "fuse.qtfs" | "fuse.qtfs-fuse")
        || (fstype.starts_with("fuse") && source.starts_with("qtfs:"))
}

/// The file system type and source of the mount whose device is `major:minor`, from the
/// text of a mountinfo file.
pub fn mount_of_dev(mountinfo: &str, major: u32, minor: u32) -> Option<(String, String)> {
    let want = format!("{major}:{minor}");
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.get(2) != Some(&want.as_str()) {
            continue;
        }
        // Optional fields end with a lone "-"; then type and source.
        let sep = f.iter().skip(6).position(|x| *x == "-")? + 6;
        return Some((f.get(sep + 1)?.to_string(), f.get(sep + 2).unwrap_or(&"").to_string()));
    }
    None
}

/// Whether a file on device `dev` lies on a qtfs mount (so the HOST sees it by path).
fn on_qtfs(dev: libc::dev_t) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    mount_of_dev(&info, libc::major(dev), libc::minor(dev)).is_some_and(|(t, s)| is_qtfs(&t, &s))
}

/// Classifies an inherited descriptor (see the module comment of the crate).
pub fn classify(fd: RawFd) -> Result<Inherited> {
    let st = sys::fstat(fd).map_err(|e| Error::io(format!("fstat fd {fd}"), e))?;
    let fl = sys::get_fl(fd).map_err(|e| Error::io(format!("fcntl fd {fd}"), e))?;
    let unsupported = |kind: &str, detail: String| Error::UnsupportedFd { fd, kind: kind.into(), detail };
    let fd_path = || sys::fd_path(fd).map(|p| p.display().to_string()).unwrap_or_default();
    let plain = |kind: u32, flags: u32| Inherited { fd, kind, flags, offset: 0, path: vec![], host_visible: true };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            let p = sys::fd_path(fd).map_err(|e| Error::io(format!("readlink /proc/self/fd/{fd}"), e))?;
            let b = p.as_os_str().as_bytes().to_vec();
            if b.ends_with(b" (deleted)") || b.first() != Some(&b'/') {
                return Err(unsupported("a deleted or unnamed file", p.display().to_string()));
            }
            let offset = sys::tell(fd).map_err(|e| Error::io(format!("lseek fd {fd}"), e))?;
            let host_visible = on_qtfs(st.st_dev);
            Ok(Inherited { fd, kind: k::FD_FILE, flags: wire_open::from_linux(fl), offset, path: b, host_visible })
        }
        libc::S_IFIFO => match fl & libc::O_ACCMODE {
            libc::O_RDONLY => Ok(plain(k::FD_PIPE_IN, 0)),
            libc::O_WRONLY => Ok(plain(k::FD_PIPE_OUT, 0)),
            _ => Err(unsupported("a FIFO opened for reading and writing", fd_path())),
        },
        libc::S_IFSOCK => {
            let listening = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).unwrap_or(0) == 1;
            let domain = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(-1);
            let ty = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(-1);
            if listening && domain == libc::AF_UNIX && ty == libc::SOCK_STREAM {
                Ok(plain(k::FD_LISTENER, ty as u32))
            } else if listening && domain == libc::AF_UNIX {
                Err(unsupported("a listening unix socket that is not SOCK_STREAM", String::new()))
            } else if listening {
                Err(unsupported("a listening socket that is not a unix socket", String::new()))
            } else {
                Err(unsupported("a connected or unbound socket", String::new()))
            }
        }
        libc::S_IFDIR => Err(unsupported("a directory", fd_path())),
        libc::S_IFCHR => match crate::shared_device(st.st_rdev) {
            // Reopened on the HOST by its canonical name, with the same access mode.
            Some(dev) => {
                let flags = wire_open::from_linux(fl & (libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK));
                Ok(Inherited { path: dev.as_bytes().to_vec(), ..plain(k::FD_FILE, flags) })
            }
            None => Err(unsupported("a character device", fd_path())),
        },
        libc::S_IFBLK => Err(unsupported("a block device", fd_path())),
        _ => Err(unsupported("an anonymous kernel object", fd_path())),
    }
}

/// The one warning line about descriptors left out.
pub fn not_passed_line(left_out: &[Error]) -> String {
    let items: Vec<String> = left_out
        .iter()
        .map(|e| match e {
            Error::UnsupportedFd { fd, kind, detail } if detail.is_empty() => format!("fd {fd} ({kind})"),
            Error::UnsupportedFd { fd, kind, detail } => format!("fd {fd} ({kind} {detail})"),
            other => other.to_string(),
        })
        .collect();
    format!("not passed to the remote process: {}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qtfs_mounts_are_found_by_device_number() {
        let info = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 0:41 / /run rw,nosuid - tmpfs tmpfs rw,mode=755
41 22 0:52 / /home/VMs rw,relatime shared:7 master:3 - qtfs /home/VMs rw
42 22 0:53 / /mnt/f rw,nosuid,nodev - fuse.qtfs qtfs:/var/lib/libvirt rw,user_id=0
43 22 0:54 / /mnt/g rw - fuse qtfs:/srv rw
44 22 0:55 / /mnt/h rw - fuse.sshfs host:/srv rw
";
        let qt = |ma, mi| mount_of_dev(info, ma, mi).is_some_and(|(t, s)| is_qtfs(&t, &s));
        assert_eq!(mount_of_dev(info, 0, 40), None);
        assert_eq!(mount_of_dev(info, 0, 41), Some(("tmpfs".into(), "tmpfs".into())));
        assert!(!qt(0, 21) && !qt(0, 41) && !qt(0, 55));
        assert!(qt(0, 52), "kernel module, with optional fields");
        assert!(qt(0, 53) && qt(0, 54), "qtfs-fuse");
        assert!(!qt(0, 99));
    }
}
