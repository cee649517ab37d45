//! Writes the benchmark corpus to a file for `gtp5g-operator replay` and
//! peak-RSS measurements:
//!
//!     cargo run --release --example gen-corpus -- LINES SEED OUT
//!
//! The bytes equal what `cargo bench` parses for the same LINES and SEED.

#[path = "../benches/corpus.rs"]
mod corpus;

use std::io::BufWriter;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [lines, seed, out] = args.as_slice() else {
        anyhow::bail!("usage: gen-corpus LINES SEED OUT");
    };
    let lines: usize = lines.parse()?;
    let seed: u64 = seed.parse()?;
    let mut file = BufWriter::new(std::fs::File::create(out)?);
    corpus::write(&mut file, lines, seed)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}
