//! The engine's layering, checked on its source (scanner: `qtfs_testkit::layout`; the
//! workspace-wide checks — no module cycle in any crate, no file over 800 lines — are
//! testkit's `tests/layout.rs`): the reactor imports no service.

use std::path::Path;

use qtfs_testkit::layout::module_graph;

#[test]
fn the_reactor_knows_no_service() {
    let g = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.contains_key("ring") && g.contains_key("fsops"), "module scan found {:?}", g.keys());
    let ring = g.get("ring").expect("ring module");
    for svc in ["fsops", "udsmux", "notify", "admin", "worker"] {
        assert!(!ring.contains(svc), "ring imports {svc}");
    }
}
