//! `larmon convert`: raw PACMAN file (or any 2.x packet file) -> canonical 2.4 packet file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use larmon_ingest::convert::convert;
use larmon_ingest::read::ReadOptions;
use larmon_ingest::write::WriteOptions;

use crate::progress;

/// Convert a raw PACMAN file into a LArPix+HDF5 packet file (format 2.4).
///
/// The output has the rows larpix-control's `convert_rawhdf5_to_hdf5.py` writes, in the same
/// order: one timestamp row (type 4) per message, then one row per data, trigger and sync word.
/// A packet file of any 2.x layout (31/35/36-byte records) is rewritten in the canonical
/// 36-byte layout. The output is written to a temporary file and renamed when complete.
///
/// Example:
///   larmon convert raw_2024_07_08_12_00_00_CEST.h5 -o packets.h5
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw HDF5 file (`msgs`/`msg_headers`) or packet file to convert.
    input: PathBuf,
    /// Packet file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Overwrite OUTPUT if it exists.
    #[arg(short, long)]
    force: bool,
    /// Compress `packets` with gzip at this level (1-9); larpix-control writes it uncompressed.
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(1..=9))]
    gzip: Option<u8>,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let options = WriteOptions { overwrite: args.force, gzip: args.gzip, ..Default::default() };
    let bar = progress::bar(0, "units");
    bar.set_prefix("converting");
    let summary =
        convert(&args.input, &args.output, &ReadOptions::default(), &options, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .with_context(|| format!("converting {}", args.input.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(stats) =
        summary.decode_stats.filter(|s| s.unknown_words > 0 || s.non_data_messages > 0)
    {
        let first = stats
            .first_unknown_word
            .map(|(m, w, b)| format!(" (first: msgs row {m}, word {w}, type byte 0x{b:02x})"))
            .unwrap_or_default();
        eprintln!(
            "larmon: warning: {}: skipped {} words of unknown type{first} and the words of {} \
             non-data messages",
            args.input.display(),
            stats.unknown_words,
            stats.non_data_messages
        );
    }
    println!(
        "{} -> {}: {} rows in {seconds:.2} s ({:.1} M rows/s)",
        args.input.display(),
        summary.output.display(),
        summary.rows,
        summary.rows as f64 / seconds.max(1e-9) / 1e6
    );
    Ok(())
}
