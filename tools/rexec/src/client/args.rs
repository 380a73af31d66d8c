//! rexec's command line: the help text, [`Options`] and [`parse_args`], which parses
//! options up to BINARY and keeps everything from BINARY on verbatim.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::DAEMONIZE_TIMEOUT;
use crate::server::DEFAULT_SOCKET;

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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
