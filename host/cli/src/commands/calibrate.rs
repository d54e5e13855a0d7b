//! `larmon calibrate`: packets -> calibrated hits and events, exported for analysts.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use arrow::ipc::writer::FileWriter;
use larmon_calibrate::Calibrator;
use larmon_calibrate::output::pixels_record_batch;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_pipeline::LarmonConfig;
use larmon_pipeline::streams::{Stream as PipelineStream, calibrated_batch};
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
    /// larmon's configuration (TOML: the detector description; the [plugins] and [checks] tables
    /// `larmon run` reads are accepted and not used); the built-in 2x2-like default otherwise.
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

/// The streams `calibrate` can export (the pipeline's streams of one charge file).
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
    /// The pipeline's stream.
    fn stream(self) -> PipelineStream {
        match self {
            Stream::Packets => PipelineStream::Packets,
            Stream::Hits => PipelineStream::Hits,
            Stream::Events => PipelineStream::Events,
            Stream::Tracks => PipelineStream::Tracks,
            Stream::TrackSegments => PipelineStream::TrackSegments,
            Stream::TrackPixels => PipelineStream::TrackPixels,
            Stream::Pixels => PipelineStream::Pixels,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    // The one configuration file of larmon (its [plugins] and [checks] are not used here).
    let config = LarmonConfig::load(args.config.as_deref())?;
    let mut calibrator = Calibrator::new(config.detector).context("setting up the calibration")?;
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
            let schema = args.stream.stream().schema();
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
        match args.stream.stream() {
            PipelineStream::Packets => {
                if let Some(p) = packets {
                    write(packets_record_batch(p.clone()))?;
                }
            }
            stream => {
                if let Some(batch) = calibrated_batch(&done, stream) {
                    write(batch)?;
                }
            }
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
        println!("wrote {} ({})", path.display(), args.stream.stream().name());
    }
    Ok(())
}
