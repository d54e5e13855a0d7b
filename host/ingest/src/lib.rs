//! Ingest stage of larmon: reads the charge files the 2x2 DAQ writes and streams packet rows.
//!
//! - [`read`]: raw PACMAN files (`msgs`/`msg_headers`, SWMR-aware) and packet files (`packets`,
//!   every 2.x layout, bound by member name), as bounded [`PacketColumns`] batches;
//! - [`arrow`]: those batches as Arrow record batches of the documented `packets` schema;
//! - [`write`]: canonical 2.4 packet files and raw files;
//! - [`convert`]: raw (or any 2.x packet) file -> canonical packet file, on two cores;
//! - [`light`]: light-readout files (MPD binary, ndlar_flow HDF5), waveform reduction, scans.
//!
//! ```no_run
//! use larmon_ingest::{read::{LarpixReader, ReadOptions}, arrow::packets_record_batch};
//! let reader = LarpixReader::open("run.h5".as_ref(), &ReadOptions::default())?;
//! for batch in reader {
//!     let batch = packets_record_batch(batch?);
//!     println!("{} rows", batch.num_rows());
//! }
//! # Ok::<(), larmon_ingest::IngestError>(())
//! ```

pub mod arrow;
pub mod channel_activity;
pub mod convert;
mod error;
mod hdf5_io;
pub mod light;
pub mod read;
pub mod stall;
pub mod write;

pub use error::{IngestError, Result};
pub use larmon_decode::{DecodeStats, PacketColumns, PacketRow};
