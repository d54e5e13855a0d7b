//! One module per subcommand.

pub mod bench;
pub mod calibrate;
pub mod catalog;
pub mod convert;
pub mod demo;
pub mod inspect;
pub mod light;
pub mod merge;
pub mod meta;
pub mod plugin;
pub mod run;
pub mod runs;
pub mod serve;
pub mod simulate;
pub mod transfer;
pub mod watch;
