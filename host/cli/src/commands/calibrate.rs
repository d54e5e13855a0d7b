//! `larmon calibrate`: packets (or an ndlar_flow file) -> calibrated hits and events, exported
//! for analysts (the stream comes from `larmon_pipeline::input::charge::stream_charge_file`;
//! this writes it to a file).

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::FileWriter;
use larmon_pipeline::input::charge::{RunCalibration, stream_charge_file};
use larmon_pipeline::streams::Producer;
use larmon_pipeline::{LarmonConfig, Stream};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::progress::TerminalProgress;

/// Calibrate a raw or packet file into hits, events and tracks; export them for analysts.
///
/// Calibration: PPS rollover, events and t0 from external triggers,
/// hits in ke- with pixel position and drift coordinate, straight tracks and their dQ/dx
/// segments. An ndlar_flow file gives the same streams from flow's events, t0 and hit
/// positions, with larmon's charge from the raw ADC (schema metadata `larmon.calibration`
/// says which). Prints a summary; with --export, writes one stream as an Arrow IPC file (.arrow:
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
///   larmon calibrate flow-output.hdf5 --export hits.parquet       (ndlar_flow file)
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw, packet or ndlar_flow HDF5 file.
    input: PathBuf,
    /// larmon's configuration (TOML: the detector description; the [plugins] and [checks] tables
    /// `larmon run` reads are accepted and not used); the built-in 2x2-like default otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Built-in detector: 2x2 (the default), single-module, sim-module (the simulation
    /// fixtures' module); replaces `detector` of the configuration. `larmon detector show`
    /// prints what it holds.
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
    /// Write the chosen stream to this file: Arrow IPC (.arrow) or Parquet (.parquet).
    #[arg(long, value_name = "OUT.{arrow,parquet}")]
    export: Option<PathBuf>,
    /// Stream to export: packets, hits, events, tracks, track-segments, track-pixels or pixels
    /// (`larmon streams` lists their columns).
    #[arg(long, default_value = "hits", value_parser = charge_stream)]
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
    /// Opens the writer with the schema of the first batch (flow batches carry a metadata mark).
    fn create(path: &std::path::Path, format: &ExportFormat, schema: SchemaRef) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(match format {
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

/// A stream of one charge file by name (`track-segments` or `track_segments`): what
/// `calibrate` can export.
fn charge_stream(text: &str) -> Result<Stream, String> {
    Stream::from_name(&text.replace('-', "_"))
        .filter(|s| s.producer() != Producer::LightIngest)
        .ok_or_else(|| {
            let names: Vec<String> = Stream::ALL
                .iter()
                .filter(|s| s.producer() != Producer::LightIngest)
                .map(|s| s.name().replace('_', "-"))
                .collect();
            format!("not a stream of a charge file; one of: {}", names.join(", "))
        })
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    // The one configuration file of larmon (its [plugins] and [checks] are not used here).
    let config = LarmonConfig::load_for(args.config.as_deref(), args.detector.as_deref())?;
    let calibration = RunCalibration::new(config.detector).context("setting up the calibration")?;
    let export = match &args.export {
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
            Some((path.as_path(), format))
        }
        None => None,
    };
    let mut writer: Option<Exporter> = None;
    let counts = stream_charge_file(
        &args.input,
        &calibration,
        args.stream,
        &TerminalProgress,
        |batch| -> Result<()> {
            if let Some((path, format)) = &export {
                if writer.is_none() {
                    writer = Some(Exporter::create(path, format, batch.schema())?);
                }
                writer.as_mut().expect("just created").write(&batch)?;
            }
            Ok(())
        },
    )?;
    if let Some((path, format)) = &export {
        let writer = match writer {
            Some(w) => w,
            None => Exporter::create(path, format, args.stream.schema())?,
        };
        writer.finish()?;
    }
    let (hits, events, stats) = (counts.hits, counts.events, &counts.stats);
    if counts.kind == "ndlar_flow" {
        println!(
            "{}: ndlar_flow file, {} hits read -> {hits} hits ({} outside the geometry), {events} events \
             ({} triggered, {} self-triggered), {} tracks, in {:.2} s\ncalibration: {}",
            args.input.display(),
            stats.rows,
            stats.packets_outside_geometry,
            stats.triggered_events,
            stats.self_triggered_events,
            stats.tracks,
            started.elapsed().as_secs_f64(),
            counts.calibration,
        );
    } else {
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
    }
    if let Some(path) = &args.export {
        println!("wrote {} ({})", path.display(), args.stream.name());
    }
    Ok(())
}
