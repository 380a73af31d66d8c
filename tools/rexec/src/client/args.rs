//! rexec's command line (clap derive): [`Options`] and [`parse_args`], which parses
//! options up to BINARY and keeps everything from BINARY on verbatim.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use super::DAEMONIZE_TIMEOUT;
use crate::server::DEFAULT_SOCKET;

const ABOUT: &str = "\
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
grace), or the command line is wrong.

Options stand before BINARY; everything from BINARY on is passed verbatim
(options of rexec after BINARY are BINARY's arguments).";

const AFTER: &str = "\
Environment: REXEC_LOG_FILE=std|FILE (logs; default none, stdout is never
used), REXEC_PIDS_DIR (default /var/run/rexec/pids: <own pid> holds the remote
pid while rexec runs), REXEC_HANDSHAKE_RD/REXEC_HANDSHAKE_WR (pipe fds > 2:
rexec writes \"1\" to WR once the remote process exists and its pid file is
written; the process is held before exec until a '1' is read from RD),
UDSPROXY_SOCKET (udsproxyd's request socket, used when PATH is not local),
REXEC_SOCKET, REXEC_GRACE, REXEC_DAEMONIZE_TIMEOUT (see the options).

Examples:
  rexec /usr/bin/qemu-kvm -name vm1 -m 2048 ...
  echo data | rexec /usr/bin/sha256sum
  rexec /usr/bin/cat /var/log/big.log > local-copy
  # libvirt's emulator on the DPU, /usr/bin/qemu-kvm (argv forwarded verbatim):
  #!/bin/sh
  exec /usr/bin/rexec /usr/bin/qemu-kvm \"$@\"
  # qemu -daemonize -pidfile F, with the HOST's qemu kept as a local process:
  rexec --pidfile F --daemonize-on-socket DIR/qmp.monitor /usr/bin/qemu-kvm \\
        -qmp unix:DIR/qmp.monitor,server=on,wait=off ...";

/// The command line as clap sees it; [`parse_args`] adds the environment's settings.
#[derive(Debug, Parser)]
#[command(
    name = "rexec",
    version,
    about = "Runs BINARY on the HOST through rexec_server, as if it ran here",
    long_about = ABOUT,
    after_help = AFTER,
    override_usage = "rexec [OPTIONS] BINARY [ARGS...]",
    disable_help_flag = true
)]
struct Cli {
    /// rexec_server socket [env REXEC_SOCKET; default /var/run/rexec/rexec_uds.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Send only these environment variables (comma-separated; default: all; the server
    /// keeps only its own allow-list).
    #[arg(long, value_name = "NAMES")]
    env_allow: Option<String>,
    /// How long to try to reattach after a connection loss [env REXEC_GRACE; default 60].
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    grace: Option<f64>,
    /// Refuse (exit 126) when an inherited descriptor cannot be passed, instead of leaving
    /// it out with a warning.
    #[arg(long)]
    strict_fds: bool,
    /// Write rexec's own pid (after --daemonize-on-socket: the daemon's) and a newline to
    /// FILE (0644); removed at the end.
    #[arg(long, value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Like qemu -daemonize: once the remote process has created the unix socket PATH,
    /// rexec forks; the child (new session, stdio on /dev/null) keeps the remote process
    /// and relays signals, and the parent exits 0. If the remote process exits first,
    /// rexec exits with its status; after 60 s (env REXEC_DAEMONIZE_TIMEOUT) it sends
    /// SIGTERM and exits 1.
    #[arg(long, value_name = "PATH")]
    daemonize_on_socket: Option<PathBuf>,
    /// Print this help.
    #[arg(short, long, action = ArgAction::HelpLong)]
    help: Option<bool>,
    /// BINARY (as the HOST's whitelist names it) and its arguments, passed verbatim.
    #[arg(value_name = "BINARY", required = true, num_args = 1.., trailing_var_arg = true)]
    argv: Vec<OsString>,
}

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

/// Parses `args` (the first is the program's name): options up to BINARY, everything from
/// BINARY on verbatim. `Err` is also how `--help` and `--version` come back: print it, and
/// exit 0 when it is not an error (`use_stderr()` false), else with `EXIT_LOCAL`.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Options, clap::Error> {
    let cli = Cli::try_parse_from(args)?;
    let env_secs = |name: &str| std::env::var(name).ok().and_then(|g| g.parse::<f64>().ok());
    let grace = cli.grace.or_else(|| env_secs("REXEC_GRACE")).unwrap_or(60.0);
    Ok(Options {
        socket: cli
            .socket
            .or_else(|| std::env::var_os("REXEC_SOCKET").map(PathBuf::from))
            .unwrap_or_else(|| DEFAULT_SOCKET.into()),
        env_allow: cli.env_allow.map(|v| v.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect()),
        grace: Duration::from_secs_f64(grace.max(0.0)),
        strict_fds: cli.strict_fds,
        pidfile: cli.pidfile,
        daemonize_on: cli.daemonize_on_socket,
        daemonize_timeout: env_secs("REXEC_DAEMONIZE_TIMEOUT")
            .map_or(DAEMONIZE_TIMEOUT, |t| Duration::from_secs_f64(t.clamp(0.0, 1e9))),
        argv: cli.argv,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::error::ErrorKind;

    use super::*;

    fn a(v: &[&str]) -> Result<Options, clap::Error> {
        parse_args(v.iter().map(OsString::from))
    }

    fn argv(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn new_options_parse_before_binary_only() {
        let o = a(&["rexec", "--strict-fds", "--pidfile", "/p", "--daemonize-on-socket=/s", "q", "--pidfile"]).unwrap();
        assert!(o.strict_fds);
        assert_eq!((o.pidfile.as_deref(), o.daemonize_on.as_deref()), (Some(Path::new("/p")), Some(Path::new("/s"))));
        assert_eq!(o.argv, argv(&["q", "--pidfile"]));
        let o = a(&["rexec", "q"]).unwrap();
        assert!(!o.strict_fds && o.pidfile.is_none() && o.daemonize_on.is_none());
        assert!(a(&["rexec", "--pidfile"]).is_err());
    }

    #[test]
    fn everything_from_binary_on_is_verbatim() {
        let o = a(&["rexec", "q", "-h", "--version", "--", "-x"]).unwrap();
        assert_eq!(o.argv, argv(&["q", "-h", "--version", "--", "-x"]));
        assert_eq!(a(&["rexec", "-", "-x"]).unwrap().argv, argv(&["-", "-x"]));
        let o = a(&["rexec", "--", "-q", "--socket", "x"]).unwrap();
        assert_eq!(o.argv, argv(&["-q", "--socket", "x"]));
        let o = a(&["rexec", "--env-allow", "A,,B", "--grace", "-1", "--socket=/s", "/bin/sh", "-c", "x"]).unwrap();
        assert_eq!(o.env_allow, Some(vec!["A".to_string(), "B".to_string()]));
        assert_eq!((o.grace, o.socket.as_path()), (Duration::ZERO, Path::new("/s")));
        assert_eq!(o.argv, argv(&["/bin/sh", "-c", "x"]));
    }

    #[test]
    fn wrong_lines_are_errors_and_help_is_not() {
        for bad in [
            &["rexec"][..],
            &["rexec", "--nope", "q"],
            &["rexec", "--strict-fds=1", "q"],
            &["rexec", "--grace", "x", "q"],
        ] {
            let e = a(bad).unwrap_err();
            assert!(e.use_stderr(), "{bad:?}: {e}");
        }
        for (flag, kind) in
            [("-h", ErrorKind::DisplayHelp), ("--help", ErrorKind::DisplayHelp), ("-V", ErrorKind::DisplayVersion)]
        {
            let e = a(&["rexec", flag]).unwrap_err();
            assert_eq!(e.kind(), kind);
            assert!(!e.use_stderr());
        }
        let help = a(&["rexec", "-h"]).unwrap_err().to_string();
        for s in ["--daemonize-on-socket", "REXEC_SOCKET", "REXEC_HANDSHAKE_RD", "Examples:", "127: BINARY not found"] {
            assert!(help.contains(s), "help lacks {s}:\n{help}");
        }
    }
}
