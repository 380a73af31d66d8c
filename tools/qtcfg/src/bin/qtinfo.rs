//! `qtinfo`: diagnostics and whitelists (see `qtinfo --help`).

fn main() {
    std::process::exit(qtfs_qtcfg::main(qtfs_qtcfg::Mode::Qtinfo));
}
