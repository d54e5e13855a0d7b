//! `larmon inspect`: what a LArPix file holds — kind, version, record layout, counts, time span.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use larmon_ingest::read::{FileKind, LarpixReader, PacketLayout, ReadOptions};
use serde::Serialize;

use crate::progress;

/// Summarise raw or packet files: kind, version, layout, counts, time span, parity errors.
///
/// Reads every row: format version, record layout, row counts, packets by type, io_groups,
/// time span and parity errors.
///
/// Examples:
///   larmon inspect run.h5
///   larmon inspect --json run.h5 | jq .packets_by_type
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Files to inspect.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON (one object per file, in an array) instead of text.
    #[arg(long)]
    json: bool,
}

/// Everything `inspect` reports about one file.
#[derive(Serialize)]
pub struct FileSummary {
    path: PathBuf,
    size_bytes: u64,
    kind: FileKind,
    format_version: Option<String>,
    io_version: Option<String>,
    header_created: Option<f64>,
    header_modified: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layout: Option<PacketLayout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown_words: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    non_data_messages: Option<u64>,
    rows: u64,
    /// Rows per packet_type 0..=7 (index = type); types above 7 are counted in `other_types`.
    packets_by_type: [u64; 8],
    other_types: u64,
    io_groups: BTreeSet<u8>,
    first_unix_time: Option<u64>,
    last_unix_time: Option<u64>,
    /// Rows of type 0-3 whose 64-bit packet fails the odd-parity check.
    parity_errors: u64,
}

pub fn summarise(path: &PathBuf) -> Result<FileSummary> {
    let size_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut reader = LarpixReader::open(path, &ReadOptions::default())?;
    let mut s = FileSummary {
        path: path.clone(),
        size_bytes,
        kind: reader.kind(),
        format_version: None,
        io_version: None,
        header_created: None,
        header_modified: None,
        layout: None,
        messages: None,
        unknown_words: None,
        non_data_messages: None,
        rows: 0,
        packets_by_type: [0; 8],
        other_types: 0,
        io_groups: BTreeSet::new(),
        first_unix_time: None,
        last_unix_time: None,
        parity_errors: 0,
    };
    match &reader {
        LarpixReader::Raw(r) => {
            let (v, io) = r.versions();
            s.format_version = v.map(str::to_owned);
            s.io_version = io.map(str::to_owned);
            (s.header_created, s.header_modified) = r.header_times();
            s.messages = Some(r.messages());
        }
        LarpixReader::Packets(r) => {
            s.format_version = r.version().map(str::to_owned);
            (s.header_created, s.header_modified) = r.header_times();
            s.layout = Some(r.layout().clone());
        }
    }
    let bar = progress::bar(reader.progress_total(), "units");
    bar.set_prefix("reading");
    let mut seen_groups = [false; 256];
    let mut batch = larmon_ingest::PacketColumns::default();
    while reader.read_batch_into(&mut batch)? {
        s.rows += batch.len() as u64;
        for i in 0..batch.len() {
            let kind = batch.packet_type[i];
            match s.packets_by_type.get_mut(kind as usize) {
                Some(n) => *n += 1,
                None => s.other_types += 1,
            }
            seen_groups[batch.io_group[i] as usize] = true;
            if kind <= 3 && batch.valid_parity[i] == 0 {
                s.parity_errors += 1;
            }
            if kind == 4 {
                let t = batch.timestamp[i];
                s.first_unix_time = Some(s.first_unix_time.map_or(t, |f| f.min(t)));
                s.last_unix_time = Some(s.last_unix_time.map_or(t, |l| l.max(t)));
            }
        }
        bar.set_position(reader.progress_done());
    }
    bar.finish_and_clear();
    s.io_groups = (0..=255u8).filter(|g| seen_groups[*g as usize]).collect();
    if let LarpixReader::Raw(r) = &reader {
        s.unknown_words = Some(r.stats().unknown_words);
        s.non_data_messages = Some(r.stats().non_data_messages);
    }
    Ok(s)
}

const TYPE_NAMES: [&str; 8] =
    ["data", "test", "config write", "config read", "timestamp", "message", "sync", "trigger"];

fn print_text(s: &FileSummary) {
    println!("{}", s.path.display());
    let kind = match s.kind {
        FileKind::Raw => "raw PACMAN messages",
        FileKind::Packets => "LArPix+HDF5 packets",
    };
    println!("  kind            {kind}, {} bytes", s.size_bytes);
    println!(
        "  format version  {}{}",
        s.format_version.as_deref().unwrap_or("(none)"),
        s.io_version.as_deref().map(|v| format!(" (io_version {v})")).unwrap_or_default()
    );
    if let Some(layout) = &s.layout {
        println!(
            "  record layout   {} bytes, {} members",
            layout.record_size,
            layout.members.len()
        );
        for m in &layout.members {
            println!("    {:>3}  {:<26} {}", m.offset, m.name, m.dtype);
        }
        if !layout.missing.is_empty() {
            println!("    missing (read as 0): {}", layout.missing.join(", "));
        }
        if !layout.ignored.is_empty() {
            println!("    not used: {}", layout.ignored.join(", "));
        }
    }
    if let Some(m) = s.messages {
        println!("  messages        {m}");
    }
    println!("  rows            {}", s.rows);
    for (t, n) in s.packets_by_type.iter().enumerate().filter(|(_, n)| **n > 0) {
        println!("    type {t} {:<13} {n}", TYPE_NAMES[t]);
    }
    if s.other_types > 0 {
        println!("    other types       {}", s.other_types);
    }
    let groups: Vec<String> = s.io_groups.iter().map(u8::to_string).collect();
    println!("  io_groups       {}", groups.join(", "));
    match (s.first_unix_time, s.last_unix_time) {
        (Some(first), Some(last)) => println!(
            "  time span       {first} .. {last} Unix s ({} s)",
            last.saturating_sub(first)
        ),
        _ => println!("  time span       (no timestamp rows)"),
    }
    println!("  parity errors   {}", s.parity_errors);
    if let Some(n) = s.unknown_words.filter(|n| *n > 0) {
        println!("  unknown words   {n} (skipped)");
    }
    if let Some(n) = s.non_data_messages.filter(|n| *n > 0) {
        println!("  non-data msgs   {n} (words skipped)");
    }
}

pub fn run(args: Args) -> Result<()> {
    let mut summaries = Vec::new();
    for path in &args.files {
        let summary = summarise(path)?;
        if !args.json {
            print_text(&summary);
        }
        summaries.push(summary);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    }
    Ok(())
}
