//! `larmon calibrate`: packets -> calibrated hits and events, exported for analysts.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use arrow::ipc::writer::FileWriter;
use larmon_calibrate::output::{
    events_record_batch, events_schema, hits_record_batch, hits_schema, pixels_record_batch,
    pixels_schema, segments_record_batch, segments_schema, track_pixels_record_batch,
    track_pixels_schema, tracks_record_batch, tracks_schema,
};
use larmon_calibrate::{Calibrator, DetectorConfig};
use larmon_ingest::arrow::{packets_record_batch, packets_schema};
use larmon_ingest::read::{LarpixReader, ReadOptions};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::progress;

/// Calibrate a raw or packet file into hits, events and tracks; export them for analysts.
///
/// Calibration: PPS rollover, events and t0 from external triggers,
/// hits in ke- with pixel position and drift coordinate, straight tracks and their dQ/dx
/// segments. Prints a summary; with --export, writes one stream as an Arrow IPC file (.arrow:
/// pyarrow.ipc.open_file, polars.read_ipc) or a Parquet file (.parquet, snappy:
/// pandas.read_parquet, polars.read_parquet).
///
/// Examples:
///   larmon calibrate run.h5
///   larmon calibrate run.h5 --config 2x2.toml --export hits.arrow
///   larmon calibrate run.h5 --export hits.parquet
///   larmon calibrate run.h5 --export events.arrow --stream events
///   larmon calibrate run.h5 --export segments.arrow --stream track-segments
///   larmon calibrate run.h5 --export pixels.parquet --stream track-pixels
///   larmon calibrate run.h5 --export layout.arrow --stream pixels   (the geometry)
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw or packet HDF5 file.
    input: PathBuf,
    /// Detector configuration (TOML); the built-in 2x2-like default otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the chosen stream to this file: Arrow IPC (.arrow) or Parquet (.parquet).
    #[arg(long, value_name = "OUT.{arrow,parquet}")]
    export: Option<PathBuf>,
    /// Stream to export.
    #[arg(long, value_enum, default_value_t = Stream::Hits)]
    stream: Stream,
    /// Overwrite the export file if it exists.
    #[arg(short, long)]
    force: bool,
}

enum ExportFormat {
    ArrowIpc,
    Parquet,
}

/// The open export file.
enum Exporter {
    Ipc(FileWriter<BufWriter<File>>),
    Parquet(ArrowWriter<File>),
}

impl Exporter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Exporter::Ipc(w) => w.write(batch)?,
            Exporter::Parquet(w) => w.write(batch)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Exporter::Ipc(mut w) => w.finish()?,
            Exporter::Parquet(w) => {
                w.close()?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Stream {
    Packets,
    Hits,
    Events,
    Tracks,
    TrackSegments,
    TrackPixels,
    Pixels,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Packets => "packets",
            Stream::Hits => "hits",
            Stream::Events => "events",
            Stream::Tracks => "tracks",
            Stream::TrackSegments => "track_segments",
            Stream::TrackPixels => "track_pixels",
            Stream::Pixels => "pixels",
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let config = match &args.config {
        Some(path) => DetectorConfig::load(path)?,
        None => DetectorConfig::default(),
    };
    let mut calibrator = Calibrator::new(config).context("setting up the calibration")?;
    let mut writer = match &args.export {
        Some(path) => {
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("arrow") => ExportFormat::ArrowIpc,
                Some("parquet") => ExportFormat::Parquet,
                other => bail!(
                    "{}: export to .arrow (Arrow IPC) or .parquet, not {}",
                    path.display(),
                    other.map_or("a file without extension".into(), |e| format!(".{e}"))
                ),
            };
            if path.exists() && !args.force {
                bail!("{}: already exists (use --force to overwrite)", path.display());
            }
            let schema = match args.stream {
                Stream::Packets => packets_schema(),
                Stream::Hits => hits_schema(),
                Stream::Events => events_schema(),
                Stream::Tracks => tracks_schema(),
                Stream::TrackSegments => segments_schema(),
                Stream::TrackPixels => track_pixels_schema(),
                Stream::Pixels => pixels_schema(),
            };
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Some(match format {
                ExportFormat::ArrowIpc => {
                    Exporter::Ipc(FileWriter::try_new(BufWriter::new(file), &schema)?)
                }
                ExportFormat::Parquet => {
                    let props =
                        WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                    Exporter::Parquet(ArrowWriter::try_new(file, schema, Some(props))?)
                }
            })
        }
        None => None,
    };
    let mut write = |batch: RecordBatch| -> Result<()> {
        if let Some(w) = writer.as_mut().filter(|_| batch.num_rows() > 0) {
            w.write(&batch)?;
        }
        Ok(())
    };
    if args.stream == Stream::Pixels {
        write(pixels_record_batch(calibrator.geometry()))?;
    }
    let mut reader = LarpixReader::open(&args.input, &ReadOptions::default())?;
    let bar = progress::bar(reader.progress_total(), "units");
    bar.set_prefix("calibrating");
    let (mut hits, mut events) = (0usize, 0usize);
    let mut export = |done: larmon_calibrate::output::CalibratedBatch,
                      packets: Option<&larmon_ingest::PacketColumns>|
     -> Result<()> {
        hits += done.hits.len();
        events += done.events.len();
        match args.stream {
            Stream::Packets => {
                if let Some(p) = packets {
                    write(packets_record_batch(p.clone()))?;
                }
            }
            Stream::Hits => write(hits_record_batch(&done.hits))?,
            Stream::Events => write(events_record_batch(&done.events))?,
            Stream::Tracks => write(tracks_record_batch(&done.tracks))?,
            Stream::TrackSegments => write(segments_record_batch(&done.segments))?,
            Stream::TrackPixels => write(track_pixels_record_batch(&done.track_pixels))?,
            Stream::Pixels => {}
        }
        Ok(())
    };
    while let Some(batch) = reader.next_batch()? {
        let done = calibrator.push(&batch);
        export(done, Some(&batch))?;
        bar.set_position(reader.progress_done());
    }
    export(calibrator.finish(), None)?;
    bar.finish_and_clear();
    if let Some(w) = writer {
        w.finish()?;
    }
    let stats = calibrator.stats();
    println!(
        "{}: {} rows -> {hits} hits ({} packets; {} outside the geometry, {} bad parity), {events} events \
         ({} triggered, {} self-triggered), {} tracks, {} PPS syncs, in {:.2} s",
        args.input.display(),
        stats.rows,
        stats.data_packets,
        stats.packets_outside_geometry,
        stats.bad_parity_packets,
        stats.triggered_events,
        stats.self_triggered_events,
        stats.tracks,
        stats.pps_syncs,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.export {
        println!("wrote {} ({})", path.display(), args.stream.name());
    }
    Ok(())
}
