//! Splits a byte stream that arrives in arbitrary chunks into lines, with a
//! bound on line length so that a missing newline cannot grow memory.

use nom::{Err, IResult, Needed};

/// Default bound on one line; trace_pipe lines are a few hundred bytes.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Streaming step: one line (without its `\n`) and the rest, or
/// `Incomplete` when the input holds no newline yet and the caller must
/// read more.
pub fn next_line(input: &[u8]) -> IResult<&[u8], &[u8]> {
    match memchr::memchr(b'\n', input) {
        Some(end) => Ok((&input[end + 1..], &input[..end])),
        None => Err(Err::Incomplete(Needed::Unknown)),
    }
}

/// Reassembles lines across chunks. Complete lines inside a chunk are handed
/// out in place (no copy); only a partial tail is kept, and a tail longer than
/// `max_line` is dropped together with the rest of its line.
#[derive(Debug)]
pub struct LineBuffer {
    pending: Vec<u8>,
    max_line: usize,
    discarding: bool,
    oversized: u64,
}

impl LineBuffer {
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            pending: Vec::new(),
            max_line: max_line.max(1),
            discarding: false,
            oversized: 0,
        }
    }

    /// Lines dropped so far for exceeding the bound.
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    /// Bytes held for a line not yet complete.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn push(&mut self, chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        let mut input = chunk;
        if !self.pending.is_empty() || self.discarding {
            match next_line(input) {
                Ok((rest, head)) => {
                    self.complete_pending(head, &mut on_line);
                    input = rest;
                }
                Err(_) => {
                    self.hold(input);
                    return;
                }
            }
        }
        while let Ok((rest, line)) = next_line(input) {
            self.emit(line, &mut on_line);
            input = rest;
        }
        self.hold(input);
    }

    /// End of input: a last line without a newline still counts.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) {
        if !self.discarding && !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            on_line(&line);
        }
        self.pending.clear();
        self.discarding = false;
    }

    fn complete_pending(&mut self, head: &[u8], on_line: &mut impl FnMut(&[u8])) {
        if self.discarding {
            self.discarding = false;
            return;
        }
        if self.pending.len() + head.len() > self.max_line {
            self.oversized += 1;
        } else {
            self.pending.extend_from_slice(head);
            on_line(&self.pending);
        }
        self.pending.clear();
    }

    fn emit(&mut self, line: &[u8], on_line: &mut impl FnMut(&[u8])) {
        if line.len() > self.max_line {
            self.oversized += 1;
        } else {
            on_line(line);
        }
    }

    fn hold(&mut self, partial: &[u8]) {
        if self.discarding || partial.is_empty() {
            return;
        }
        if self.pending.len() + partial.len() > self.max_line {
            self.oversized += 1;
            self.pending.clear();
            self.discarding = true;
        } else {
            self.pending.extend_from_slice(partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(buf: &mut LineBuffer, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for c in chunks {
            buf.push(c, |l| out.push(l.to_vec()));
        }
        buf.finish(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn next_line_says_incomplete_without_newline() {
        assert!(matches!(next_line(b"abc"), Err(Err::Incomplete(_))));
        assert_eq!(next_line(b"ab\ncd").unwrap(), (&b"cd"[..], &b"ab"[..]));
    }

    #[test]
    fn line_split_across_reads_is_completed() {
        let mut b = LineBuffer::new(100);
        let out = collect(&mut b, &[b"hel", b"lo\nwor", b"ld\n"]);
        assert_eq!(out, vec![b"hello".to_vec(), b"world".to_vec()]);
        assert_eq!(b.pending_len(), 0);
    }

    #[test]
    fn oversized_line_is_dropped_and_counted_neighbours_kept() {
        let mut b = LineBuffer::new(8);
        let out = collect(&mut b, &[b"ok\n0123456789", b"abcdef", b"xyz\nnext\n"]);
        assert_eq!(out, vec![b"ok".to_vec(), b"next".to_vec()]);
        assert_eq!(b.oversized(), 1);
    }

    #[test]
    fn oversized_line_inside_one_chunk() {
        let mut b = LineBuffer::new(4);
        let out = collect(&mut b, &[b"a\n0123456789\nb\n"]);
        assert_eq!(out, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(b.oversized(), 1);
    }

    #[test]
    fn pending_plus_head_over_bound_is_dropped() {
        let mut b = LineBuffer::new(6);
        let out = collect(&mut b, &[b"abcd", b"efgh\nz\n"]);
        assert_eq!(out, vec![b"z".to_vec()]);
        assert_eq!(b.oversized(), 1);
    }

    #[test]
    fn last_line_without_newline_is_kept_at_finish() {
        let mut b = LineBuffer::new(100);
        assert_eq!(collect(&mut b, &[b"a\nb"]), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_lines(
            lines in proptest::collection::vec(proptest::collection::vec(0u8..=255u8, 0..40), 0..30),
            cuts in proptest::collection::vec(0usize..2000, 0..20),
            max in 1usize..50,
        ) {
            let data: Vec<u8> = lines.iter().flat_map(|l| {
                let mut l: Vec<u8> = l.iter().copied().filter(|&b| b != b'\n').collect();
                l.push(b'\n');
                l
            }).collect();
            let mut whole = LineBuffer::new(max);
            let expected = collect(&mut whole, &[&data]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts { chunks.push(&data[at..c]); at = c; }
            chunks.push(&data[at..]);
            let mut split = LineBuffer::new(max);
            let got = collect(&mut split, &chunks);
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(split.oversized(), whole.oversized());
            prop_assert!(got.iter().all(|l| l.len() <= max));
        }
    }
}
