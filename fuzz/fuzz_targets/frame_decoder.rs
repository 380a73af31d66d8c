//! Feeds arbitrary bytes to the frame parser and to every message decoder: nothing may
//! panic, and every frame that parses must be classified (valid or a typed error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qtfs_proto::{FrameParser, MAX_PAYLOAD, MESSAGES, validate_frame};

fuzz_target!(|data: &[u8]| {
    let mut p = FrameParser::new(data, MAX_PAYLOAD);
    while let Ok(Some(f)) = p.next_frame() {
        let _ = validate_frame(&f.header, f.payload);
    }
    let _ = p.missing();
    if let Some((&sel, rest)) = data.split_first() {
        let m = MESSAGES[sel as usize % MESSAGES.len()];
        let _ = (m.validate)(rest);
        let _ = (m.roundtrip)(rest).map_err(|e| panic!("{}: {e}", m.name));
    }
});
