//! `larmon plugin new | build | test | check`: write, build, try and validate plot plugins.
//! A plugin is a crate of its own anywhere on disk, built against the SDK that ships inside
//! larmon ([`sdk`]), or a bundled plugin inside a larmon clone (`--repo`).

mod compile;
mod python;
mod scaffold;
pub mod sdk;
mod try_on_files;

use std::path::{Path, PathBuf};

use anyhow::Result;
use larmon_runtime::{Limits, Runtime};

/// Write, build, try and check plot plugins (WebAssembly components of the larmon plugin world).
///
/// A plugin is one Rust file in a crate of its own (it needs only larmon and a Rust toolchain:
/// larmon carries the SDK and writes it where the crate finds it), or one Python file (it needs
/// Python 3 with pip: larmon installs componentize-py on first use). docs/writing-a-plugin.md
/// goes from nothing to a plot on the dashboard in ten minutes.
///
/// Examples:
///   larmon plugin new my-plot               # ./my-plot/: Cargo.toml, src/lib.rs that run as is
///   larmon plugin build my-plot             # -> my-plot/target/wasm32-wasip2/release/my_plot.wasm
///   larmon plugin test my-plot --on run1.h5 --bless        # writes my-plot/expected.toml
///   larmon plugin test my-plot --on run1.h5 --expect my-plot/expected.toml   # compares
///   larmon run run1.h5 --out reports --plugin my-plot/target/wasm32-wasip2/release/my_plot.wasm
///   larmon plugin new --python my-py-plot   # ./my-py-plot/my_py_plot.py, one class
///   larmon plugin build my-py-plot          # -> my-py-plot/target/my_py_plot.wasm
///   larmon plugin new adc-spectrum --repo . # a bundled plugin in a larmon clone's plugins/
///   larmon plugin check my_plot.wasm        # validate a component, print what it consumes
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(clap::Subcommand)]
enum PluginCommand {
    /// Make a plugin crate that builds and runs as is: ./NAME/ (or PATH/NAME/), or with --repo a
    /// bundled plugin in a larmon clone's plugins/.
    New {
        /// The plugin's folder; its last part is the plugin name (lower-case letters, digits and
        /// dashes).
        path: PathBuf,
        /// Make a bundled plugin inside this larmon clone (plugins/NAME, added to the plugin
        /// workspace) instead of a crate of its own.
        #[arg(long, conflicts_with = "python")]
        repo: Option<PathBuf>,
        /// Make a Python plugin: one file, PATH/NAME.py (NAME with dashes as underscores).
        #[arg(long)]
        python: bool,
    },
    /// Build a plugin to a component: a crate with cargo (target wasm32-wasip2, installed with
    /// rustup when missing; offline when cargo's cache has the SDK's dependencies), a Python
    /// file with componentize-py (to FOLDER/target/MODULE.wasm).
    Build {
        /// The plugin's folder or Python file (default: the current directory).
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Run one plugin alone on data files; print its status, metrics, checks and figures, and
    /// compare its metrics with an expected.toml. Exit status 1 when they differ.
    Test {
        /// The plugin: its folder or Python file (built first), or a component (.wasm).
        plugin: PathBuf,
        /// The data files (raw, packet, ndlar_flow or light files of one run).
        #[arg(long = "on", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Metrics it must give: `[metrics] name = value` or `name = { value = V, tolerance = T }`
        /// (relative; default 1e-9).
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Write this run's metrics as the expected ones (to --expect, default
        /// PLUGIN/expected.toml).
        #[arg(long, conflicts_with = "expect")]
        bless: bool,
        /// Where the report and figures go (default: PLUGIN/test-output, or a temporary folder
        /// for a .wasm).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Detector configuration and `[plugins.NAME]` settings (TOML), as for `larmon run`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a component against the plugin world, print its info, run it on no data.
    Check {
        /// The component.
        file: PathBuf,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        PluginCommand::New { path, repo, python } => match repo {
            Some(repo) => scaffold::new_bundled(&path, &repo),
            None if python => python::new(&path, &scaffold::plugin_name(&path)?),
            None => scaffold::new_standalone(&path),
        },
        PluginCommand::Build { path } => compile::build(&path).map(|_| ()),
        PluginCommand::Test { plugin, files, expect, bless, out, config } => {
            try_on_files::run(&try_on_files::Trial { plugin, files, expect, bless, out, config })
        }
        PluginCommand::Check { file } => check(&file),
    }
}

fn check(file: &Path) -> Result<()> {
    let runtime = Runtime::new(Limits::default(), None)?;
    let plugin = runtime.load_file(file)?;
    let info = plugin.info();
    println!("{}: larmon plugin component (world larmon:plugin/dqm-plugin@0.1.0)", file.display());
    let p = |text: &str| larmon_runtime::printable(text).into_owned();
    println!("  name         {} {}", p(&info.name), p(&info.version));
    println!("  description  {}", p(&info.description));
    if !info.help.is_empty() {
        println!("  help         {}", p(&info.help));
    }
    for request in &info.consumes {
        println!("  consumes     {}: {}", p(&request.stream), p(&request.columns.join(", ")));
    }
    if !info.config_keys.is_empty() {
        println!("  config keys  {}", p(&info.config_keys.join(", ")));
    }
    println!("  sha256       {}", plugin.sha256());
    println!("  compiled in  {:.0} ms", plugin.load_time().as_secs_f64() * 1e3);
    let mut run = plugin
        .open(&runtime, "{}")
        .map_err(|e| anyhow::anyhow!("open with an empty configuration: {}", p(&e.to_string())))?;
    let report =
        run.report().map_err(|e| anyhow::anyhow!("report on no data: {}", p(&e.to_string())))?;
    println!(
        "  on no data   {} figures, {} metrics, {} checks (ok)",
        report.figures.len(),
        report.metrics.len(),
        report.checks.len()
    );
    Ok(())
}
