//! # qtcfg / qtinfo — whitelists and diagnostics, as users of the original use them
//!
//! Both commands parse the original's options left to right (`-w TYPE -x PATH -y INDEX
//! -z[TYPE]`, and for qtinfo `-a -c -l LEVEL -t -p N -u -s`) plus long options (`--json`,
//! `--watch`, `--target`, `--persist`). Requests are the admin messages of `qtfs-proto`,
//! sent to the engine's or udsproxyd's admin socket, or to `/dev/qtfs_client` (qtfs.ko),
//! so one codec serves every target.
//!
//! Here: default targets, exit statuses, [`Mode`] and [`main`]. Apart: the command line
//! ([`parse`], [`help`]: `args`), targets and connections ([`Target`], [`Conn`]: `target`),
//! qtfs.ko's ioctl ([`kmod`]), executing the actions ([`run`]: `run`) and qtinfo's
//! diagnostics views (`show`).

mod args;
pub mod kmod;
mod run;
mod show;
mod target;

pub use args::{Action, Opts, help, parse};
pub use run::run;
pub use target::{Conn, Target};

pub const DEFAULT_ENGINE: &str = "/var/run/qtfs/engine.sock";
pub const DEFAULT_UDSPROXYD: &str = "/var/run/qtfs/udsproxyd.sock";
pub const DEFAULT_KMOD: &str = "/dev/qtfs_client";

/// A failed command: message and exit status (usage errors, refusals, unreachable targets).
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub msg: String,
}

/// Exit statuses (documented in `--help`).
pub mod exit {
    pub const OK: i32 = 0;
    /// The target refused a request (duplicate entry, index out of range, …).
    pub const REFUSED: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// The target is not running or may not be reached (permission).
    pub const UNREACHABLE: i32 = 3;
}

/// Which command is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Qtcfg,
    Qtinfo,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Qtcfg => "qtcfg",
            Mode::Qtinfo => "qtinfo",
        }
    }
}

/// Entry point of both binaries; returns the exit status.
pub fn main(mode: Mode) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let r = parse(mode, &args).and_then(|o| run(mode, &o, &mut out));
    match r {
        Ok(()) => exit::OK,
        Err(f) => {
            if !f.msg.is_empty() {
                eprintln!("{}: {}", mode.name(), f.msg);
            }
            f.code
        }
    }
}
