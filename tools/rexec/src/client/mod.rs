//! rexec, the DPU side: classifies the inherited descriptors, sends REXEC_EXEC, then runs
//! one single-threaded poll loop relaying stdio, pipes and listener connections with
//! backpressure, forwarding signals, answering the REXEC_HANDSHAKE protocol, and
//! reattaching after a transport drop, until REXEC_EXIT gives the status to exit with.
//!
//! Here: exit statuses, connecting to rexec_server, `run` and the [`Client`] state that the
//! submodules work on. Apart: the command line (`args`), inherited descriptors (`fds`),
//! the start and poll loop (`session`) and the event handlers, daemonizing and
//! reattaching (`events`).

use std::io::{self, Read, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qtfs_proto::{FrameHeader, HEADER_SIZE, MAX_PAYLOAD, RexecExit};

use crate::pidfile::PidFile;
use crate::relay::Relay;
use crate::sys;

mod args;
mod events;
mod fds;
mod session;

pub use args::{Options, parse_args};
pub use fds::{Inherited, classify, is_qtfs, mount_of_dev, not_passed_line};

/// Exit status for local failures (as the original).
pub const EXIT_LOCAL: i32 = 255;
/// Exit status when an inherited descriptor cannot be passed, or argv is too long.
pub const EXIT_CANNOT: i32 = 126;

/// Signals forwarded to the remote process.
pub const FORWARDED: [i32; 7] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

/// How long `--daemonize-on-socket` waits for its socket (env REXEC_DAEMONIZE_TIMEOUT).
pub const DAEMONIZE_TIMEOUT: Duration = Duration::from_secs(60);

/// How rexec reached rexec_server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The socket is local: rexec_server runs on this machine and sees its files.
    Direct,
    /// A channel of the local udsproxyd to the HOST socket at the same path: the HOST
    /// sees only what lies on qtfs mounts.
    Proxied,
}

/// Connects to rexec_server's socket at `path` (see [`connect_server_route`]).
pub fn connect_server(path: &Path) -> io::Result<UnixStream> {
    connect_server_route(path).map(|(s, _)| s)
}

/// Connects to rexec_server's socket at `path` and says how: directly when the socket
/// is local; else (ENOENT, ECONNREFUSED) through the local udsproxyd, whose channel
/// reaches the HOST socket at the same path.
pub fn connect_server_route(path: &Path) -> io::Result<(UnixStream, Route)> {
    use qtfs_udsproxyd::request::{self, Outcome};
    let r = match sys::unix_connect_direct(path) {
        Ok(s) => Ok((UnixStream::from(s), Route::Direct)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ECONNREFUSED)) => {
            match request::connect(
                &request::request_socket(),
                qtfs_udsproxyd::wire::KIND_STREAM,
                path,
                Duration::from_secs(10),
            ) {
                Ok(Outcome::Connected(fd)) => Ok((UnixStream::from(fd), Route::Proxied)),
                Ok(Outcome::Refused(errno)) => Err(io::Error::from_raw_os_error(errno)),
                Ok(Outcome::NotProxied) | Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    r.map_err(|e| {
        let hint = if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
            "only root may use it, unless rexec_server runs with --allow-group GROUP and this user is in GROUP"
        } else {
            "is rexec_server running here, or udsproxyd with this path in its udsconnect whitelist?"
        };
        io::Error::new(
            e.kind(),
            format!("cannot reach rexec_server at {}: {} ({hint})", path.display(), sys::errstr(&e)),
        )
    })
}

/// `--pidfile`: our pid and a newline; removed when dropped if it still names us.
#[derive(Debug)]
struct UserPidFile {
    path: PathBuf,
    pid: u32,
}

impl UserPidFile {
    fn write(path: &Path, pid: u32) -> io::Result<UserPidFile> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(path)?;
        // The mode asked for, whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        writeln!(f, "{pid}")?;
        Ok(UserPidFile { path: path.to_path_buf(), pid })
    }
}

impl Drop for UserPidFile {
    fn drop(&mut self) {
        // A later process may have written its own pid there since: leave that alone.
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == self.pid.to_string()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `--daemonize-on-socket`: waiting for the socket.
#[derive(Debug)]
struct DaemonWait {
    socket: PathBuf,
    since: Instant,
}

/// A plain stat (the path may be on a FUSE mount): a unix socket exists there.
fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Prints a user-facing error on stderr (never stdout).
fn say(msg: &str) {
    let _ = writeln!(io::stderr(), "rexec: {msg}");
}

fn env_fd(name: &str) -> Option<std::result::Result<RawFd, String>> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse::<RawFd>().map_err(|_| format!("{name}={v} is not a descriptor number")))
}

/// Runs rexec; returns the exit status. `inherited` = every open fd number at start.
pub fn run(opts: Options, inherited: &[RawFd]) -> i32 {
    match Client::start(opts, inherited) {
        Ok(c) => c.run(),
        Err((code, msg)) => {
            say(&msg);
            code
        }
    }
}

#[derive(Clone, Copy)]
enum Tok {
    Conn,
    Sig,
    Stream(u32, bool),
    Listener(RawFd),
    HandshakeRd,
}

struct Client {
    opts: Options,
    relay: Relay,
    conn: Option<UnixStream>,
    pid: i32,
    token: [u8; 16],
    sigfd: OwnedFd,
    listeners: Vec<RawFd>,
    next_conn: u32,
    handshake_rd: Option<RawFd>,
    exit: Option<RexecExit>,
    lost_at: Option<Instant>,
    last_try: Option<Instant>,
    server_window: u32,
    /// Set when the session cannot go on: the exit status to return.
    protocol_failed: Option<i32>,
    pidfile: Option<PidFile>,
    user_pidfile: Option<UserPidFile>,
    daemon: Option<DaemonWait>,
}

type StartResult<T> = std::result::Result<T, (i32, String)>;

/// Reads one response frame (blocking, bounded by `timeout_ms`).
fn read_response(conn: &mut UnixStream, timeout_ms: u64) -> io::Result<(FrameHeader, Vec<u8>)> {
    conn.set_read_timeout(Some(Duration::from_millis(timeout_ms)))?;
    let mut hb = [0u8; HEADER_SIZE];
    conn.read_exact(&mut hb)?;
    let h =
        FrameHeader::decode(&hb, MAX_PAYLOAD).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let mut p = vec![0u8; h.len as usize];
    conn.read_exact(&mut p)?;
    conn.set_read_timeout(None)?;
    Ok((h, p))
}
