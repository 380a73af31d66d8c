//! `rexec BINARY [ARGS...]`: run BINARY on the HOST (see `rexec --help`).

fn main() {
    // Before anything of our own is opened: these are the descriptors to pass on.
    let inherited = qtfs_rexec::sys::open_fds();
    let opts = match qtfs_rexec::client::parse_args(std::env::args_os()) {
        Ok(o) => o,
        Err(e) => {
            // --help and --version come back as errors that are not errors.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { qtfs_rexec::client::EXIT_LOCAL } else { 0 });
        }
    };
    qtfs_rexec::init_logging(false);
    std::process::exit(qtfs_rexec::client::run(opts, &inherited));
}
