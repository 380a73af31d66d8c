//! rexec, the DPU side: classifies the inherited descriptors, sends REXEC_EXEC, then runs
//! one single-threaded poll loop relaying stdio, pipes and listener connections with
//! backpressure, forwarding signals, answering the REXEC_HANDSHAKE protocol, and
//! reattaching after a transport drop, until REXEC_EXIT gives the status to exit with.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qtfs_proto::consts::{open as wire_open, rexec as k};
use qtfs_proto::{
    Bytes32, FrameHeader, HEADER_SIZE, MAX_PAYLOAD, Op, Path as WPath, Rest, RexecAttachReq, RexecAttached, RexecConn,
    RexecEof, RexecExecReq, RexecExit, RexecFd, RexecRelease, RexecSignal, RexecStarted, Wire,
};

use crate::error::{Error, Result};
use crate::link;
use crate::pidfile::{self, PidFile};
use crate::relay::{DEFAULT_WINDOW, Endpoint, IoMode, Relay, Rx, Stream, Tx};
use crate::server::DEFAULT_SOCKET;
use crate::sys;

/// Exit status for local failures (as the original).
pub const EXIT_LOCAL: i32 = 255;
/// Exit status when an inherited descriptor cannot be passed, or argv is too long.
pub const EXIT_CANNOT: i32 = 126;

/// Signals forwarded to the remote process.
pub const FORWARDED: [i32; 7] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

/// How long `--daemonize-on-socket` waits for its socket (env REXEC_DAEMONIZE_TIMEOUT).
pub const DAEMONIZE_TIMEOUT: Duration = Duration::from_secs(60);

pub const HELP: &str = "\
Usage: rexec [OPTIONS] BINARY [ARGS...]

Runs BINARY on the HOST through rexec_server, as if it ran here: the same argv
(verbatim), environment (what the HOST allows: rexec_server --help; PATH is
the HOST's), working directory and descriptors. stdin/stdout/stderr
and inherited pipes are relayed; inherited listening unix sockets are relayed
connection by connection; /dev/null, /dev/zero, /dev/full, /dev/random and
/dev/urandom (by device number) are reopened on the HOST; inherited regular
files are reopened on the HOST by path when the HOST can see them: always when
rexec_server is reached directly, through udsproxyd only when the file lies on
a qtfs mount. Any other descriptor is not passed (it is closed in the remote
process) and one warning line names them all on stderr; --strict-fds refuses
instead. Files are reopened, and BINARY runs, with the caller's own uid, gid
and groups (root only for root). Signals INT TERM HUP QUIT USR1 USR2 WINCH are
forwarded; the remote process starts with default signal dispositions and an
empty signal mask. The exit status is the remote one (128+N when it died of
signal N); 126: a descriptor cannot be passed (--strict-fds), a file cannot be
reopened, or BINARY is not in the HOST's whitelist; 127: BINARY not found on
the HOST; 255: rexec_server cannot be reached (or was lost for longer than the
grace).

Options (before BINARY):
  --socket PATH        rexec_server socket (env REXEC_SOCKET;
                       default /var/run/rexec/rexec_uds.sock)
  --env-allow NAMES    send only these environment variables (comma-separated;
                       default: all; the server keeps only its own allow-list)
  --grace SECS         how long to try to reattach after a connection loss
                       (env REXEC_GRACE; default 60)
  --strict-fds         refuse (exit 126) when an inherited descriptor cannot be
                       passed, instead of leaving it out with a warning
  --pidfile FILE       write rexec's own pid (after --daemonize-on-socket: the
                       daemon's) and a newline to FILE (0644); removed at the end
  --daemonize-on-socket PATH
                       like qemu -daemonize: once the remote process has created
                       the unix socket PATH, rexec forks; the child (new session,
                       stdio on /dev/null) keeps the remote process and relays
                       signals, and the parent exits 0. If the remote process
                       exits first, rexec exits with its status; after 60 s (env
                       REXEC_DAEMONIZE_TIMEOUT) it sends SIGTERM and exits 1
  -h, --help           this text
  -V, --version        version

Environment: REXEC_LOG_FILE=std|FILE (logs; default none, stdout is never
used), REXEC_PIDS_DIR (default /var/run/rexec/pids: <own pid> holds the remote
pid while rexec runs), REXEC_HANDSHAKE_RD/REXEC_HANDSHAKE_WR (pipe fds > 2:
rexec writes \"1\" to WR once the remote process exists and its pid file is
written; the process is held before exec until a '1' is read from RD),
UDSPROXY_SOCKET (udsproxyd's request socket, used when PATH is not local).

Examples:
  rexec /usr/bin/qemu-kvm -name vm1 -m 2048 ...
  echo data | rexec /usr/bin/sha256sum
  rexec /usr/bin/cat /var/log/big.log > local-copy
  # libvirt's emulator on the DPU, /usr/bin/qemu-kvm (argv forwarded verbatim):
  #!/bin/sh
  exec /usr/bin/rexec /usr/bin/qemu-kvm \"$@\"
  # qemu -daemonize -pidfile F, with the HOST's qemu kept as a local process:
  rexec --pidfile F --daemonize-on-socket DIR/qmp.monitor /usr/bin/qemu-kvm \\
        -qmp unix:DIR/qmp.monitor,server=on,wait=off ...
";

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub env_allow: Option<Vec<String>>,
    pub grace: Duration,
    /// Refuse instead of leaving out descriptors that cannot be passed.
    pub strict_fds: bool,
    pub pidfile: Option<PathBuf>,
    pub daemonize_on: Option<PathBuf>,
    pub daemonize_timeout: Duration,
    pub argv: Vec<OsString>,
}

pub enum Cmd {
    Help,
    Version,
    Run(Options),
}

/// Parses options up to BINARY; everything from BINARY on is kept verbatim.
pub fn parse_args(args: Vec<OsString>) -> std::result::Result<Cmd, String> {
    let mut socket = std::env::var_os("REXEC_SOCKET").map(PathBuf::from).unwrap_or_else(|| DEFAULT_SOCKET.into());
    let mut grace = std::env::var("REXEC_GRACE").ok().and_then(|g| g.parse::<f64>().ok()).unwrap_or(60.0);
    let mut env_allow = None;
    let mut strict_fds = false;
    let mut pidfile = None;
    let mut daemonize_on = None;
    let mut args = args;
    if !args.is_empty() {
        args.remove(0);
    }
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.peek() {
        let s = a.to_string_lossy().into_owned();
        if !s.starts_with('-') || s == "-" {
            break;
        }
        it.next();
        let (name, inline) = match s.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (s.clone(), None),
        };
        let value =
            |it: &mut std::iter::Peekable<std::vec::IntoIter<OsString>>| -> std::result::Result<String, String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it.next().map(|v| v.to_string_lossy().into_owned()).ok_or(format!("{name} needs a value")),
                }
            };
        match name.as_str() {
            "--" => break,
            "-h" | "--help" => return Ok(Cmd::Help),
            "-V" | "--version" => return Ok(Cmd::Version),
            "--socket" => socket = PathBuf::from(value(&mut it)?),
            "--env-allow" => {
                let v = value(&mut it)?;
                env_allow = Some(v.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect());
            }
            "--grace" => {
                grace = value(&mut it)?.parse::<f64>().map_err(|_| "--grace needs a number of seconds".to_string())?
            }
            "--strict-fds" if inline.is_none() => strict_fds = true,
            "--pidfile" => pidfile = Some(PathBuf::from(value(&mut it)?)),
            "--daemonize-on-socket" => daemonize_on = Some(PathBuf::from(value(&mut it)?)),
            _ => return Err(format!("unknown option {s} (see rexec --help)")),
        }
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err("missing BINARY (see rexec --help)".into());
    }
    Ok(Cmd::Run(Options {
        socket,
        env_allow,
        grace: Duration::from_secs_f64(grace.max(0.0)),
        strict_fds,
        pidfile,
        daemonize_on,
        daemonize_timeout: std::env::var("REXEC_DAEMONIZE_TIMEOUT")
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map_or(DAEMONIZE_TIMEOUT, |t| Duration::from_secs_f64(t.clamp(0.0, 1e9))),
        argv,
    }))
}

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

impl Client {
    fn start(opts: Options, inherited: &[RawFd]) -> StartResult<Client> {
        let local = |e: Error| (EXIT_LOCAL, e.to_string());
        // Handshake descriptors (original semantics: both set, FIFO/pipe fds above 2).
        let hs = match (env_fd("REXEC_HANDSHAKE_RD"), env_fd("REXEC_HANDSHAKE_WR")) {
            (Some(r), Some(w)) => {
                let (r, w) = (r.map_err(|e| (EXIT_LOCAL, e))?, w.map_err(|e| (EXIT_LOCAL, e))?);
                for fd in [r, w] {
                    let is_fifo = sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
                    if fd <= 2 || !is_fifo {
                        return Err((EXIT_LOCAL, format!("REXEC_HANDSHAKE fd {fd} must be a pipe or FIFO above 2")));
                    }
                }
                Some((r, w))
            }
            _ => None,
        };
        let mut fds = Vec::new();
        let mut left_out = Vec::new();
        for &fd in inherited.iter().filter(|&&fd| fd > 2) {
            if hs.is_some_and(|(r, w)| fd == r || fd == w) {
                continue;
            }
            match classify(fd) {
                Ok(i) => fds.push(i),
                Err(e @ Error::UnsupportedFd { .. }) if opts.strict_fds => return Err((EXIT_CANNOT, e.to_string())),
                Err(e @ Error::UnsupportedFd { .. }) => left_out.push(e),
                Err(e) => return Err(local(e)),
            }
        }
        sys::ignore_sigpipe();
        let mask = sys::block_signals(&FORWARDED).map_err(|e| local(Error::io("sigprocmask", e)))?;
        let sigfd = sys::signalfd(&mask).map_err(|e| local(Error::io("signalfd", e)))?;
        let pids = pidfile::dir();
        if let Err(e) = pidfile::clean_stale(&pids) {
            tracing::warn!(dir = %pids.display(), error = %e, "cannot clean stale pid files");
        }

        // The request.
        let mut argv = Vec::new();
        for a in &opts.argv {
            argv.extend_from_slice(a.as_bytes());
            argv.push(0);
        }
        let mut env = Vec::new();
        for (key, val) in std::env::vars_os() {
            let kb = key.as_bytes();
            if kb == b"REXEC_HANDSHAKE_RD" || kb == b"REXEC_HANDSHAKE_WR" {
                continue;
            }
            if let Some(allow) = &opts.env_allow
                && !allow.iter().any(|a| a.as_bytes() == kb)
            {
                continue;
            }
            env.extend_from_slice(kb);
            env.push(b'=');
            env.extend_from_slice(val.as_bytes());
            env.push(0);
        }
        if argv.len() + env.len() > k::MAX_ARGV_ENV {
            return Err((EXIT_CANNOT, "argument list and environment exceed 1 MiB".into()));
        }
        let cwd = std::env::current_dir().map(|p| p.as_os_str().as_bytes().to_vec()).unwrap_or_default();
        let cwd = if cwd.len() > qtfs_proto::MAX_PATH { Vec::new() } else { cwd };
        for i in &fds {
            if i.path.len() > qtfs_proto::MAX_PATH {
                return Err((EXIT_CANNOT, format!("fd {}: path longer than {} bytes", i.fd, qtfs_proto::MAX_PATH)));
            }
        }
        if fds.len() + 3 > k::MAX_FDS {
            return Err((EXIT_CANNOT, format!("more than {} descriptors to pass", k::MAX_FDS)));
        }
        let window = DEFAULT_WINDOW;

        // Endpoints, before connecting (a failure here must not start anything).
        let mut relay = Relay::new();
        let ep =
            |fd: RawFd, write: bool| Endpoint::inherit(fd, write).map_err(|e| local(Error::io(format!("fd {fd}"), e)));
        let stdin = if sys::fd_is_open(0) { Some(ep(0, false)?) } else { None };
        relay.streams.insert(1, Stream { tx: None, rx: Some(Rx::new(ep(1, true)?, window)) });
        relay.streams.insert(2, Stream { tx: None, rx: Some(Rx::new(ep(2, true)?, window)) });
        let mut pipe_in = vec![];
        let mut listeners = vec![];
        for i in &fds {
            match i.kind {
                k::FD_PIPE_IN => pipe_in.push((i.fd as u32, ep(i.fd, false)?)),
                k::FD_PIPE_OUT => {
                    relay.streams.insert(i.fd as u32, Stream { tx: None, rx: Some(Rx::new(ep(i.fd, true)?, window)) });
                }
                k::FD_LISTENER => listeners.push(i.fd),
                _ => {}
            }
        }
        // Without daemonizing, the process that keeps the session is this one.
        let user_pidfile = match (&opts.pidfile, &opts.daemonize_on) {
            (Some(p), None) => Some(UserPidFile::write(p, std::process::id()).map_err(|e| {
                (EXIT_LOCAL, format!("cannot write the pid file {}: {}", p.display(), sys::errstr(&e)))
            })?),
            _ => None,
        };

        let (mut conn, route) = connect_server_route(&opts.socket).map_err(|e| (EXIT_LOCAL, e.to_string()))?;
        // Through the proxy the HOST sees only the files on qtfs mounts.
        if route == Route::Proxied {
            let (keep, local_files): (Vec<_>, Vec<_>) = fds.into_iter().partition(|i| i.host_visible);
            fds = keep;
            for i in local_files {
                let detail = String::from_utf8_lossy(&i.path).into_owned();
                let e = Error::UnsupportedFd { fd: i.fd, kind: "a DPU-local file".into(), detail };
                if opts.strict_fds {
                    return Err((EXIT_CANNOT, e.to_string()));
                }
                left_out.push(e);
            }
        }
        if !left_out.is_empty() {
            left_out.sort_by_key(|e| if let Error::UnsupportedFd { fd, .. } = e { *fd } else { -1 });
            say(&not_passed_line(&left_out));
        }
        let mut recs = Vec::new();
        let mut count = 0u32;
        let mut push_rec = |fd: u32, kind: u32, flags: u32, offset: u64, path: &[u8]| {
            let stream = if kind == k::FD_PIPE_IN || kind == k::FD_PIPE_OUT { fd } else { 0 };
            RexecFd { fd, kind, stream, flags, offset, path: WPath(path) }.encode(&mut recs);
            count += 1;
        };
        push_rec(0, k::FD_PIPE_IN, 0, 0, b"");
        push_rec(1, k::FD_PIPE_OUT, 0, 0, b"");
        push_rec(2, k::FD_PIPE_OUT, 0, 0, b"");
        for i in &fds {
            push_rec(i.fd as u32, i.kind, i.flags, i.offset, &i.path);
        }
        let req = RexecExecReq {
            flags: if hs.is_some() { k::F_HOLD } else { 0 },
            window,
            fd_count: count,
            argv: Bytes32(&argv),
            env: Bytes32(&env),
            cwd: WPath(&cwd),
            fds: Rest(&recs),
        };
        let mut frame = Vec::with_capacity(req.encoded_len() + HEADER_SIZE);
        qtfs_proto::push_frame(&mut frame, FrameHeader::request(Op::REXEC_EXEC, 1, 0), &req);
        if frame.len() - HEADER_SIZE > MAX_PAYLOAD {
            return Err((EXIT_CANNOT, "request too large".into()));
        }
        conn.write_all(&frame).map_err(|e| (EXIT_LOCAL, format!("sending the request: {e}")))?;
        let (h, payload) =
            read_response(&mut conn, 60_000).map_err(|e| (EXIT_LOCAL, format!("waiting for rexec_server: {e}")))?;
        if h.op != Op::REXEC_EXEC as u16 || !h.is_response() {
            return Err((EXIT_LOCAL, format!("unexpected answer (op {:#06x}) from rexec_server", h.op)));
        }
        if h.is_error() {
            return Err((
                EXIT_LOCAL,
                format!("rexec_server refused the request: {}", io::Error::from_raw_os_error(h.status)),
            ));
        }
        let st =
            RexecStarted::decode(&payload).map_err(|e| (EXIT_LOCAL, format!("bad answer from rexec_server: {e}")))?;
        if !(k::MIN_WINDOW..=k::MAX_WINDOW).contains(&st.window) {
            return Err((EXIT_LOCAL, "bad window from rexec_server".into()));
        }
        tracing::info!(pid = st.pid, ?route, "remote process started");
        // Streams we send on use the server's window.
        if let Some(s) = stdin {
            relay.streams.insert(0, Stream { tx: Some(Tx::new(s, st.window)), rx: None });
        }
        for (id, e) in pipe_in {
            relay.streams.insert(id, Stream { tx: Some(Tx::new(e, st.window)), rx: None });
        }
        let mut pf = None;
        if st.pid != 0 {
            match PidFile::create(&pids, std::process::id(), st.pid) {
                Ok(p) => pf = Some(p),
                Err(e) => tracing::warn!(dir = %pids.display(), error = %e, "cannot write the pid file"),
            }
        }
        if let Some((_, w)) = hs {
            // The caller may now look the remote pid up and then release it through RD.
            let _ = sys::write(w, b"1");
        }
        conn.set_nonblocking(true).map_err(|e| local(Error::io("socket", e)))?;
        Ok(Client {
            relay,
            conn: Some(conn),
            pid: st.pid,
            token: st.token,
            sigfd,
            listeners,
            next_conn: k::CONN_STREAM_BASE,
            handshake_rd: hs.map(|(r, _)| r),
            exit: None,
            lost_at: None,
            last_try: None,
            server_window: st.window,
            protocol_failed: None,
            pidfile: pf,
            user_pidfile,
            daemon: (st.pid != 0)
                .then(|| opts.daemonize_on.clone().map(|socket| DaemonWait { socket, since: Instant::now() }))
                .flatten(),
            opts,
        })
    }

    fn done(&self) -> bool {
        self.exit.is_some()
            && self.relay.streams.iter().all(|(&id, s)| {
                id >= k::CONN_STREAM_BASE || s.rx.as_ref().is_none_or(|r| r.buf.is_empty() || r.dst.is_none())
            })
    }

    fn run(mut self) -> i32 {
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        let mut toks: Vec<Tok> = Vec::new();
        let mut interest = Vec::new();
        while !self.done() {
            pfds.clear();
            toks.clear();
            let mut add = |fd: RawFd, ev: i16, t: Tok, pfds: &mut Vec<libc::pollfd>| {
                pfds.push(libc::pollfd { fd, events: ev, revents: 0 });
                toks.push(t);
            };
            if let Some(c) = &self.conn {
                let ev = libc::POLLIN | if self.relay.link.wants_write() { libc::POLLOUT } else { 0 };
                add(c.as_raw_fd(), ev, Tok::Conn, &mut pfds);
            }
            add(self.sigfd.as_raw_fd(), libc::POLLIN, Tok::Sig, &mut pfds);
            if self.exit.is_none() {
                for &l in &self.listeners {
                    add(l, libc::POLLIN, Tok::Listener(l), &mut pfds);
                }
                if let Some(r) = self.handshake_rd {
                    add(r, libc::POLLIN, Tok::HandshakeRd, &mut pfds);
                }
            }
            interest.clear();
            self.relay.poll_interest(&mut interest);
            for &(fd, ev, id, tx) in &interest {
                add(fd, ev, Tok::Stream(id, tx), &mut pfds);
            }
            // While waiting for the daemon socket, look for it every 15 ms.
            let waiting = self.daemon.is_some() && self.exit.is_none();
            let timeout = if waiting {
                15
            } else if self.conn.is_none() {
                100
            } else {
                -1
            };
            if let Err(e) = sys::poll(&mut pfds, timeout) {
                say(&format!("poll: {e}"));
                return EXIT_LOCAL;
            }
            for (i, p) in pfds.iter().enumerate() {
                if p.revents == 0 {
                    continue;
                }
                match toks[i] {
                    Tok::Conn => self.on_conn_event(p.revents),
                    Tok::Sig => {
                        while let Some(sig) = sys::signalfd_read(self.sigfd.as_raw_fd()) {
                            tracing::info!(sig, "forwarding signal");
                            self.relay.link.push(Op::REXEC_SIGNAL, 0, &RexecSignal { signal: sig, flags: 0 });
                        }
                    }
                    Tok::Stream(id, true) => {
                        self.relay.pump_tx(id);
                    }
                    Tok::Stream(id, false) => self.relay.pump_rx(id),
                    Tok::Listener(l) => self.on_listener(l),
                    Tok::HandshakeRd => self.on_handshake(),
                }
            }
            if let Some(code) = self.protocol_failed.take() {
                return code;
            }
            if self.conn.is_none()
                && self.exit.is_none()
                && let Err(code) = self.reconnect()
            {
                return code;
            }
            self.relay.reap_finished();
            self.relay.link.maybe_ack();
            if let Some(c) = &self.conn
                && let Err(e) = self.relay.link.flush(c.as_raw_fd())
            {
                self.lost(&format!("write: {e}"));
            }
            if self.exit.is_none()
                && let Some(d) = &self.daemon
            {
                if is_socket(&d.socket) {
                    if let Err(code) = self.daemonize() {
                        return code;
                    }
                } else if d.since.elapsed() > self.opts.daemonize_timeout {
                    say(&format!(
                        "{} did not appear within {} s; stopping the remote process",
                        d.socket.display(),
                        self.opts.daemonize_timeout.as_secs_f64()
                    ));
                    self.relay.link.push(Op::REXEC_SIGNAL, 0, &RexecSignal { signal: libc::SIGTERM, flags: 0 });
                    if let Some(c) = &self.conn {
                        let _ = self.relay.link.flush(c.as_raw_fd());
                    }
                    // Our connection closes as we exit: rexec_server then kills the group.
                    return 1;
                }
            }
        }
        let e = self.exit.unwrap_or_default();
        tracing::info!(status = e.status, signal = e.signal, "remote process ended");
        e.status
    }
}

impl Client {
    /// `--daemonize-on-socket`: the socket exists. Forks; the parent exits 0 once the
    /// child reports that it took over (1 if it failed); the child returns here and keeps
    /// running the session. rexec is single-threaded, so the child may run any code.
    fn daemonize(&mut self) -> std::result::Result<(), i32> {
        self.daemon = None;
        // Output that arrived before the socket still reaches the caller if it can.
        self.relay.pump_rx(1);
        self.relay.pump_rx(2);
        let (r, w) = sys::pipe().map_err(|e| {
            say(&format!("pipe: {e}"));
            EXIT_LOCAL
        })?;
        // SAFETY: rexec has one thread, so the child has no locks or allocator state held
        // by another thread.
        let pid = unsafe { sys::fork() }.map_err(|e| {
            say(&format!("fork: {e}"));
            EXIT_LOCAL
        })?;
        if pid > 0 {
            drop(w);
            let mut got = Vec::new();
            let _ = std::fs::File::from(r).read_to_end(&mut got);
            if got.first() == Some(&b'1') {
                tracing::info!(daemon = pid, "daemonized");
                std::process::exit(0);
            }
            let why = String::from_utf8_lossy(got.get(1..).unwrap_or_default()).into_owned();
            say(&format!("the daemonized rexec (pid {pid}) failed: {}", if why.is_empty() { "it died" } else { &why }));
            std::process::exit(1);
        }
        drop(r);
        match self.become_daemon() {
            Ok(()) => {
                let _ = sys::write(w.as_raw_fd(), b"1");
                Ok(())
            }
            Err(why) => {
                let _ = sys::write(w.as_raw_fd(), format!("0{why}").as_bytes());
                // Exiting closes the connection: rexec_server kills the remote group.
                Err(1)
            }
        }
    }

    /// The daemon child's take-over: own session, stdio on /dev/null (no copy of the
    /// caller's 0, 1, 2 stays open, so its pipes see EOF), the pid map file and
    /// `--pidfile` for our own pid.
    fn become_daemon(&mut self) -> std::result::Result<(), String> {
        sys::setsid().map_err(|e| format!("setsid: {e}"))?;
        for id in 0..3 {
            self.relay.drop_local(id);
        }
        let null = sys::open(c"/dev/null", libc::O_RDWR, 0).map_err(|e| format!("/dev/null: {e}"))?;
        for fd in 0..3 {
            sys::dup2(null.as_raw_fd(), fd).map_err(|e| format!("dup2: {e}"))?;
        }
        let me = std::process::id();
        if self.pid != 0 {
            let pids = pidfile::dir();
            // Ours first, then the parent's goes (dropping it removes its file).
            let new = PidFile::create(&pids, me, self.pid)
                .map_err(|e| tracing::warn!(dir = %pids.display(), error = %e, "cannot write the pid file"))
                .ok();
            drop(std::mem::replace(&mut self.pidfile, new));
        }
        if let Some(p) = &self.opts.pidfile {
            let f = UserPidFile::write(p, me)
                .map_err(|e| format!("cannot write the pid file {}: {}", p.display(), sys::errstr(&e)))?;
            self.user_pidfile = Some(f);
        }
        Ok(())
    }

    fn on_conn_event(&mut self, revents: i16) {
        let Some(fd) = self.conn.as_ref().map(|c| c.as_raw_fd()) else { return };
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return;
        }
        loop {
            match self.relay.link.fill(fd) {
                Ok(0) => {
                    self.lost("connection closed");
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lost(&format!("read: {e}"));
                    return;
                }
            }
            if let Err(e) = link::for_each_frame(self, |c| &mut c.relay.link, |c, h, p| c.on_frame(h, p)) {
                say(&format!("{e}"));
                self.protocol_failed = Some(EXIT_LOCAL);
                return;
            }
        }
    }

    fn on_frame(&mut self, h: &FrameHeader, p: &[u8]) -> Result<()> {
        if h.is_request() || h.is_response() {
            return Err(Error::proto(format!("unexpected frame op {:#06x} in a session", h.op)));
        }
        match h.op() {
            Some(Op::REXEC_DATA) => self.relay.on_data(h.channel, p),
            Some(Op::REXEC_EOF) => {
                let m = RexecEof::decode(p)?;
                self.relay.on_eof(h.channel, m.how)
            }
            Some(Op::REXEC_CREDIT) => {
                let m = qtfs_proto::RexecCredit::decode(p)?;
                self.relay.on_credit(h.channel, m.consumed)
            }
            Some(Op::REXEC_ACK) => {
                let m = qtfs_proto::RexecAck::decode(p)?;
                self.relay.link.on_ack(m.received)
            }
            Some(Op::REXEC_EXIT) => {
                let m = RexecExit::decode(p)?;
                self.exit = Some(m);
                // Tell the server at once that everything was processed.
                self.relay.link.ack_now();
                Ok(())
            }
            _ => Err(Error::proto(format!("unexpected op {:#06x} from rexec_server", h.op))),
        }
    }

    fn on_listener(&mut self, l: RawFd) {
        match sys::accept(l) {
            Ok(sock) => {
                let id = self.next_conn;
                self.next_conn = self.next_conn.wrapping_add(1).max(k::CONN_STREAM_BASE);
                let dup = match sys::dup_cloexec(sock.as_raw_fd(), 3) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(fd = l, error = %e, "dup of an accepted connection");
                        return;
                    }
                };
                tracing::debug!(fd = l, stream = id, "relaying an accepted connection");
                self.relay.streams.insert(
                    id,
                    Stream {
                        tx: Some(Tx::new(Endpoint::new(sock, IoMode::Nonblocking), self.server_window)),
                        rx: Some(Rx::new(Endpoint::new(dup, IoMode::Nonblocking), DEFAULT_WINDOW)),
                    },
                );
                self.relay.link.push(Op::REXEC_CONN, id, &RexecConn { fd: l as u32 });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::warn!(fd = l, error = %e, "accept"),
        }
    }

    fn on_handshake(&mut self) {
        let Some(r) = self.handshake_rd else { return };
        let mut b = [0u8; 1];
        let go = match sys::read(r, &mut b) {
            Ok(1) => (b[0] == b'1') as u32,
            Ok(_) => 0,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        tracing::info!(go, "handshake: releasing the remote process");
        self.relay.link.push(Op::REXEC_RELEASE, 0, &RexecRelease { go });
        // One release decides; later bytes or EOF on RD mean nothing.
        self.handshake_rd = None;
    }

    fn lost(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::warn!(why, "connection to rexec_server lost; reattaching");
            self.lost_at = Some(Instant::now());
        }
    }

    /// One reattach attempt every 150 ms until the grace period is over.
    fn reconnect(&mut self) -> std::result::Result<(), i32> {
        let since = self.lost_at.get_or_insert_with(Instant::now).elapsed();
        if since > self.opts.grace {
            say(&format!(
                "lost rexec_server for more than {:.0} s; giving up (the remote process is killed by the server)",
                self.opts.grace.as_secs_f64()
            ));
            return Err(EXIT_LOCAL);
        }
        if self.last_try.is_some_and(|t| t.elapsed() < Duration::from_millis(150)) {
            return Ok(());
        }
        self.last_try = Some(Instant::now());
        let mut conn = match connect_server(&self.opts.socket) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "reattach: connect failed");
                return Ok(());
            }
        };
        let req = RexecAttachReq { pid: self.pid, token: self.token, received: self.relay.link.received() };
        let mut out = Vec::new();
        qtfs_proto::push_frame(&mut out, FrameHeader::request(Op::REXEC_ATTACH, 2, 0), &req);
        if conn.write_all(&out).is_err() {
            return Ok(());
        }
        let (h, payload) = match read_response(&mut conn, 5_000) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "reattach: no answer");
                return Ok(());
            }
        };
        if h.is_error() {
            say(&format!(
                "cannot reattach to the remote process {}: {}",
                self.pid,
                io::Error::from_raw_os_error(h.status)
            ));
            return Err(EXIT_LOCAL);
        }
        let Ok(rsp) = RexecAttached::decode(&payload) else {
            say("bad REXEC_ATTACH answer");
            return Err(EXIT_LOCAL);
        };
        if let Err(e) = self.relay.link.resume(rsp.received) {
            say(&format!("cannot resume the session: {e}"));
            return Err(EXIT_LOCAL);
        }
        if conn.set_nonblocking(true).is_err() {
            return Ok(());
        }
        tracing::info!(pid = self.pid, "reattached");
        self.conn = Some(conn);
        self.lost_at = None;
        Ok(())
    }
}

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

    #[test]
    fn new_options_parse_before_binary_only() {
        let a = |v: &[&str]| parse_args(v.iter().map(OsString::from).collect());
        let Ok(Cmd::Run(o)) =
            a(&["rexec", "--strict-fds", "--pidfile", "/p", "--daemonize-on-socket=/s", "q", "--pidfile"])
        else {
            panic!("not parsed")
        };
        assert!(o.strict_fds);
        assert_eq!((o.pidfile.as_deref(), o.daemonize_on.as_deref()), (Some(Path::new("/p")), Some(Path::new("/s"))));
        assert_eq!(o.argv, vec![OsString::from("q"), OsString::from("--pidfile")]);
        let Ok(Cmd::Run(o)) = a(&["rexec", "q"]) else { panic!("not parsed") };
        assert!(!o.strict_fds && o.pidfile.is_none() && o.daemonize_on.is_none());
        assert!(a(&["rexec", "--pidfile"]).is_err());
    }
}
