//! Property tests of the codec: every message survives encode → decode → encode, and
//! no input, however hostile, makes a decoder panic.

use proptest::prelude::*;
use qtfs_proto::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn round_trip_every_message(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for m in MESSAGES {
            if let Err(e) = (m.roundtrip)(&bytes) {
                prop_assert!(false, "{}: {}", m.name, e);
            }
        }
    }

    #[test]
    fn arbitrary_payload_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        for m in MESSAGES {
            let _ = (m.validate)(&bytes);
        }
    }

    #[test]
    fn arbitrary_stream_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut p = FrameParser::new(&bytes, MAX_PAYLOAD);
        while let Ok(Some(f)) = p.next_frame() {
            let _ = validate_frame(&f.header, f.payload);
        }
        let _ = p.missing();
    }

    #[test]
    fn header_round_trip(flags in 0u8..16, op in any::<u16>(), channel in any::<u32>(),
                         len in 0u32..=MAX_PAYLOAD as u32, id in any::<u64>(), status in any::<i32>()) {
        let h = FrameHeader { flags, op, channel, len, id, status };
        let b = h.encode();
        match FrameHeader::decode(&b, MAX_PAYLOAD) {
            Ok(d) => prop_assert_eq!(d, h),
            Err(ProtoError::BadFlags(_)) => prop_assert!(flags & 3 == 3),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn truncation_is_an_error(n in 0usize..64) {
        // Every message without a trailing `rest` tail must reject any strict prefix.
        for m in MESSAGES {
            let mut b = Vec::new();
            (m.sample)(&mut b);
            let ends_in_rest = m.tails.last().is_some_and(|t| t.kind == qtfs_proto::wire::TailKind::Rest);
            if ends_in_rest || b.is_empty() { continue; }
            let cut = n % b.len();
            prop_assert!((m.validate)(&b[..cut]).is_err(), "{} accepted {} of {} bytes", m.name, cut, b.len());
        }
    }
}

#[test]
fn pipelined_frames_split_anywhere() {
    let mut stream = Vec::new();
    for i in 0..100u64 {
        let req = ReadReq { handle: i, offset: i * 4096, len: 4096 };
        push_frame(&mut stream, FrameHeader::request(Op::READ, i, 0), &req);
        let w = WriteReq { handle: i, offset: 0, flags: 0, data: Rest(&[i as u8; 100]) };
        push_frame(&mut stream, FrameHeader::request(Op::WRITE, 1000 + i, 0), &w);
    }
    // Feed the stream in awkward pieces and reassemble like a receiver would.
    for chunk in [1usize, 7, 31, 32, 33, 4096] {
        let mut pending: Vec<u8> = Vec::new();
        let mut seen = 0;
        for piece in stream.chunks(chunk) {
            pending.extend_from_slice(piece);
            let mut p = FrameParser::new(&pending, MAX_PAYLOAD);
            while let Some(f) = p.next_frame().unwrap() {
                validate_frame(&f.header, f.payload).unwrap();
                seen += 1;
            }
            let used = p.consumed();
            pending.drain(..used);
        }
        assert_eq!(seen, 200, "chunk {chunk}");
        assert!(pending.is_empty());
    }
}

#[test]
fn bad_frames_are_classified() {
    let mut b = Vec::new();
    push_frame(&mut b, FrameHeader::request(Op::READ, 1, 0), &ReadReq { handle: 1, offset: 0, len: 1 });
    // Wrong version closes the stream.
    let mut v = b.clone();
    v[2] = 9;
    assert_eq!(FrameParser::new(&v, MAX_PAYLOAD).next_frame().unwrap_err(), ProtoError::BadVersion(9));
    // Oversized length closes the stream.
    let mut v = b.clone();
    v[12..16].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
    assert!(matches!(FrameParser::new(&v, MAX_PAYLOAD).next_frame(), Err(ProtoError::TooLong { .. })));
    // Unknown op is framed fine but fails validation (answered with ENOSYS).
    let mut v = b.clone();
    v[4..6].copy_from_slice(&0x7777u16.to_le_bytes());
    let f = FrameParser::new(&v, MAX_PAYLOAD).next_frame().unwrap().unwrap();
    assert_eq!(validate_frame(&f.header, f.payload), Err(ProtoError::UnknownOp(0x7777)));
    // A payload too short for its op fails validation (answered with EBADMSG).
    let mut short = Vec::new();
    FrameHeader::request(Op::READ, 2, 3).push(&mut short);
    short.extend_from_slice(&[1, 2, 3]);
    let f = FrameParser::new(&short, MAX_PAYLOAD).next_frame().unwrap().unwrap();
    assert!(validate_frame(&f.header, f.payload).is_err());
    // A truncated frame is simply incomplete.
    assert!(FrameParser::new(&b[..b.len() - 1], MAX_PAYLOAD).next_frame().unwrap().is_none());
}

#[test]
fn strings_with_nul_and_long_paths_rejected() {
    let mut b = Vec::new();
    PathReq { ctx: ReqCtx::default(), groups: Groups::EMPTY, path: Path(b"a\0b") }.encode(&mut b);
    assert_eq!(PathReq::decode(&b).unwrap_err(), ProtoError::BadString("path"));
    let long = vec![b'a'; MAX_PATH + 1];
    let mut b = Vec::new();
    PathReq { ctx: ReqCtx::default(), groups: Groups::EMPTY, path: Path(&long) }.encode(&mut b);
    assert!(matches!(PathReq::decode(&b), Err(ProtoError::TooLong { .. })));
    let many: Vec<u32> = (0..65).collect();
    let mut b = Vec::new();
    PathReq { ctx: ReqCtx::default(), groups: Groups::Ids(&many), path: Path(b"x") }.encode(&mut b);
    assert!(matches!(PathReq::decode(&b), Err(ProtoError::TooLong { .. })));
}

#[test]
fn directory_entries_iterate() {
    let mut recs = Vec::new();
    for i in 0..10u64 {
        DirEntry { ino: i, cookie: i + 1, dtype: 8, name: Name(format!("f{i}").as_bytes()) }.encode(&mut recs);
    }
    let names: Vec<String> =
        RecordIter::<DirEntry>::new(&recs).map(|e| e.unwrap().name.display().into_owned()).collect();
    assert_eq!(names.len(), 10);
    assert_eq!(names[9], "f9");
    // A corrupt record stops iteration with an error, never a panic.
    let mut bad = recs.clone();
    bad.truncate(recs.len() - 1);
    assert!(RecordIter::<DirEntry>::new(&bad).any(|r| r.is_err()));
}
