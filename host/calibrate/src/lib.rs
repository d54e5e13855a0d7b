//! Calibration stage of larmon: what ndlar_flow does offline, online and streaming.
//!
//! - [`config`]: the detector configuration (TOML, built-in 2x2-like default);
//! - [`geometry`]: multi-tile pixel layouts → pixel positions, network-agnostic;
//! - [`channels`], [`physics`]: per-channel pedestals/vref/vcm, ADC → mV → ke⁻, drift velocity;
//! - [`calibrator`]: PPS rollover, external-trigger and self-triggered events, t0, hits with
//!   charge, position and drift coordinate, built correctly across batch boundaries;
//! - [`tracks`]: straight tracks (RANSAC + PCA, split at gaps) and dQ/dx segments;
//! - [`output`]: the `hits` (kept as columns: [`output::HitColumns`]), `events`, `tracks`,
//!   `track_segments` and `track_pixels` Arrow streams.
//!
//! ```no_run
//! use larmon_calibrate::{Calibrator, DetectorConfig};
//! # fn batches() -> Vec<larmon_decode::PacketColumns> { vec![] }
//! let mut calibrator = Calibrator::new(DetectorConfig::default())?;
//! for packets in batches() {
//!     let done = calibrator.push(&packets);
//!     println!("{} hits, {} events", done.hits.len(), done.events.len());
//! }
//! let rest = calibrator.finish();
//! # Ok::<(), larmon_calibrate::CalibrationError>(())
//! ```

pub mod calibrator;
pub mod channels;
pub mod config;
pub mod detectors;
mod error;
pub mod geometry;
pub mod layout;
pub mod output;
pub mod physics;
pub mod tracks;

pub use calibrator::{CalibrationStats, Calibrator, CalibratorState};
pub use config::DetectorConfig;
pub use error::CalibrationError;
