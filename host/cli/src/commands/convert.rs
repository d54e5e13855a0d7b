//! `larmon convert`: raw PACMAN file (or any 2.x packet file) -> canonical 2.4 packet file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use larmon_ingest::read::{FileKind, LarpixReader, ReadOptions};
use larmon_ingest::write::{PacketFileWriter, WriteOptions};

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
    let mut reader = LarpixReader::open(&args.input, &ReadOptions::default())?;
    let options = WriteOptions { overwrite: args.force, gzip: args.gzip, ..Default::default() };
    let mut writer = PacketFileWriter::create(&args.output, &options)?;
    let unit = match reader.kind() {
        FileKind::Raw => "messages",
        FileKind::Packets => "rows",
    };
    let bar = progress::bar(reader.progress_total(), unit);
    bar.set_prefix("converting");
    match &mut reader {
        // Row format to row format: decoded rows go straight into records.
        LarpixReader::Raw(raw) => {
            let mut rows = Vec::new();
            while raw.read_rows_into(&mut rows)? {
                writer.append_rows(&rows)?;
                bar.set_position(raw.messages_read());
            }
        }
        LarpixReader::Packets(packets) => {
            let mut batch = larmon_ingest::PacketColumns::default();
            while packets.read_batch_into(&mut batch)? {
                writer.append(&batch)?;
                bar.set_position(packets.rows_read());
            }
        }
    }
    bar.finish_and_clear();
    let rows = writer.rows();
    let output = writer.finish().with_context(|| format!("finishing {}", args.output.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if let LarpixReader::Raw(raw) = &reader {
        let stats = raw.stats();
        if stats.unknown_words > 0 || stats.non_data_messages > 0 {
            let first = stats
                .first_unknown_word
                .map(|(m, w, b)| format!(" (first: msgs row {m}, word {w}, type byte 0x{b:02x})"))
                .unwrap_or_default();
            eprintln!(
                "larmon: warning: {}: skipped {} words of unknown type{first} and the words of {} non-data messages",
                args.input.display(),
                stats.unknown_words,
                stats.non_data_messages
            );
        }
    }
    println!(
        "{} -> {}: {rows} rows in {seconds:.2} s ({:.1} M rows/s)",
        args.input.display(),
        output.display(),
        rows as f64 / seconds.max(1e-9) / 1e6
    );
    Ok(())
}
