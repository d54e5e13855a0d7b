//! The Python module `larmon`: larmon's readers, calibration and plugin runs for analysts, with
//! every stream handed to Python as a `pyarrow.Table` through the Arrow C data interface (no
//! copy of the columns).
//!
//! ```python
//! import larmon
//! packets = larmon.read("binary-0060154-2025_11_20.h5")            # pyarrow.Table
//! hits = larmon.calibrate("run.h5", stream="hits", config="2x2.toml")
//! report = larmon.run(["run.h5"], out="reports")                     # report.json as a dict
//! larmon.streams()                                                   # the stream names
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::pyarrow::{IntoPyArrow, Table, ToPyArrow};
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::light::is_light_file;
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_pipeline::input::charge::{RunCalibration, stream_charge_file};
use larmon_pipeline::input::light::{load_channel_map, process_light_file};
use larmon_pipeline::streams::Producer;
use larmon_pipeline::{
    LarmonConfig, PipelineError, PluginOptions, RunOptions, RunOutcome, Shard, Silent, Stream,
    run_files,
};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyAny;

/// A larmon error as a Python exception: file problems as `OSError`, the rest as `ValueError`.
fn to_py(err: impl std::error::Error + 'static) -> PyErr {
    let text = larmon_pipeline::error_text(&err);
    let io = {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut found = false;
        while let Some(c) = cause {
            found |= c.is::<std::io::Error>();
            cause = c.source();
        }
        found
    };
    if io { PyOSError::new_err(text) } else { PyValueError::new_err(text) }
}

/// The stream of a name, or a `ValueError` listing the names.
fn stream_named(name: &str) -> PyResult<Stream> {
    Stream::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
        PyValueError::new_err(format!("no stream {name:?}; larmon's streams: {}", names.join(", ")))
    })
}

/// Batches of one schema as a `pyarrow.Table`.
fn table(py: Python<'_>, stream: Stream, batches: Vec<RecordBatch>) -> PyResult<Bound<'_, PyAny>> {
    // Flow batches carry a `larmon.calibration` mark in their schema: keep it.
    let schema = batches.first().map_or_else(|| stream.schema(), |b| b.schema());
    let table =
        Table::try_new(batches, schema).map_err(|e| PyValueError::new_err(e.to_string()))?;
    table.into_pyarrow(py)
}

/// A charge file's stream: packets (read only, nothing calibrated), a calibrated stream, or the
/// detector's pixels.
fn charge_stream(
    path: &Path,
    stream: Stream,
    config: &LarmonConfig,
) -> Result<Vec<RecordBatch>, PyErr> {
    if stream == Stream::Packets {
        let reader = LarpixReader::open(path, &ReadOptions::default()).map_err(to_py)?;
        return reader.map(|batch| batch.map(packets_record_batch).map_err(to_py)).collect();
    }
    let calibration = RunCalibration::new(config.detector.clone()).map_err(to_py)?;
    let mut batches = Vec::new();
    stream_charge_file(path, &calibration, stream, &Silent, |batch| -> Result<(), PipelineError> {
        batches.push(batch);
        Ok(())
    })
    .map_err(to_py)?;
    Ok(batches)
}

/// Reads a light file's stream (light events are matched to no charge trigger here).
fn light_stream(path: &Path, stream: Stream) -> Result<Vec<RecordBatch>, PyErr> {
    let map = load_channel_map(None, &LarmonConfig::default().detector).map_err(to_py)?;
    let mut batches = Vec::new();
    process_light_file(path, 0, &map, Vec::new(), &mut |s, batch| {
        if s == stream && batch.num_rows() > 0 {
            batches.push(batch);
        }
    })
    .map_err(to_py)?;
    Ok(batches)
}

/// read(path, stream=None, config=None) -> pyarrow.Table
///
/// Reads any larmon input into a pyarrow.Table: a raw PACMAN or packet file (default stream
/// "packets"; a calibrated stream such as "hits", "events", "tracks" calibrates it with the
/// detector description of `config`, a larmon TOML file) or a light file (MPD .data or flow
/// HDF5; default stream "light_events", or "light_waveforms").
#[pyfunction]
#[pyo3(signature = (path, stream=None, config=None))]
fn read<'py>(
    py: Python<'py>,
    path: PathBuf,
    stream: Option<&str>,
    config: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let light = is_light_file(&path);
    let default = if light { Stream::LightEvents } else { Stream::Packets };
    let stream = stream.map(stream_named).transpose()?.unwrap_or(default);
    let batches = py.detach(|| -> PyResult<Vec<RecordBatch>> {
        match (light, stream.producer()) {
            (true, Producer::LightIngest) => light_stream(&path, stream),
            (false, Producer::ChargeIngest | Producer::Calibration | Producer::Geometry) => {
                let config = LarmonConfig::load(config.as_deref()).map_err(to_py)?;
                charge_stream(&path, stream, &config)
            }
            _ => Err(PyValueError::new_err(format!(
                "{}: a {} file has no stream {:?}",
                path.display(),
                if light { "light" } else { "charge" },
                stream.name()
            ))),
        }
    })?;
    table(py, stream, batches)
}

/// calibrate(path, stream="hits", config=None) -> pyarrow.Table
///
/// Calibrates a raw or packet file (PPS rollover, events and t0, hits in ke- with x, y and the
/// drift coordinate z, tracks, dQ/dx segments) with the detector description of `config` (a
/// larmon TOML file; the built-in default otherwise) and returns one stream.
#[pyfunction]
#[pyo3(signature = (path, stream="hits", config=None))]
fn calibrate<'py>(
    py: Python<'py>,
    path: PathBuf,
    stream: &str,
    config: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let stream = stream_named(stream)?;
    if stream.producer() == Producer::LightIngest {
        return Err(PyValueError::new_err(format!("{stream} is not a calibrated charge stream")));
    }
    let batches = py.detach(|| {
        let config = LarmonConfig::load(config.as_deref()).map_err(to_py)?;
        charge_stream(&path, stream, &config)
    })?;
    table(py, stream, batches)
}

/// run(files, out, config=None, run=None, plugin_dir=None, plugins=(), plugin_timeout_s=10.0,
///     plugin_memory_mib=512, shard=None, cache_dir=None) -> dict
///
/// Runs the plot plugins over the files of one run, exactly as `larmon run` does, writes
/// out/<run>/report.json and the figures, and returns the report as a dict. With shard="I/N",
/// writes that shard's snapshots for a later `larmon merge` and returns None. Compiled plugins
/// are cached in `cache_dir` (default: $XDG_CACHE_HOME/larmon or ~/.cache/larmon).
#[pyfunction]
#[pyo3(signature = (files, out, config=None, run=None, plugin_dir=None, plugins=Vec::new(),
                    plugin_timeout_s=10.0, plugin_memory_mib=512, shard=None, cache_dir=None))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    files: Vec<PathBuf>,
    out: PathBuf,
    config: Option<PathBuf>,
    run: Option<String>,
    plugin_dir: Option<PathBuf>,
    plugins: Vec<PathBuf>,
    plugin_timeout_s: f64,
    plugin_memory_mib: usize,
    shard: Option<&str>,
    cache_dir: Option<PathBuf>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if files.is_empty() {
        return Err(PyValueError::new_err("run: give the files of one run"));
    }
    let shard = shard.map(Shard::parse).transpose().map_err(PyValueError::new_err)?;
    let text = py.detach(|| -> PyResult<Option<String>> {
        let config = LarmonConfig::load(config.as_deref()).map_err(to_py)?;
        if !(plugin_timeout_s.is_finite() && plugin_timeout_s > 0.0 && plugin_timeout_s < 1e9) {
            return Err(PyValueError::new_err(format!(
                "plugin_timeout_s must be a positive number of seconds, not {plugin_timeout_s}"
            )));
        }
        let plugin_options = PluginOptions {
            extra: plugins,
            plugin_dir,
            call_timeout: Duration::from_secs_f64(plugin_timeout_s),
            memory_bytes: plugin_memory_mib << 20,
            cache_dir,
            ..PluginOptions::default()
        };
        let plugin_set = plugin_options.load().map_err(to_py)?;
        let options = RunOptions {
            files,
            out,
            run,
            run_db: None,
            light_channel_map: None,
            shard,
            version: None,
        };
        match run_files(&options, &config, &plugin_set, &Silent).map_err(to_py)? {
            RunOutcome::Report(written) => Ok(Some(
                serde_json::to_string(&written.report)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?,
            )),
            RunOutcome::Shard { .. } => Ok(None),
        }
    })?;
    match text {
        Some(text) => Ok(Some(py.import("json")?.call_method1("loads", (text,))?)),
        None => Ok(None),
    }
}

/// streams() -> list[str]: the names of larmon's streams.
#[pyfunction]
fn streams() -> Vec<&'static str> {
    Stream::ALL.iter().map(|s| s.name()).collect()
}

/// schema(stream) -> pyarrow.Schema: the Arrow schema of a stream.
#[pyfunction]
fn schema<'py>(py: Python<'py>, stream: &str) -> PyResult<Bound<'py, PyAny>> {
    stream_named(stream)?.schema().to_pyarrow(py)
}

/// larmon: the DQM of the DUNE ND-LAr 2x2 prototype, for analysts. Reads raw PACMAN, packet and
/// light files into pyarrow, calibrates charge data, and runs the DQM plugins.
#[pymodule]
fn larmon(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_function(wrap_pyfunction!(read, module)?)?;
    module.add_function(wrap_pyfunction!(calibrate, module)?)?;
    module.add_function(wrap_pyfunction!(run, module)?)?;
    module.add_function(wrap_pyfunction!(streams, module)?)?;
    module.add_function(wrap_pyfunction!(schema, module)?)?;
    Ok(())
}
