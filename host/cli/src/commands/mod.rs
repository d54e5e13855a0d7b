//! One module per subcommand.

pub mod bench;
pub mod calibrate;
pub mod convert;
pub mod demo;
pub mod inspect;
pub mod merge;
pub mod plugin;
pub mod run;
pub mod runs;
pub mod serve;
pub mod simulate;
pub mod watch;
