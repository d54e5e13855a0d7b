//! The corrupt-file campaign: every input kind (raw, packet, legacy packet, ndlar_flow, light
//! MPD) damaged by bit flips, truncation and zeroed blocks, through `inspect`, `convert`,
//! `calibrate`, `run` and `light`. Every case must end within its time limit with exit 0 or a
//! one-line error naming the file — never a panic, a crash or a hang.
//!
//! CI runs a bounded smoke campaign (a few cases per kind). The long one:
//!   LARMON_FUZZ_CASES=400 LARMON_FUZZ_SEED=7 cargo test --release -p larmon \
//!     --test corrupt_files -- --nocapture
//! prints the cases tried and the slowest; docs/robustness.md has the results.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use larmon_tests::{data, scratch};

/// A small deterministic generator (xorshift64*): the same seed gives the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One way of damaging a file.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// `n` single-bit flips at random places.
    BitFlips(usize),
    /// `n` bit flips in the first 4 KiB (superblock, object headers, block headers).
    HeaderFlips(usize),
    /// The file cut at a random length.
    Truncate,
    /// A random 4 KiB block set to zero.
    ZeroBlock,
}

fn damage(bytes: &[u8], how: Damage, rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match how {
        Damage::BitFlips(n) => {
            for _ in 0..n {
                let at = rng.below(out.len());
                out[at] ^= 1 << rng.below(8);
            }
        }
        Damage::HeaderFlips(n) => {
            for _ in 0..n {
                let at = rng.below(out.len().min(4096));
                out[at] ^= 1 << rng.below(8);
            }
        }
        Damage::Truncate => out.truncate(rng.below(out.len())),
        Damage::ZeroBlock => {
            let start = rng.below(out.len());
            let end = (start + 4096).min(out.len());
            out[start..end].fill(0);
        }
    }
    out
}

/// The commands a kind of input goes through, with their time limits (debug build; a release
/// build is ~10× faster).
fn commands(kind: &str) -> Vec<(&'static str, Duration)> {
    let quick = Duration::from_secs(30);
    let run = Duration::from_secs(120);
    match kind {
        "light" => vec![("light", quick), ("inspect", quick), ("run", run)],
        "flow" => vec![("inspect", quick), ("calibrate", quick), ("run", run)],
        _ => vec![("inspect", quick), ("convert", quick), ("calibrate", quick), ("run", run)],
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs one command on one damaged file; the outcome problem, if any.
fn try_case(command: &str, file: &Path, out: &Path, limit: Duration) -> (Duration, Option<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larmon"));
    let target = repo().join("target");
    match command {
        "inspect" => cmd.arg("inspect").arg(file),
        "light" => cmd.arg("light").arg(file),
        "convert" => cmd.arg("convert").arg(file).arg("--output").arg(out.join("converted.h5")),
        "calibrate" => cmd.arg("calibrate").arg(file).arg("--export").arg(out.join("hits.arrow")),
        "run" => cmd
            .arg("run")
            .arg(file)
            .arg("--out")
            .arg(out.join("reports"))
            .arg("--plugin-dir")
            .arg(target.join("wasm32-wasip2/plugin"))
            .arg("--cache-dir")
            .arg(target.join("test-plugin-cache")),
        _ => unreachable!("unknown command {command}"),
    };
    // HDF5 stall limit: 5 s here to keep the campaign short (default 20 s).
    cmd.env("LARMON_HDF5_STALL_S", "5");
    let started = Instant::now();
    let mut child =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("larmon starts");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let stderr = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return (elapsed, Some(format!("hung: killed after {limit:?}")));
    };
    let problem = match status.code() {
        Some(0) => None,
        Some(1) => {
            let errors: Vec<&str> =
                stderr.lines().filter(|l| l.starts_with("larmon: error:")).collect();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if errors.len() != 1 {
                Some(format!("exit 1 without one error line: {stderr}"))
            } else if !errors[0].contains(&name) {
                Some(format!("the error does not name the file: {}", errors[0]))
            } else if stderr.contains("panicked") {
                Some(format!("a panic: {stderr}"))
            } else {
                None
            }
        }
        Some(code) => Some(format!("exit {code}: {stderr}")),
        None => Some(format!("killed by a signal: {status:?}: {stderr}")),
    };
    (elapsed, problem)
}

/// The inputs of the campaign: (kind, file).
fn inputs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let sim = larmon_tests::simulated_light_run(&dir.join("light-source"), 1, 1, 1);
    vec![
        ("raw", data("small-raw-libver-latest.h5")),
        ("packet", data("small-packets.h5")),
        ("legacy", data("small-legacy-v3_4.h5")),
        ("flow", data("real/run2-cosmics-flow-sample.hdf5")),
        ("light", sim.light),
    ]
}

#[test]
fn damaged_files_end_quickly_with_data_or_one_error_line() {
    let cases: usize =
        std::env::var("LARMON_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let seed: u64 =
        std::env::var("LARMON_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let dir = scratch("corrupt-files");
    let damages = [
        Damage::HeaderFlips(3),
        Damage::BitFlips(8),
        Damage::Truncate,
        Damage::ZeroBlock,
        Damage::BitFlips(64),
    ];
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut problems = Vec::new();
    let (mut tried, mut slowest) = (0, (Duration::ZERO, String::new()));
    for (kind, source) in inputs(&dir) {
        let bytes = std::fs::read(&source).unwrap();
        let extension = source.extension().unwrap().to_string_lossy().into_owned();
        let commands = commands(kind);
        for case in 0..cases {
            let how = damages[case % damages.len()];
            let case_dir = dir.join(format!("{kind}-{case}"));
            std::fs::create_dir_all(&case_dir).unwrap();
            let file = case_dir.join(format!("damaged-{kind}-{case}.{extension}"));
            std::fs::write(&file, damage(&bytes, how, &mut rng)).unwrap();
            // inspect (or light) on every case, the other commands in turn.
            let mut chosen = vec![commands[0]];
            chosen.push(commands[1 + case % (commands.len() - 1)]);
            for (command, limit) in chosen {
                let (elapsed, problem) = try_case(command, &file, &case_dir, limit);
                tried += 1;
                let label = format!("{command} on {kind} case {case} ({how:?})");
                if elapsed > slowest.0 {
                    slowest = (elapsed, label.clone());
                }
                if let Some(problem) = problem {
                    problems.push(format!("{label}: {problem}"));
                }
            }
            if problems.is_empty() {
                let _ = std::fs::remove_dir_all(&case_dir);
            }
        }
    }
    println!(
        "corrupt-file campaign: seed {seed}, {tried} cases, slowest {:.2} s ({})",
        slowest.0.as_secs_f64(),
        slowest.1
    );
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// A raw file whose first global-heap object header is zeroed: HDF5 loops forever decoding it
/// (an object of index 0 and size 0 never advances its parser). larmon gives up on it with one
/// line naming the file; a watcher records it, and once restarted skips it and goes on.
#[test]
fn a_file_that_makes_hdf5_loop_is_given_up_and_skipped_by_the_watcher() {
    let dir = scratch("hdf5-loop");
    let mut bytes = std::fs::read(data("small-raw-libver-latest.h5")).unwrap();
    let heap = bytes.windows(4).position(|w| w == b"GCOL").expect("a global heap");
    bytes[heap + 16..heap + 32].fill(0);
    let daq = dir.join("daq");
    std::fs::create_dir_all(&daq).unwrap();
    let looping = daq.join("binary-0000002-2023_03_15_02_40_01_UTC.h5");
    std::fs::write(&looping, &bytes).unwrap();

    let (elapsed, problem) = try_case("inspect", &looping, &dir, Duration::from_secs(30));
    assert!(problem.is_none(), "{problem:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .env("LARMON_HDF5_STALL_S", "2")
        .arg("inspect")
        .arg(&looping)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HDF5 made no progress for 2 s") && stderr.contains("giving up"),
        "{stderr}"
    );

    // The watcher meets it beside a good file: it gives up and records it ...
    std::fs::copy(data("small-raw.h5"), daq.join("binary-0000001-2023_03_15_02_40_01_UTC.h5"))
        .unwrap();
    let reports = dir.join("dqm");
    let watch = |limit: u64| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_larmon"));
        command.env("LARMON_HDF5_STALL_S", "2").arg("watch").arg(&daq).arg("--out").arg(&reports);
        command.args(["--poll-s", "0.2", "--finish-after-s", "1", "--exit-when-idle-s", "2"]);
        command.arg("--plugin-dir").arg(repo().join("target/wasm32-wasip2/plugin"));
        command.arg("--cache-dir").arg(repo().join("target/test-plugin-cache"));
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(limit), "the watcher hangs");
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().unwrap()
    };
    let first = watch(120);
    assert!(!first.status.success());
    assert!(String::from_utf8_lossy(&first.stderr).contains("giving up"));
    let listed = std::fs::read_to_string(reports.join("stalled-files.json")).unwrap();
    assert!(listed.contains("binary-0000002"), "{listed}");
    // ... and the restarted watcher skips it and processes the good file.
    let second = watch(300);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("skipped: HDF5 got stuck on it before"), "{stderr}");
    assert!(reports.join("run-0000001/report.json").exists());
}
