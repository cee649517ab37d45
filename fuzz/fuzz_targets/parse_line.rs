//! parse_line on any bytes, and parse_message on whatever it calls the
//! message (and on the raw input, since messages come from BPF programs).
#![no_main]

use gtp5g_operator::parse::{parse_line, parse_message, Line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Line::Trace(t)) = parse_line(data) {
        let _ = t.is_printk();
        let _ = parse_message(t.message);
    }
    let _ = parse_message(data);
});
