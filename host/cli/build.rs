//! Embeds the plugin SDK in the larmon binary: `larmon plugin new` and `larmon plugin build`
//! write it to a versioned folder, so a volunteer builds a plugin with only larmon installed (no
//! larmon clone). Generates `$OUT_DIR/plugin_sdk.rs` with the SDK's sources (Rust, and the
//! Python SDK module, the derive macros), the WIT world, stand-alone manifests of the SDK and its
//! derive crate (the workspace's package fields written out, no `[lints]`), the
//! plugin workspace's lock file (so the scaffold resolves offline to crates already in cargo's
//! cache) and a content hash that names the folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.join("../..");
    let sdk = repo.join("plugin-sdk");
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for (folder, extension) in [
        ("plugin-sdk/src", "rs"),
        ("plugin-sdk/derive/src", "rs"),
        ("plugin-sdk/python", "py"),
        ("wit", "wit"),
    ] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(repo.join(folder))
            .unwrap_or_else(|e| panic!("{folder}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == extension))
            .collect();
        found.sort();
        for path in found {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((format!("{folder}/{name}"), path));
        }
    }
    files.push(("plugin-sdk/README.md".into(), sdk.join("README.md")));
    files.push(("wit/README.md".into(), repo.join("wit/README.md")));

    let workspace = read(&repo.join("Cargo.toml"));
    let sdk_manifest = standalone_manifest(&read(&sdk.join("Cargo.toml")), &workspace);
    let derive_manifest = standalone_manifest(&read(&sdk.join("derive/Cargo.toml")), &workspace);
    let lock = read(&repo.join("plugins/Cargo.lock"));

    let mut hash = Fnv::default();
    let mut out = String::from("/// The SDK's files: (path inside the SDK folder, text).\n");
    out.push_str("pub const FILES: &[(&str, &str)] = &[\n");
    for (name, path) in &files {
        hash.add(name);
        hash.add(&read(path));
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.canonicalize().unwrap()).unwrap();
        println!("cargo:rerun-if-changed={}", path.display());
    }
    out.push_str("];\n");
    hash.add(&sdk_manifest);
    hash.add(&derive_manifest);
    hash.add(&lock);
    writeln!(
        out,
        "/// The SDK's stand-alone Cargo.toml.\npub const MANIFEST: &str = {sdk_manifest:?};"
    )
    .unwrap();
    writeln!(
        out,
        "/// The derive macros' stand-alone Cargo.toml (plugin-sdk/derive).\npub const \
         DERIVE_MANIFEST: &str = {derive_manifest:?};"
    )
    .unwrap();
    writeln!(
        out,
        "/// The plugin workspace's Cargo.lock: the dependency versions larmon was built and \
         tested with.\npub const LOCK: &str = include_str!({:?});",
        repo.join("plugins/Cargo.lock").canonicalize().unwrap()
    )
    .unwrap();
    writeln!(out, "/// A hash of all of the above.\npub const HASH: &str = \"{:016x}\";", hash.0)
        .unwrap();
    for path in [
        sdk.join("Cargo.toml"),
        sdk.join("derive/Cargo.toml"),
        repo.join("Cargo.toml"),
        repo.join("plugins/Cargo.lock"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed={}", repo.join("plugin-sdk/src").display());
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    println!("cargo:rerun-if-changed={}", repo.join("plugin-sdk/python").display());
    println!("cargo:rerun-if-changed={}", repo.join("plugin-sdk/derive/src").display());
    let target = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("plugin_sdk.rs");
    std::fs::write(target, out).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The SDK manifest with `FIELD.workspace = true` replaced by the workspace's value and the
/// `[lints]` table (workspace lints) left out.
fn standalone_manifest(manifest: &str, workspace: &str) -> String {
    let mut out = String::new();
    let mut in_lints = false;
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_lints = trimmed == "[lints]";
        }
        // Comments speak of the repository's manifest; [lints] are the workspace's.
        if in_lints || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix(".workspace = true") {
            Some(field) => {
                let value = workspace_package_field(workspace, field)
                    .unwrap_or_else(|| panic!("workspace.package.{field} not found"));
                writeln!(out, "{field} = {value}").unwrap();
            }
            None => {
                assert!(!line.contains("workspace"), "the SDK manifest must stand alone: {line}");
                writeln!(out, "{line}").unwrap();
            }
        }
    }
    out
}

/// `[workspace.package] FIELD = VALUE` of the root manifest (VALUE as written).
fn workspace_package_field(workspace: &str, field: &str) -> Option<String> {
    let mut in_package = false;
    for line in workspace.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_package = trimmed == "[workspace.package]";
            continue;
        }
        match trimmed.split_once('=') {
            Some((key, value)) if in_package && key.trim() == field => {
                return Some(value.trim().to_owned());
            }
            _ => {}
        }
    }
    None
}

/// FNV-1a, 64 bit: a stable content hash without a build dependency.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, text: &str) {
        for byte in text.bytes().chain([0xff]) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
