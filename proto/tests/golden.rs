//! Golden vectors and the C mirror: the committed generated files must match the
//! declarations, and the C decoder/encoder in `qtp.h` must read every vector exactly as
//! the Rust field tables say and write back identical bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use qtfs_proto::codegen;
use qtfs_proto::{FrameHeader, MESSAGES};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn generated_files_are_up_to_date() {
    let stale = codegen::stale_files(&root()).unwrap();
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `cargo run -p qtfs-proto --bin qtp-gen` and commit"
    );
}

#[test]
fn golden_vectors_decode_in_rust() {
    for m in MESSAGES {
        let bytes = std::fs::read(root().join("proto/golden").join(format!("{}.bin", m.name))).unwrap();
        (m.validate)(&bytes).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        assert!(bytes.len() >= m.fixed_size, "{}", m.name);
    }
    let h = std::fs::read(root().join("proto/golden/FrameHeader.bin")).unwrap();
    let h = FrameHeader::decode(&h, qtfs_proto::MAX_PAYLOAD).unwrap();
    assert_eq!(h.status, -2);
    assert_eq!(h.op, qtfs_proto::Op::OPEN as u16);
}

fn compile(out: &Path, extra: &[&str]) -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let r = root();
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-O1", "-g"])
        .args(extra)
        .arg("-I")
        .arg(r.join("client-kmod/include"))
        .arg(r.join("client-kmod/tests/golden_test.c"))
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    status.success()
}

#[test]
fn c_decoder_matches_rust() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("golden_test");
    // Prefer AddressSanitizer so that reads past the end of truncated vectors fail.
    let asan = compile(&bin, &["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]);
    if !asan {
        assert!(compile(&bin, &[]), "golden_test.c does not compile against qtp.h");
    }
    let out =
        Command::new(&bin).arg(root().join("proto/golden")).env("ASAN_OPTIONS", "detect_leaks=0").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "C golden test failed (asan={asan}):\n{stderr}");

    let mut expected = String::new();
    for m in MESSAGES {
        let mut b = Vec::new();
        (m.sample)(&mut b);
        expected.push_str(&codegen::expected_dump(m, &b));
    }
    let h =
        FrameHeader::decode(&std::fs::read(root().join("proto/golden/FrameHeader.bin")).unwrap(), usize::MAX).unwrap();
    expected.push_str(&format!(
        "FrameHeader.flags={}\nFrameHeader.op={}\nFrameHeader.channel={}\nFrameHeader.len={}\nFrameHeader.id={}\nFrameHeader.status={}\n",
        h.flags, h.op, h.channel, h.len, h.id, h.status
    ));
    let got = String::from_utf8_lossy(&out.stdout);
    for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(g, e, "line {i} of the C dump differs from the Rust field tables");
    }
    assert_eq!(got.lines().count(), expected.lines().count(), "dump length differs");
    assert!(stderr.contains("0 failures"), "{stderr}");
}

#[test]
fn every_message_has_a_distinct_sample() {
    // Guards the generator itself: samples must be non-trivial so that the C test
    // would notice a swapped field.
    for m in MESSAGES {
        let mut b = Vec::new();
        (m.sample)(&mut b);
        assert!(b.len() >= m.fixed_size, "{}", m.name);
        if m.fixed_size >= 8 {
            assert!(b.iter().any(|&x| x != 0), "{} sample is all zero", m.name);
        }
    }
}
