//! ioctls, each paired with the type it expects: terminal attributes and window size,
//! and the file flags (`FS_IOC_GETFLAGS`…) and `struct fsxattr`.

use std::io;
use std::os::fd::RawFd;

use super::check_i;

/// `ioctl(2)` with a pointer to `T`; private so that every caller below pairs a command
/// with the type it expects.
fn ioctl_with<T>(fd: RawFd, cmd: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: arg is a live, exclusively borrowed T; each public wrapper passes the T its
    // command is defined for.
    check_i(unsafe { libc::ioctl(fd, cmd as _, (arg as *mut T).cast::<libc::c_void>()) }).map(|_| ())
}

/// `TCGETS2`: the terminal settings (kernel `termios2`).
pub fn tcgets(fd: RawFd) -> io::Result<libc::termios2> {
    // SAFETY: termios2 is plain data.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    ioctl_with(fd, libc::TCGETS2 as _, &mut t)?;
    Ok(t)
}

/// When new terminal settings apply.
#[derive(Debug, Clone, Copy)]
pub enum TcsetWhen {
    Now,
    Drain,
    Flush,
}

/// `TCSETS2`/`TCSETSW2`/`TCSETSF2`.
pub fn tcsets(fd: RawFd, when: TcsetWhen, t: &libc::termios2) -> io::Result<()> {
    let cmd = match when {
        TcsetWhen::Now => libc::TCSETS2,
        TcsetWhen::Drain => libc::TCSETSW2,
        TcsetWhen::Flush => libc::TCSETSF2,
    };
    let mut t = *t;
    ioctl_with(fd, cmd as _, &mut t)
}

pub fn get_winsize(fd: RawFd) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain data.
    let mut w: libc::winsize = unsafe { std::mem::zeroed() };
    ioctl_with(fd, libc::TIOCGWINSZ as _, &mut w)?;
    Ok(w)
}

pub fn set_winsize(fd: RawFd, w: &libc::winsize) -> io::Result<()> {
    let mut w = *w;
    ioctl_with(fd, libc::TIOCSWINSZ as _, &mut w)
}

// _IOR('f', 1, long), _IOW('f', 2, long) (the kernel reads an int), and
// _IOR/_IOW('X', 31/32, struct fsxattr) (28 bytes).
const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;

pub fn fs_getflags(fd: RawFd) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    ioctl_with(fd, FS_IOC_GETFLAGS, &mut v)?;
    Ok(v as u32)
}

pub fn fs_setflags(fd: RawFd, flags: u32) -> io::Result<()> {
    let mut v = flags as libc::c_int;
    ioctl_with(fd, FS_IOC_SETFLAGS, &mut v)
}

/// `struct fsxattr` as seven u32 (xflags, extsize, nextents, projid, cowextsize, pad).
pub fn fs_getxattr(fd: RawFd) -> io::Result<[u32; 7]> {
    let mut x = [0u32; 7];
    ioctl_with(fd, FS_IOC_FSGETXATTR, &mut x)?;
    Ok(x)
}

pub fn fs_setxattr(fd: RawFd, x: [u32; 7]) -> io::Result<()> {
    let mut x = x;
    ioctl_with(fd, FS_IOC_FSSETXATTR, &mut x)
}
