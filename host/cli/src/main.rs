//! `larmon`: the command-line front end. Each subcommand lives in `commands/` and only parses
//! arguments and prints; the work itself is done by the library crates (`larmon-pipeline` for
//! run, merge and watch; `larmon-ingest`, `larmon-calibrate`, `larmon-metadata`, …).

mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Data-quality monitor and data mover of the DUNE ND-LAr 2x2 prototype.
///
/// larmon reads the charge-readout files of the 2x2 LArPix TPCs — raw PACMAN files
/// (`msgs`/`msg_headers`) and packet files (`packets`, every 2.x layout) — and turns them into
/// Arrow record batches for calibration, plots and reports. The detector built in is the 2x2's
/// four modules (`larmon detector show`); `--detector sim-module` selects the one-module
/// detector of the simulation fixtures.
///
/// Examples:
///   larmon demo                           simulate -> process -> dashboard, in one command
///   larmon simulate --out sim             a run of cosmic muons in the raw DAQ format + truth
///   larmon inspect run.h5                 what is in a file (kind, layout, counts, time span)
///   larmon light mpd_run_42_p0.data       light readout: events, boards, dead/noisy/clipping
///   larmon convert raw.h5 -o packets.h5   raw PACMAN file -> canonical 2.4 packet file
///   larmon calibrate run.h5 --export hits.arrow   hits in ke- with x, y, z for pandas/polars
///   larmon run run.h5 --out reports       plot plugins -> reports/<run>/report.json + SVGs
///   larmon run f*.h5 --out r --shard 0/4  one of 4 batch shards; then: larmon merge r/<run>
///   larmon watch /data/daq --out dqm --serve   realtime: every appended chunk, reports in seconds
///   larmon serve reports                  dashboard at http://127.0.0.1:8080
///   larmon runs reports --good            good-run list (JSON; human sign-offs first)
///   larmon signoff reports RUN --flag good --by NAME --comment WHY   sign a run off
///   larmon reference reports --set RUN    figures drawn and shape-checked against RUN
///   larmon meta run.h5 --sidecar          MetaCat declaration from the data (declad sidecar)
///   larmon pack reports RUN --sidecar     a run's report + figures as one declared file
///   larmon catalog add /data/*.h5         catalog files; then: transfer --to DIR, rucio ...
///   larmon daq /data/daq --site NERSC --to DIR --dq-out dqm   the whole chain per new file
///   larmon plugin new my-plot             scaffold a plot plugin (then: plugin build, run)
///   larmon streams                        the streams plugins consume, with their columns
///   larmon detector show                  the detector in force (2x2: 4 modules, io_groups 1-8)
///   larmon detector check run.h5          how many of a file's channels the detector knows
///   larmon bench tests/data/*.h5          measure read throughput on this machine
#[derive(Parser)]
#[command(name = "larmon", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// More log output (-v info, -vv debug). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(commands::convert::Args),
    Calibrate(commands::calibrate::Args),
    Run(commands::run::Args),
    Demo(commands::demo::Args),
    Simulate(commands::simulate::Args),
    Watch(commands::watch::Args),
    Meta(commands::meta::Args),
    Pack(commands::pack::Args),
    Checksum(commands::meta::ChecksumArgs),
    Catalog(commands::catalog::Args),
    Transfer(commands::transfer::Args),
    Daq(Box<commands::daq::Args>),
    Rucio(commands::transfer::RucioArgs),
    Merge(commands::merge::Args),
    Serve(commands::serve::Args),
    Runs(commands::runs::Args),
    Signoff(commands::signoff::Args),
    Reference(commands::reference::Args),
    Plugin(commands::plugin::Args),
    Inspect(commands::inspect::Args),
    Light(commands::light::Args),
    Streams(commands::streams::Args),
    Detector(commands::detector::Args),
    Bench(commands::bench::Args),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Two glibc malloc arenas for the whole process, unless `MALLOC_ARENA_MAX` says otherwise.
/// Batches are made on the reading threads and freed on plugin threads, and each file has its
/// own reading threads: with glibc's default of up to 8 arenas per core, a run of many files
/// grew by ~20 MB per file (6 copies of the 200 s file: 293 → 403 MB). With two (and the free
/// memory handed back after each file, in `larmon run`) it stays under 300 MB between files;
/// one arena was flatter still but made `larmon calibrate` ~15 % slower (the reading and
/// calibrating threads then wait on one lock). docs/performance.md has the figures.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called once at start-up, before any thread exists; M_ARENA_MAX is a valid
        // parameter and 2 a valid value.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Commands that print their answer and are often piped (`| head`, `| jq`) end quietly when the
/// reader goes away, as `cat` does, instead of panicking on the broken pipe. The long-running
/// ones (servers, watch, transfers) keep Rust's default: a write error they handle themselves.
fn end_quietly_on_closed_pipe(command: &Command) {
    let printing = matches!(
        command,
        Command::Inspect(_)
            | Command::Meta(_)
            | Command::Pack(_)
            | Command::Checksum(_)
            | Command::Streams(_)
            | Command::Runs(_)
            | Command::Signoff(_)
            | Command::Detector(_)
            | Command::Light(_)
            | Command::Calibrate(_)
            | Command::Catalog(_)
    );
    #[cfg(unix)]
    if printing {
        // SAFETY: called once at start-up, before any thread exists; SIG_DFL is a valid
        // disposition for SIGPIPE.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    #[cfg(not(unix))]
    let _ = printing;
}

/// Seconds one call into HDF5 may last before larmon gives up on the file (env
/// `LARMON_HDF5_STALL_S`; docs/robustness.md): some damaged files make the C library loop.
const DEFAULT_HDF5_STALL_S: f64 = 20.0;

/// Starts the HDF5 stall watchdog: a call stuck on a damaged file ends larmon with one error
/// line naming the file (`watch` first records the file, so that a restart skips it).
fn give_up_on_stalled_hdf5() {
    let limit = std::env::var("LARMON_HDF5_STALL_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(DEFAULT_HDF5_STALL_S);
    let started = larmon_ingest::stall::spawn_watchdog(
        std::time::Duration::from_secs_f64(limit),
        move |file, what, _elapsed| {
            commands::watch::record_stalled_file(file);
            // The limit, not the time measured: the watchdog looks every quarter of the limit,
            // so the time measured varies from run to run and machine to machine.
            eprintln!(
                "larmon: error: {}: HDF5 made no progress for {limit} s {what} (a damaged file \
                 can make the HDF5 library loop forever): giving up",
                file.display(),
            );
            std::process::exit(1);
        },
    );
    if let Err(e) = started {
        eprintln!("larmon: warning: no HDF5 stall watchdog: {e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    end_quietly_on_closed_pipe(&cli.command);
    few_malloc_arenas();
    init_logging(cli.verbose);
    give_up_on_stalled_hdf5();
    let result = match cli.command {
        Command::Convert(args) => commands::convert::run(args),
        Command::Calibrate(args) => commands::calibrate::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Watch(args) => commands::watch::run(args),
        Command::Meta(args) => commands::meta::run(args),
        Command::Pack(args) => commands::pack::run(args),
        Command::Checksum(args) => commands::meta::checksum(args),
        Command::Catalog(args) => commands::catalog::run(args),
        Command::Transfer(args) => commands::transfer::run(args),
        Command::Daq(args) => commands::daq::run(*args),
        Command::Rucio(args) => commands::transfer::rucio(args),
        Command::Merge(args) => commands::merge::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Runs(args) => commands::runs::run(args),
        Command::Signoff(args) => commands::signoff::run(args),
        Command::Reference(args) => commands::reference::run(args),
        Command::Plugin(args) => commands::plugin::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Light(args) => commands::light::run(args),
        Command::Streams(args) => commands::streams::run(args),
        Command::Detector(args) => commands::detector::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("larmon: error: {}", commands::error_text(&err));
            ExitCode::FAILURE
        }
    }
}
