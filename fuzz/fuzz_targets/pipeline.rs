//! The whole replay path: the input is split into chunks of a size taken
//! from its first byte and pushed through Pipeline into a Tracker that knows
//! no /proc, and through a bare LineBuffer whose bound is checked after
//! every chunk.
#![no_main]

use gtp5g_operator::parse::LineBuffer;
use gtp5g_operator::pipeline::Pipeline;
use gtp5g_operator::track::procfs::NoProc;
use gtp5g_operator::track::{Limits, Targets, Tracker};
use libfuzzer_sys::fuzz_target;

/// Small, so that the fuzzer reaches the oversized-line paths often.
const MAX_LINE: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let limits = Limits { max_processes: 8, max_threads: 32 };
    let mut tracker = Tracker::new(Targets::new(&["nr-gnb", "nr-ue"]), limits, NoProc);
    let mut pipeline = Pipeline::new(MAX_LINE);
    let mut lines = LineBuffer::new(MAX_LINE);
    for piece in rest.chunks(usize::from(split).max(1)) {
        pipeline.push(piece, &mut tracker);
        lines.push(piece, |l| assert!(l.len() <= MAX_LINE));
        assert!(lines.pending_len() <= MAX_LINE);
    }
    pipeline.finish(&mut tracker);
    let counts = pipeline.take_counts();
    assert_eq!(counts.parsed + counts.malformed, counts.lines);
    let s = tracker.stats();
    assert!(s.processes <= limits.max_processes && s.threads <= limits.max_threads);
});
