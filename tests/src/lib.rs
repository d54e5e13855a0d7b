//! Helpers shared by larmon's cross-crate tests: where the fixtures are, and writers of synthetic
//! files in any packet layout (for the layouts no committed file has) and of broken files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use hdf5::types::{CompoundField, CompoundType, IntSize, TypeDescriptor};
use larmon_decode::PacketColumns;
use larmon_ingest::read::{LarpixReader, ReadOptions};

/// A file committed under `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

/// The repository's root folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `LARMON ARGS` run as a plugin author runs it, in `dir`: larmon's data folder (the SDK it
/// writes, componentize-py) under `dir/data`, no SDK or componentize-py given from outside, and
/// compiled plugins cached in the repository's target folder (shared by the test runs). Returns
/// the command, for a test to add to before running it.
pub fn plugin_author_command(larmon: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(larmon);
    command
        .args(args)
        .current_dir(dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env_remove("LARMON_SDK_HOME")
        .env_remove("LARMON_COMPONENTIZE_PY")
        .env("XDG_CACHE_HOME", repo().join("target/test-plugin-cache-home"));
    command
}

/// A finished command's exit status, stdout and stderr, for assertion messages.
pub fn output_text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A simulated run with its light readout (`larmon simulate` on the default 2x2): the raw
/// charge file, the light DAQ's MPD file and the light truth — light end-to-end tests run on
/// it without `../shared`.
pub struct SimulatedLightRun {
    /// The raw charge files (consecutive seconds).
    pub charge: Vec<PathBuf>,
    /// The light MPD file (`mpd_run_sim_rctl_<run>_p0.data`).
    pub light: PathBuf,
    /// The light truth (the keys of the fixtures' `*-light-truth.json`).
    pub light_truth: serde_json::Value,
    /// Its path.
    pub light_truth_path: PathBuf,
}

/// Simulates `seconds` of run `run` at 20 muons/s, in `files` raw files, with light for every
/// muon, into `dir`.
pub fn simulated_light_run(dir: &Path, run: u32, seconds: u32, files: usize) -> SimulatedLightRun {
    use larmon_simulate::light::{LightConfig, simulate_light};
    use larmon_simulate::{SimulationConfig, simulate};
    let config = SimulationConfig {
        run,
        seed: u64::from(run),
        duration_s: seconds,
        muon_rate_hz: 20.0,
        ..SimulationConfig::default()
    };
    let detector = larmon_calibrate::DetectorConfig::default();
    let mut charge_run = simulate(&config, &detector).expect("simulating the charge");
    let charge = charge_run.write(dir, files, false, |_, _| {}).expect("writing the charge");
    let map = larmon_pipeline::input::light::default_channel_map(&detector);
    let mut light = simulate_light(&charge_run, &detector, &map, &LightConfig::default())
        .expect("simulating the light");
    let light_path = light.write(dir).expect("writing the light");
    let light_truth_path = dir.join(format!("mpd_run_sim_rctl_{run}-light-truth.json"));
    let light_truth =
        serde_json::from_str(&std::fs::read_to_string(&light_truth_path).unwrap()).unwrap();
    SimulatedLightRun { charge, light: light_path, light_truth, light_truth_path }
}

/// A file of `../shared/fixtures`, or `None` (with a note on stderr) when that folder is absent.
pub fn shared_fixture(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let path = dir.join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} not found (large cross-check needs ../shared/fixtures)",
            path.display()
        );
        None
    }
}

/// A fresh scratch directory for one test, `$TMPDIR/larmon-test-<pid>-<test>`. It stays after
/// the test (to look at when one fails); the first call in a test process removes the scratch
/// directories of test processes that have ended, so a test run holds at most the scratch of
/// the test binaries still running (simulated runs are hundreds of MB; CI disks are small).
/// `LARMON_KEEP_SCRATCH=1` keeps them all.
pub fn scratch(test: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(remove_scratch_of_ended_processes);
    let dir = std::env::temp_dir().join(format!("larmon-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes `larmon-test-<pid>-*` directories whose process has ended (Linux: no `/proc/<pid>`).
fn remove_scratch_of_ended_processes() {
    if std::env::var_os("LARMON_KEEP_SCRATCH").is_some_and(|v| v == "1")
        || !Path::new("/proc/self").exists()
    {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("larmon-test-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Reads every row of a LArPix file into one column set.
pub fn read_all(path: &Path, options: &ReadOptions) -> PacketColumns {
    let mut all = PacketColumns::default();
    let reader = LarpixReader::open(path, options).unwrap_or_else(|e| panic!("{e}"));
    for batch in reader {
        let batch = batch.unwrap_or_else(|e| panic!("{e}"));
        for i in 0..batch.len() {
            all.push(&batch.row(i).unwrap());
        }
    }
    all
}

/// An unsigned member of `bytes` bytes.
pub fn uint(bytes: usize) -> TypeDescriptor {
    TypeDescriptor::Unsigned(match bytes {
        1 => IntSize::U1,
        2 => IntSize::U2,
        4 => IntSize::U4,
        _ => IntSize::U8,
    })
}

/// Writes `rows` as a `packets` table with the given member order and types (packed), so any
/// historical layout can be produced. Values are truncated to each member's width.
pub fn write_packet_table(
    path: &Path,
    version: Option<&str>,
    members: &[(&str, TypeDescriptor)],
    rows: &PacketColumns,
    chunk: usize,
    gzip: Option<u8>,
) {
    let mut offset = 0;
    let fields: Vec<CompoundField> = members
        .iter()
        .enumerate()
        .map(|(index, (name, ty))| {
            let f = CompoundField { name: (*name).into(), ty: ty.clone(), offset, index };
            offset += ty.size();
            f
        })
        .collect();
    let size = offset;
    let desc = TypeDescriptor::Compound(CompoundType { fields: fields.clone(), size });
    let mut bytes = vec![0u8; size * rows.len()];
    for i in 0..rows.len() {
        for f in &fields {
            let v = rows.value(&f.name, i).unwrap_or(0).to_le_bytes();
            let w = f.ty.size();
            bytes[i * size + f.offset..i * size + f.offset + w].copy_from_slice(&v[..w]);
        }
    }
    let file = hdf5::File::create(path).unwrap();
    if let Some(v) = version {
        let g = file.create_group("_header").unwrap();
        let v: hdf5::types::VarLenUnicode = v.parse().unwrap();
        g.new_attr::<hdf5::types::VarLenUnicode>()
            .create("version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }
    let mut b = file.new_dataset_builder().packed(true).chunk(chunk);
    if let Some(level) = gzip {
        b = b.deflate(level);
    }
    let ds = b.empty_as(&desc).shape(0..).create("packets").unwrap();
    ds.resize(rows.len()).unwrap();
    let mem = hdf5::Datatype::from_descriptor(&desc).unwrap();
    let space = ds.space().unwrap();
    hdf5::sync::sync(|| unsafe {
        // SAFETY: `bytes` holds `rows.len()` packed records of `mem`; the space covers them all.
        hdf5::h5check(hdf5_sys::h5d::H5Dwrite(
            ds.id(),
            mem.id(),
            space.id(),
            space.id(),
            hdf5_sys::h5p::H5P_DEFAULT,
            bytes.as_ptr().cast(),
        ))
    })
    .unwrap();
}

/// A `larmon serve` child on a free port; killed when dropped.
pub struct Server {
    child: Child,
    /// host:port it listens on.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `LARMON serve OUT --bind 127.0.0.1:0 EXTRA…`, once it prints its address.
    pub fn start(larmon: &Path, out: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(larmon)
            .args(["serve", out.to_str().unwrap(), "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
        Self { child, addr }
    }

    /// The raw bytes of a response (HTTP/1.0: no chunked encoding).
    pub fn raw(&self, method: &str, path: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
    }

    /// (status, headers lower-cased, body) of a request.
    pub fn request(&self, method: &str, path: &str) -> (u16, String, String) {
        let response = self.raw(method, path);
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_lowercase(), body.to_string())
    }

    /// A GET: (status, headers lower-cased, body).
    pub fn get(&self, path: &str) -> (u16, String, String) {
        self.request("GET", path)
    }
}
