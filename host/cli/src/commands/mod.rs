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
pub mod streams;
pub mod transfer;
pub mod watch;

/// An error and its causes on one line, each cause once (library errors often spell out
/// their source already).
pub fn error_text(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    message
}
