//! The ways a run is processed, all over the same stages and the same merge path:
//! - [`run`]: the files of a run in one pass (or one shard of them) → report;
//! - [`shards`]: the shard layout on disk and the merge of many shards into the one report;
//! - [`watch`]: a DAQ folder followed live, every appended chunk in its run's report, with
//!   checkpoints that make restarts lossless;
//! - [`naming`]: one run name for all of them.

pub mod naming;
pub mod run;
pub mod shards;
pub mod watch;
