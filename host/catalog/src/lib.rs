//! larmon's data management: what a file is (a MetaCat declaration; reading it from the data is
//! `larmon-metadata`'s, so the catalog and the dashboard link no HDF5),
//! where it is (the catalog of files, replicas and transfers), and what goes with it (charge,
//! light and MINERvA files of the same run and time).
//!
//! - [`checksum`]: streaming adler32, `%08x` (Rucio and MetaCat formats);
//! - [`metadata`]: declarations and their validation, declad sidecars written atomically,
//!   verified sidecars of other files (light, MINERvA);
//! - [`store`]: the SQLite catalog (WAL) with replicas and the persistent transfer queue;
//! - [`associate`]: per-run pairing by time overlap;
//! - [`runs`]: where a run number comes from, and the 2x2 run database (CRS/LRS/MINERvA runs
//!   → global runs).

pub mod associate;
pub mod checksum;
pub mod error;
pub mod metadata;
pub mod runs;
pub mod store;

pub use checksum::Adler32;
pub use error::CatalogError;
pub use metadata::Declaration;
pub use store::{Added, Catalog, FileRecord, Replica, Transfer};
