//! `larmon inspect`: what a LArPix file holds — kind, version, record layout, counts, time span;
//! for an ndlar_flow file its events, hits, t0 and which hit product larmon reads.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use larmon_ingest::read::{
    FileKind, FlowFileReader, LarpixReader, PacketLayout, ReadOptions, is_flow_file,
};
use serde::Serialize;

use crate::progress;

/// Summarise raw, packet or ndlar_flow files: kind, version, layout, counts, time span.
///
/// Raw and packet files: every row is read — format version, record layout, row counts,
/// packets by type, io_groups, time span and parity errors. ndlar_flow files: events
/// (triggered or not), calibrated hits and which product larmon reads, io_groups, time span.
///
/// Examples:
///   larmon inspect run.h5
///   larmon inspect --json run.h5 | jq '.[0].packets_by_type'
///   larmon inspect flow-output.hdf5
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

/// What `inspect` reports about an ndlar_flow file.
#[derive(Serialize)]
pub struct FlowSummary {
    path: PathBuf,
    size_bytes: u64,
    kind: &'static str,
    /// The hit product larmon reads (`charge/calib_final_hits` or `charge/calib_prompt_hits`).
    hits_product: &'static str,
    /// Whether each hit's raw ADC is there (larmon's own charge) or flow's Q_raw is used.
    raw_adc: bool,
    events: u64,
    /// Events with an external-trigger t0.
    triggered_events: u64,
    hits: u64,
    /// Hits the events reference (hits outside any event are not read).
    hits_in_events: u64,
    io_groups: BTreeSet<u8>,
    first_unix_time: Option<u64>,
    last_unix_time: Option<u64>,
}

/// One file's summary, whatever its kind.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Summary {
    /// Raw or packet file.
    Larpix(Box<FileSummary>),
    /// ndlar_flow file.
    Flow(FlowSummary),
}

pub fn summarise_flow(path: &PathBuf) -> Result<FlowSummary> {
    let mut reader = FlowFileReader::open(path)?;
    let span = reader.unix_span();
    let mut s = FlowSummary {
        path: path.clone(),
        size_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        kind: "ndlar_flow",
        hits_product: reader.hits_kind().group(),
        raw_adc: reader.has_raw_adc(),
        events: reader.events() as u64,
        triggered_events: 0,
        hits: reader.hit_rows(),
        hits_in_events: 0,
        io_groups: BTreeSet::new(),
        first_unix_time: span.map(|s| s.0),
        last_unix_time: span.map(|s| s.1),
    };
    let bar = progress::bar(s.events, "events");
    bar.set_prefix("reading");
    while let Some(events) = reader.next_events(1024)? {
        for e in &events {
            s.triggered_events += u64::from(e.t0.is_some_and(|(_, t)| t == 1) || e.n_ext_trigs > 0);
            s.hits_in_events += e.hits.len() as u64;
            s.io_groups.extend(e.hits.iter().map(|h| h.io_group as u8));
        }
        bar.set_position(reader.events_read() as u64);
    }
    bar.finish_and_clear();
    Ok(s)
}

/// The `time span` line of both kinds of file.
fn print_span(span: Option<(u64, u64)>, none: &str) {
    match span {
        Some((first, last)) => println!(
            "  time span       {first} .. {last} Unix s ({} s)",
            last.saturating_sub(first)
        ),
        None => println!("  time span       ({none})"),
    }
}

fn print_flow_text(s: &FlowSummary) {
    println!("{}", s.path.display());
    println!("  kind            ndlar_flow output, {} bytes", s.size_bytes);
    println!(
        "  hits            {} in {} ({} in events); charge from {}",
        s.hits,
        s.hits_product,
        s.hits_in_events,
        if s.raw_adc { "the raw ADC (charge/raw_hits)" } else { "flow's Q_raw" }
    );
    println!("  events          {} ({} with an external trigger)", s.events, s.triggered_events);
    let groups: Vec<String> = s.io_groups.iter().map(u8::to_string).collect();
    println!("  io_groups       {}", groups.join(", "));
    print_span(s.first_unix_time.zip(s.last_unix_time), "no events");
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
    print_span(s.first_unix_time.zip(s.last_unix_time), "no timestamp rows");
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
        let summary = if is_flow_file(path) {
            Summary::Flow(summarise_flow(path)?)
        } else {
            Summary::Larpix(Box::new(summarise(path)?))
        };
        if !args.json {
            match &summary {
                Summary::Larpix(s) => print_text(s),
                Summary::Flow(s) => print_flow_text(s),
            }
        }
        summaries.push(summary);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    }
    Ok(())
}
