//! `larmon plugin build`: a plugin crate → a WebAssembly component. A crate of its own is built
//! with its own cargo project against the SDK larmon carries (offline first: the scaffold's lock
//! file names crates cargo already has); a bundled plugin inside a larmon clone with the plugin
//! workspace, as `bash .ci/plugins` does.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::sdk;

/// The component target.
const TARGET: &str = "wasm32-wasip2";

/// Builds the plugin crate in `path`; returns the component.
pub fn build(path: &Path) -> Result<PathBuf> {
    if let Some(file) = super::python::source_file(path)? {
        return super::python::build(&file);
    }
    let manifest_path = path.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "{}: no Cargo.toml and no Python file (not a plugin; make one with `larmon plugin \
             new [--python]`)",
            path.display()
        )
    })?;
    let manifest: toml::Table = manifest
        .parse()
        .with_context(|| format!("{}: not a valid Cargo.toml", manifest_path.display()))?;
    let package = package_name(&manifest)
        .with_context(|| format!("{}: no [package] name", manifest_path.display()))?;
    match sdk_dependency(&manifest) {
        None => bail!("{}: no larmon-plugin-sdk dependency", manifest_path.display()),
        Some(SdkDependency::Workspace) => return build_bundled(path, &package),
        Some(SdkDependency::Path(sdk_path)) => ensure_sdk(&path.join(sdk_path), &manifest_path)?,
        Some(SdkDependency::Elsewhere) => {} // a registry or git dependency: cargo's business
    }
    ensure_target(path)?;
    let wasm = match cargo_build(path, true)? {
        Built::Component(wasm) => wasm,
        Built::NeedsNetwork => {
            eprintln!(
                "larmon: cargo's cache lacks some of the plugin's dependencies; building online"
            );
            match cargo_build(path, false)? {
                Built::Component(wasm) => wasm,
                Built::NeedsNetwork => bail!("cargo build of {package} failed (see above)"),
            }
        }
    };
    println!("built {}", wasm.display());
    Ok(wasm)
}

/// The `[package] name` of a manifest.
fn package_name(manifest: &toml::Table) -> Option<String> {
    Some(manifest.get("package")?.get("name")?.as_str()?.to_owned())
}

/// Where a plugin crate takes the SDK from.
#[derive(Debug, PartialEq)]
enum SdkDependency {
    /// `larmon-plugin-sdk.workspace = true`: a bundled plugin in a larmon clone.
    Workspace,
    /// A folder (relative to the crate, or absolute: a path joined onto another is that path).
    Path(PathBuf),
    /// A registry or git dependency.
    Elsewhere,
}

/// The crate's `larmon-plugin-sdk` dependency, if it has one.
fn sdk_dependency(manifest: &toml::Table) -> Option<SdkDependency> {
    let dependency = manifest.get("dependencies")?.get("larmon-plugin-sdk")?;
    if dependency.get("workspace").and_then(toml::Value::as_bool) == Some(true) {
        return Some(SdkDependency::Workspace);
    }
    Some(match dependency.get("path").and_then(toml::Value::as_str) {
        Some(path) => SdkDependency::Path(path.into()),
        None => SdkDependency::Elsewhere,
    })
}

/// Writes this larmon's SDK again when the crate depends on its folder and the folder is gone
/// (e.g. a cleaned home); explains a crate made by another larmon.
fn ensure_sdk(sdk_dir: &Path, manifest_path: &Path) -> Result<()> {
    if sdk_dir.join("Cargo.toml").is_file() {
        return Ok(());
    }
    if sdk_dir == sdk::crate_dir()? {
        sdk::ensure_written()?;
        return Ok(());
    }
    bail!(
        "{}: the SDK it depends on, {}, is not there. This larmon carries SDK {}; point \
         the larmon-plugin-sdk path at {} (written now) to build with it",
        manifest_path.display(),
        sdk_dir.display(),
        sdk::version_name(),
        sdk::ensure_written()?.display()
    )
}

/// Installs the wasm32-wasip2 target with rustup when the toolchain lacks it.
fn ensure_target(crate_dir: &Path) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .current_dir(crate_dir)
        .output()
        .context("running rustc (is a Rust toolchain installed? https://rustup.rs)")?;
    let installed = libdir.status.success()
        && Path::new(String::from_utf8_lossy(&libdir.stdout).trim()).is_dir();
    if installed {
        return Ok(());
    }
    eprintln!("larmon: installing the Rust target {TARGET} (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .current_dir(crate_dir)
        .status()
        .with_context(|| {
            format!("running rustup: the toolchain has no {TARGET} target; install it yourself")
        })?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed");
    }
    Ok(())
}

/// What one cargo build gave.
enum Built {
    Component(PathBuf),
    /// It failed offline for want of crates cargo has not downloaded.
    NeedsNetwork,
}

/// `cargo build --release --target wasm32-wasip2` in the crate, its messages shown as cargo
/// prints them; the component's path read from cargo's JSON messages (so CARGO_TARGET_DIR and
/// .cargo/config.toml are respected).
fn cargo_build(crate_dir: &Path, offline: bool) -> Result<Built> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(["build", "--release", "--target", TARGET]);
    // Run in the crate's folder, so its rust-toolchain.toml and .cargo/config.toml apply.
    command.args(["--message-format", "json-render-diagnostics", "--manifest-path"]);
    command.arg("Cargo.toml").current_dir(crate_dir);
    if offline {
        command.arg("--offline");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo (is a Rust toolchain installed? https://rustup.rs)")?;
    let stderr = child.stderr.take().expect("piped");
    let echo = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "{line}");
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    let mut component = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.context("reading cargo's messages")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if message["reason"] == "compiler-artifact" && is_cdylib {
            let wasm = message["filenames"].as_array().and_then(|files| {
                files.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".wasm"))
            });
            component = wasm.map(PathBuf::from).or(component);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    let seen = echo.join().unwrap_or_default();
    match (status.success(), component) {
        (true, Some(wasm)) => Ok(Built::Component(wasm)),
        (true, None) => bail!("cargo built no .wasm (is the crate a cdylib?)"),
        (false, _) if offline && seen.contains("offline") => Ok(Built::NeedsNetwork),
        (false, _) => bail!("cargo build of {} failed (see above)", crate_dir.display()),
    }
}

/// The repository root above `path` (the directory holding plugins/Cargo.toml).
fn repo_root(path: &Path) -> Result<PathBuf> {
    let start = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    start
        .ancestors()
        .find(|dir| dir.join("plugins/Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "{}: not inside a larmon repository (no plugins/Cargo.toml above it)",
                path.display()
            )
        })
}

/// A bundled plugin: built in the plugin workspace with profile `plugin` into the repository's
/// target dir, where `larmon run` finds the bundled plugins.
fn build_bundled(path: &Path, package: &str) -> Result<PathBuf> {
    let repo = repo_root(path)?;
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--target", TARGET, "--profile", "plugin", "-p", package])
        .arg("--manifest-path")
        .arg(repo.join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(repo.join("target"))
        .status()
        .context("running cargo (is a Rust toolchain installed? https://rustup.rs)")?;
    if !status.success() {
        bail!("cargo build of {package} failed");
    }
    let wasm = repo
        .join("target/wasm32-wasip2/plugin")
        .join(format!("{}.wasm", package.replace('-', "_")));
    println!("built {}", wasm.display());
    Ok(wasm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn the_package_name_is_read_from_the_package_table_only() {
        let manifest =
            "[workspace]\nname = \"no\"\n[package]\nname = \"my-plot\"\n[lib]\nname = \"x\"\n";
        assert_eq!(package_name(&table(manifest)).as_deref(), Some("my-plot"));
        assert_eq!(package_name(&table("[lib]\nname = \"x\"\n")), None);
    }

    #[test]
    fn the_sdk_dependency_is_read_as_toml_whatever_its_spelling() {
        let sdk = |text: &str| sdk_dependency(&table(text));
        assert_eq!(
            sdk("[dependencies]\nlarmon-plugin-sdk.workspace = true\n"),
            Some(SdkDependency::Workspace)
        );
        // The scaffold escapes quotes and backslashes in the folder's name.
        assert_eq!(
            sdk("[dependencies]\nlarmon-plugin-sdk = { path = \"/home/a \\\"b\\\"/sdk\" }\n"),
            Some(SdkDependency::Path("/home/a \"b\"/sdk".into()))
        );
        assert_eq!(
            sdk("[dependencies.larmon-plugin-sdk]\npath = '../sdk'\n"),
            Some(SdkDependency::Path("../sdk".into()))
        );
        assert_eq!(
            sdk("[dependencies]\nlarmon-plugin-sdk = \"0.1\"\n"),
            Some(SdkDependency::Elsewhere)
        );
        assert_eq!(sdk("[dependencies]\nserde = \"1\"\n"), None);
    }
}
