//! # qtfs-rexec — remote execution for the DPU offload
//!
//! `rexec BINARY [ARGS...]` runs on the DPU (typically as libvirt's `qemu-kvm`
//! trampoline) and makes `rexec_server` on the HOST run BINARY with the same argv,
//! environment (the part the HOST's allow-list lets through, and the HOST's fixed PATH:
//! [`server::env`]), working directory and descriptors (stdio and inherited pipes relayed as
//! streams, regular files the HOST can see reopened by path, [`SHARED_DEVICES`] reopened
//! by their canonical path, listening unix sockets relayed connection by connection;
//! anything else is left out with one warning, or refused with `--strict-fds`). The
//! command runs with the identity of whoever connected to rexec_server (root only for
//! root). Output, signals, exit status and lifetime stay tied to the local `rexec`
//! process (or to its daemon child with `--daemonize-on-socket`), and a transport drop is
//! survived by reattaching within a grace period.
//!
//! Modules: [`link`] (session framing, acknowledgement, retransmission), [`relay`]
//! (streams and flow control), [`client`] (rexec), [`server`] (rexec_server), [`pidfile`]
//! (`/var/run/rexec/pids`), [`sys`] (every system call), [`error`].

pub mod client;
pub mod error;
pub mod link;
pub mod pidfile;
pub mod relay;
pub mod server;
pub mod sys;

pub use error::{Error, Result};

/// Character devices that exist alike on the DPU and the HOST, by (major, minor): an
/// inherited descriptor of one of them is reopened on the HOST at its canonical path,
/// and rexec_server reopens no other device.
pub const SHARED_DEVICES: [(u32, u32, &str); 5] =
    [(1, 3, "/dev/null"), (1, 5, "/dev/zero"), (1, 7, "/dev/full"), (1, 8, "/dev/random"), (1, 9, "/dev/urandom")];

/// The canonical path of a shared character device, by its `st_rdev`.
pub fn shared_device(rdev: libc::dev_t) -> Option<&'static str> {
    let (ma, mi) = (libc::major(rdev), libc::minor(rdev));
    SHARED_DEVICES.iter().find(|d| d.0 == ma && d.1 == mi).map(|d| d.2)
}

/// Logging for both commands: `REXEC_LOG_FILE=std` logs to stderr, any other value
/// appends to that file; unset: rexec logs nothing (it must never disturb the relayed
/// output), rexec_server logs to stderr. `RUST_LOG` sets the level (default info).
pub fn init_logging(default_stderr: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match std::env::var("REXEC_LOG_FILE") {
        Ok(v) if v != "std" => {
            if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&v) {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_ansi(false)
                    .try_init();
            }
        }
        Ok(_) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(sys::isatty(2))
                .try_init();
        }
        Err(_) if default_stderr => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(sys::isatty(2))
                .try_init();
        }
        Err(_) => {}
    }
}
