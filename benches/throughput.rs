//! Parser and replay-pipeline throughput over a 2M-line realistic corpus
//! (see corpus.rs). `cargo bench --bench throughput`; divan reports lines/s
//! (items) and bytes/s next to the time per pass.

#[path = "corpus.rs"]
mod corpus;

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use gtp5g_operator::parse::{parse_line, parse_message, Line, LineBuffer, DEFAULT_MAX_LINE};
use gtp5g_operator::pipeline::Pipeline;
use gtp5g_operator::track::procfs::NoProc;
use gtp5g_operator::track::{Limits, Targets, Tracker};
use std::sync::LazyLock;

const LINES: usize = 2_000_000;
const SEED: u64 = 1;
/// What the daemon's reader hands the pipeline from a file.
const CHUNK: usize = 64 * 1024;

static CORPUS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut out = Vec::with_capacity(LINES * 120);
    corpus::write(&mut out, LINES, SEED).expect("writing to a Vec cannot fail");
    out
});

fn main() {
    divan::main();
}

fn counters<'a, 'b>(bencher: Bencher<'a, 'b>) -> Bencher<'a, 'b> {
    bencher.counter(ItemsCount::new(LINES)).counter(BytesCount::new(CORPUS.len()))
}

/// parse_line + parse_message on every line, one core, no tracking.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn parse(bencher: Bencher) {
    counters(bencher).bench(|| {
        let mut events = 0usize;
        // The daemon's own memchr framing, handed the corpus in one piece.
        LineBuffer::new(DEFAULT_MAX_LINE).push(&CORPUS, |line| {
            if let Ok(Line::Trace(t)) = parse_line(line) {
                if t.is_printk() && parse_message(t.message).is_ok() {
                    events += 1;
                }
            }
        });
        black_box(events)
    });
}

/// What `gtp5g-operator replay` does minus file I/O: 64 KiB chunks through
/// Pipeline::push into a Tracker with NoProc.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn replay_pipeline(bencher: Bencher) {
    counters(bencher).bench(|| {
        let mut pipeline = Pipeline::new(DEFAULT_MAX_LINE);
        let mut tracker =
            Tracker::new(Targets::new(&["nr-gnb", "nr-ue"]), Limits::default(), NoProc);
        for chunk in CORPUS.chunks(CHUNK) {
            pipeline.push(chunk, &mut tracker);
        }
        pipeline.finish(&mut tracker);
        black_box((pipeline.take_counts(), tracker.stats()))
    });
}
