//! IOCTL: the few commands a client may run on a handle (terminal settings and window
//! size, file flags and fsxattr); anything else is refused unexecuted (ENOTTY).
//!
//! It runs as the handle's opener; the setters of attributes (chattr) check `[Setattr]`
//! on the handle's real path, as SETATTR does.
//!
//! This module owns IOCTL and the translation of its records.

use qtfs_proto::consts::{WlType, errno, ioc};
use qtfs_proto::wire::Fixed;
use qtfs_proto::*;

use super::common::Req;
use super::gates::wl_handle;
use super::state::Ctx;
use crate::creds;
use crate::session::OpenFile;
use crate::sys;

/// IOCTL.
pub(super) fn ioctl(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<IoctlReq>(core) else { return };
    let r = match rq.session.file(m.handle) {
        // The setters change attributes (chattr): [Setattr], as SETATTR.
        Some(f) if matches!(m.cmd, ioc::FS_SETFLAGS | ioc::FS_FSSETXATTR) => {
            wl_handle(core, &rq.session, &f, WlType::Setattr).and_then(|_| ioctl_as_opener(&f, m.cmd, m.arg.0))
        }
        Some(f) => ioctl_as_opener(&f, m.cmd, m.arg.0),
        None => Err(errno::EBADF),
    };
    match r {
        Ok(out) => rq.reply(core, Ok(Data { data: Rest(&out) })),
        Err(e) => rq.reply_err(core, e),
    }
}

/// IOCTL carries no identity on the wire, so it runs with the identity the handle was
/// opened with (mapped by its export's policy), as a local process's ioctl on its own
/// descriptor would: the permission checks of the setters (owner or CAP_FOWNER,
/// CAP_LINUX_IMMUTABLE) then see the caller, not whichever identity the worker thread
/// last held (HOST root after any root request).
fn ioctl_as_opener(f: &OpenFile, cmd: u32, arg: &[u8]) -> Result<Vec<u8>, i32> {
    creds::with_ident(&f.ident, || do_ioctl(f, cmd, arg)).map_err(|e| sys::errno_of(&e))?
}

fn do_ioctl(f: &OpenFile, cmd: u32, arg: &[u8]) -> Result<Vec<u8>, i32> {
    let fd = f.raw();
    let need = |n: usize| if arg.len() == n { Ok(()) } else { Err(errno::EINVAL) };
    let err = |e: std::io::Error| sys::errno_of(&e);
    let put = |rec: &dyn Fn(&mut [u8]), size: usize| {
        let mut out = vec![0u8; size];
        rec(&mut out);
        out
    };
    match cmd {
        ioc::TCGETS => {
            let t = sys::tcgets(fd).map_err(err)?;
            let mut cc = [0u8; 19];
            cc.copy_from_slice(&t.c_cc[..19]);
            let p = Termios {
                iflag: t.c_iflag,
                oflag: t.c_oflag,
                cflag: t.c_cflag,
                lflag: t.c_lflag,
                ispeed: t.c_ispeed,
                ospeed: t.c_ospeed,
                line: t.c_line,
                cc,
            };
            Ok(put(&|b| p.put(b), Termios::DESC.size))
        }
        ioc::TCSETS | ioc::TCSETSW | ioc::TCSETSF => {
            need(Termios::DESC.size)?;
            let p = Termios::get(arg);
            let mut t = sys::tcgets(fd).map_err(err)?;
            t.c_iflag = p.iflag;
            t.c_oflag = p.oflag;
            t.c_cflag = p.cflag;
            t.c_lflag = p.lflag;
            t.c_line = p.line;
            t.c_cc[..19].copy_from_slice(&p.cc);
            t.c_ispeed = p.ispeed;
            t.c_ospeed = p.ospeed;
            let when = match cmd {
                ioc::TCSETS => sys::TcsetWhen::Now,
                ioc::TCSETSW => sys::TcsetWhen::Drain,
                _ => sys::TcsetWhen::Flush,
            };
            sys::tcsets(fd, when, &t).map_err(err)?;
            Ok(Vec::new())
        }
        ioc::TIOCGWINSZ => {
            let w = sys::get_winsize(fd).map_err(err)?;
            let p = Winsize { rows: w.ws_row, cols: w.ws_col, xpixel: w.ws_xpixel, ypixel: w.ws_ypixel };
            Ok(put(&|b| p.put(b), Winsize::DESC.size))
        }
        ioc::TIOCSWINSZ => {
            need(Winsize::DESC.size)?;
            let p = Winsize::get(arg);
            let w = libc::winsize { ws_row: p.rows, ws_col: p.cols, ws_xpixel: p.xpixel, ws_ypixel: p.ypixel };
            sys::set_winsize(fd, &w).map_err(err)?;
            Ok(Vec::new())
        }
        ioc::FS_GETFLAGS => Ok(sys::fs_getflags(fd).map_err(err)?.to_le_bytes().to_vec()),
        ioc::FS_SETFLAGS => {
            need(4)?;
            let b = arg.first_chunk::<4>().ok_or(errno::EINVAL)?;
            sys::fs_setflags(fd, u32::from_le_bytes(*b)).map_err(err)?;
            Ok(Vec::new())
        }
        ioc::FS_FSGETXATTR => {
            let x = sys::fs_getxattr(fd).map_err(err)?;
            let p = Fsxattr { xflags: x[0], extsize: x[1], nextents: x[2], projid: x[3], cowextsize: x[4] };
            Ok(put(&|b| p.put(b), Fsxattr::DESC.size))
        }
        ioc::FS_FSSETXATTR => {
            need(Fsxattr::DESC.size)?;
            let p = Fsxattr::get(arg);
            sys::fs_setxattr(fd, [p.xflags, p.extsize, p.nextents, p.projid, p.cowextsize, 0, 0]).map_err(err)?;
            Ok(Vec::new())
        }
        // Anything else is refused without being executed.
        _ => Err(errno::ENOTTY),
    }
}
