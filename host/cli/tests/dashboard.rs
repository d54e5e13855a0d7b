//! `larmon serve` over a real run report: pages, figure files, security headers, path
//! traversal, JSON API, Prometheus metrics; `larmon runs --good`; checks from `[checks]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use larmon_tests::{Server, data, scratch};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `larmon serve OUT --config CONFIG` on a free port.
fn serve(out: &Path, config: &Path) -> Server {
    serve_with(out, &["--config", config.to_str().unwrap()])
}

/// `larmon serve OUT EXTRA…` on a free port.
fn serve_with(out: &Path, extra: &[&str]) -> Server {
    Server::start(Path::new(env!("CARGO_BIN_EXE_larmon")), out, extra)
}

/// A real report of the small fixture in `dir/reports/run-0002`, with configured checks.
fn make_report(dir: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("reports");
    let config = dir.join("larmon.toml");
    std::fs::write(
        &config,
        format!(
            "[[modules]]\nid = 1\nlayout = {:?}\n\
             [checks.\"packet-rate/parity_error_fraction\"]\nwarn = [0.0, 0.0005]\nerror = [0.0, 0.01]\n\
             [checks.\"timing/io_group1_sync_offset_ticks\"]\nwarn = [-2.0, 2.0]\n",
            data("small-layout.yaml")
        ),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["run", data("small-raw.h5").to_str().unwrap(), "--run", "run-0002", "--out"])
        .arg(&out)
        .arg("--plugin-dir")
        .arg(repo().join("target/wasm32-wasip2/plugin"))
        .arg("--config")
        .arg(&config)
        .arg("--cache-dir")
        .arg(repo().join("target/test-plugin-cache"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    (out, config)
}

#[test]
fn dashboard_serves_runs_figures_trends_api_and_metrics_safely() {
    let dir = scratch("dashboard");
    let (out, config) = make_report(&dir);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run-0002/report.json")).unwrap())
            .unwrap();
    // Configured checks: 33 / 36263 = 0.09 % parity errors is above the 0.05 % warning limit.
    let host_checks = report["quality"]["host_checks"].as_array().unwrap();
    assert_eq!(host_checks[0]["name"], "packet-rate/parity_error_fraction");
    assert_eq!(host_checks[0]["status"], "warning");
    assert_eq!(host_checks[1]["status"], "ok");
    assert_eq!(report["quality"]["flag"], "warning");
    assert_eq!(report["start_unix_s"], 1_678_848_001u64);

    let server = serve(&out, &config);
    // Overview: the run, its flag; the filter hides it when asking for errors only.
    let (status, headers, page) = server.get("/");
    assert_eq!(status, 200);
    let csp =
        headers.lines().find(|l| l.starts_with("content-security-policy")).unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script"), "{csp}");
    assert!(page.contains("href=\"/runs/run-0002\"") && page.contains("flag warning"), "{page}");
    assert!(!server.get("/?flag=error").2.contains("/runs/run-0002"));
    assert!(server.get("/?flag=warning&q=0002").2.contains("/runs/run-0002"));

    // Run page: every figure of the report as an <img> (never inlined), shifter text, metrics,
    // coloured checks.
    let (status, _, page) = server.get("/runs/run-0002");
    assert_eq!(status, 200);
    assert!(!page.contains("<svg"), "plugin SVG must not be inlined into the page");
    let mut figures = 0;
    for plugin in report["plugins"].as_array().unwrap() {
        for figure in plugin["figures"].as_array().unwrap() {
            let src = format!("/files/run-0002/{}", figure["svg"].as_str().unwrap());
            assert!(page.contains(&format!("<img src=\"{src}\"")), "{src} not on the page");
            let (status, headers, svg) = server.get(&src);
            assert_eq!(status, 200, "{src}");
            assert!(
                headers.contains("content-type: image/svg+xml")
                    && headers.contains("default-src 'none'")
            );
            assert!(svg.starts_with("<svg"));
            figures += 1;
        }
    }
    assert!(figures >= 20, "{figures} figures");
    assert!(page.contains("Moyal"), "dqdx shifter text missing");
    assert!(page.contains("<strong>Bad:</strong>"), "shifter text without its emphasis");
    assert!(page.contains("parity_error_fraction") && page.contains("<tr class=\"warning\">"));

    // Nothing outside the run directory, nothing but figures.
    for path in [
        "/files/run-0002/..%2F..%2F..%2Fetc%2Fpasswd",
        "/files/run-0002/../run-0002/report.json",
        "/files/..%2Frun-0002/packet-rate/rate.svg",
        "/files/run-0002/report.json%00.svg",
        "/files/run-0002/%2Fetc%2Fpasswd",
        "/runs/..%2F..%2Fetc",
    ] {
        assert_eq!(server.get(path).0, 404, "{path}");
    }
    // Read-only.
    assert_eq!(server.request("POST", "/").0, 405);
    assert_eq!(server.request("DELETE", "/runs/run-0002").0, 405);

    // Trends: a page, an SVG with the metric, the points as JSON.
    let key = "packet-rate/parity_error_fraction";
    let (status, _, page) = server.get(&format!("/trends?metric={}", key.replace('/', "%2F")));
    assert_eq!(status, 200);
    assert!(page.contains("/trends.svg?metric=packet-rate%2Fparity_error_fraction"), "{page}");
    let (status, _, svg) = server.get("/trends.svg?metric=packet-rate%2Fparity_error_fraction");
    assert_eq!(status, 200);
    assert!(svg.contains("parity_error_fraction per run"));
    let points: serde_json::Value =
        serde_json::from_str(&server.get("/api/trends?metric=packet-rate%2Fparity_errors").2)
            .unwrap();
    assert_eq!(points[0]["value"], 33.0);

    // API and Prometheus.
    let runs: serde_json::Value = serde_json::from_str(&server.get("/api/runs").2).unwrap();
    assert_eq!(runs[0]["run"], "run-0002");
    assert_eq!(runs[0]["flag"], "warning");
    let full: serde_json::Value =
        serde_json::from_str(&server.get("/api/runs/run-0002").2).unwrap();
    assert_eq!(full, report);
    let plugins: serde_json::Value = serde_json::from_str(&server.get("/api/plugins").2).unwrap();
    assert_eq!(plugins.as_array().unwrap().len(), 14);
    let metrics = server.get("/metrics").2;
    assert!(metrics.contains("larmon_run_quality{run=\"run-0002\"} 1"), "{metrics}");
    assert!(metrics.contains("larmon_metric{run=\"run-0002\",plugin=\"packet-rate\",metric=\"parity_errors\",unit=\"packets\"} 33"));

    // Good-run list: a warning run is good only when warnings are accepted.
    let good = |extra: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["runs", out.to_str().unwrap(), "--good"])
            .args(extra)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(good(&[]).as_array().unwrap().len(), 0);
    assert_eq!(good(&["--accept-warnings"])[0]["run"], "run-0002");
}

fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser", "google-chrome"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Pixels of a screenshot within `tolerance` of `color`.
fn count_color(png_file: &Path, color: [u8; 3], tolerance: i32) -> usize {
    let decoder =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    buffer[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| (0..3).all(|k| (i32::from(p[k]) - i32::from(color[k])).abs() <= tolerance))
        .count()
}

/// Copies a folder tree (no symbolic links in report folders).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !to.starts_with(&path) {
                copy_dir(&path, &to.join(entry.file_name()));
            }
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Pure white pixels inside the shape of `color` (±10), row by row between its first and last
/// pixel of that colour: the text of a badge of that colour, when it is the only one on the
/// screenshot (the page around a rounded badge is white too, so corners must not count).
fn white_inside_color(png_file: &Path, color: [u8; 3]) -> usize {
    let decoder =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let pixel = |x: usize, y: usize| {
        let i = (y * width + x) * channels;
        &buffer[i..i + 3]
    };
    let near = |p: &[u8]| (0..3).all(|k| (i32::from(p[k]) - i32::from(color[k])).abs() <= 10);
    let mut white = 0;
    for y in 0..height {
        let inside: Vec<usize> = (0..width).filter(|&x| near(pixel(x, y))).collect();
        if let (Some(&first), Some(&last)) = (inside.first(), inside.last()) {
            white += (first..=last).filter(|&x| pixel(x, y).iter().all(|&v| v >= 245)).count();
        }
    }
    white
}

#[test]
fn a_browser_renders_the_overview_run_page_and_trends() {
    let Some(browser) = find_browser() else {
        println!("SKIPPED: no chromium on PATH (CI installs Debian's chromium)");
        return;
    };
    let dir = scratch("browser");
    let (out, config) = make_report(&dir);
    // A run flagged error (signed off good by a shifter) and a reviewer version of run-0002,
    // both made from the real report.
    let official = out.join("run-0002");
    let report = std::fs::read_to_string(official.join("report.json")).unwrap();
    let mut error_run: serde_json::Value = serde_json::from_str(&report).unwrap();
    error_run["run"] = "run-0003".into();
    error_run["quality"]["flag"] = "error".into();
    std::fs::create_dir_all(out.join("run-0003")).unwrap();
    std::fs::write(out.join("run-0003/report.json"), error_run.to_string()).unwrap();
    let signed = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["signoff", out.to_str().unwrap(), "run-0003", "--flag", "good"])
        .args(["--by", "browser test", "--comment", "known cable"])
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let version_dir = official.join("versions/alice");
    copy_dir(&official, &version_dir);
    let mut version: serde_json::Value = serde_json::from_str(&report).unwrap();
    version["version"] = "alice".into();
    std::fs::write(version_dir.join("report.json"), version.to_string()).unwrap();
    let server = serve(&out, &config);
    let shot = |path: &str, name: &str, height: u32| -> PathBuf {
        let file = dir.join(format!("{name}.png"));
        let status = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--window-size=1400,{height}"))
            .arg(format!("--screenshot={}", file.display()))
            .arg(format!("http://{}{path}", server.addr))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success() && file.exists(), "chromium failed on {path}");
        file
    };
    // The amber "warning" badge of the run in the overview.
    let overview = shot("/", "overview", 600);
    assert!(count_color(&overview, [217, 145, 0], 12) > 200, "no warning badge rendered");
    // The red "error" pill carries readable white text (it once was red on red), and the
    // shifter's green "good" decision stands beside it.
    let white_in_red = white_inside_color(&overview, [192, 57, 43]);
    assert!(white_in_red > 10, "{white_in_red} white pixels in the error pill: text not visible");
    assert!(count_color(&overview, [46, 139, 87], 12) > 150, "no sign-off badge rendered");
    // The reviewer version's page shows its own figures.
    let version = shot("/runs/run-0002/versions/alice", "version", 6000);
    let version_blue = count_color(&version, [31, 119, 180], 10);
    assert!(version_blue > 20_000, "only {version_blue} plot-blue pixels on the version page");
    // The run page: plugin figures drawn as images — histogram bars in the SDK's blue and the
    // viridis pixel maps fill many pixels; a broken image would show only its alt text.
    let run = shot("/runs/run-0002", "run", 6000);
    let blue = count_color(&run, [31, 119, 180], 10);
    assert!(blue > 20_000, "only {blue} plot-blue pixels: figures did not render");
    // channel-health's flag map: its categorical "ok" pale green fills the anodes.
    let flag_map_ok = count_color(&run, [199, 233, 192], 4);
    assert!(
        flag_map_ok > 5_000,
        "only {flag_map_ok} pale-green pixels: the flag map did not render"
    );
    // Trends: the points of the metric in the same blue.
    let trends = shot("/trends?metric=packet-rate%2Fparity_errors", "trends", 800);
    let points = count_color(&trends, [31, 119, 180], 10);
    assert!(points > 10, "{points} plot-blue pixels: trend point not rendered");
}

#[test]
fn files_page_lists_catalogued_files_with_checksums_replicas_and_downloads() {
    let dir = scratch("dashboard-files");
    let (out, _) = make_report(&dir);
    let db = dir.join("catalog.sqlite");
    let raw = data("small-raw.h5");
    let larmon = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_larmon")).args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let db_arg = db.to_str().unwrap();
    larmon(&["catalog", "--db", db_arg, "add", "--stable-s", "0", raw.to_str().unwrap()]);
    let dest = dir.join("nersc");
    larmon(&["transfer", "--db", db_arg, "--site", "NERSC", "--to", dest.to_str().unwrap()]);
    let adler = larmon(&["checksum", raw.to_str().unwrap()]);
    let adler = adler.split_whitespace().next().unwrap().to_string();

    let server = serve_with(&out, &["--catalog", db_arg]);
    let (status, _, run_page) = server.get("/runs/run-0002");
    assert_eq!(status, 200);
    assert!(run_page.contains("/runs/run-0002/files"), "no link to the files page");
    let (status, headers, page) = server.get("/runs/run-0002/files");
    assert_eq!(status, 200);
    assert!(headers.contains("content-security-policy"));
    assert!(page.contains("neardet-2x2-lar-charge:small-raw.h5"), "{page}");
    assert!(page.contains(&adler) && page.contains("NERSC") && page.contains("core.start_time"));
    let (_, _, api) = server.get("/api/runs/run-0002/files");
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api[0]["file"]["adler32"], adler.as_str());
    assert_eq!(api[0]["replicas"][0]["site"], "NERSC");
    // The download is the file, byte for byte; ids not in the catalog are 404.
    let id = api[0]["file"]["id"].as_i64().unwrap();
    let response = server.raw("GET", &format!("/download/{id}"));
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    assert!(head.contains("attachment; filename=\"small-raw.h5\""), "{head}");
    assert!(
        response[split..] == std::fs::read(&raw).unwrap()[..],
        "download differs from the file"
    );
    assert_eq!(server.get("/download/999999").0, 404);
    assert_eq!(server.get("/download/..%2f..%2fetc%2fpasswd").0, 400);
}

/// The channels a run flagged, exported from its page as a known-bad list and named in the
/// configuration, are known in the next run of the same data: channel-health counts them apart
/// and its checks see no new problem; outside the list's period they are new again.
#[test]
fn known_bad_channels_exported_from_a_run_are_told_from_new_problems() {
    let dir = scratch("known-bad");
    let (out, config) = make_report(&dir);
    let metric = |run: &str, name: &str| -> f64 {
        let text = std::fs::read_to_string(out.join(run).join("report.json")).unwrap();
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        let health = report["plugins"].as_array().unwrap().iter();
        let health = health.clone().find(|p| p["name"] == "channel-health").unwrap().clone();
        let value = health["metrics"].as_array().unwrap().iter().find(|m| m["name"] == name);
        value.unwrap_or_else(|| panic!("{name}: {health}"))["value"].as_f64().unwrap()
    };
    assert_eq!(metric("run-0002", "hot_channels"), 5.0, "the fixture's five hot pixels");
    assert_eq!(metric("run-0002", "known_problem_channels"), 0.0);

    let exported = {
        let server = serve(&out, &config);
        let (status, headers, body) = server.get("/api/runs/run-0002/known-bad.json");
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains("known-bad-run-0002.json"), "{headers}");
        assert!(server.get("/runs/run-0002").2.contains("/api/runs/run-0002/known-bad.json"));
        body
    };
    let list: serde_json::Value = serde_json::from_str(&exported).unwrap();
    let channels = list["channels"].as_array().unwrap();
    assert!(channels.len() >= 5, "{list}");
    assert!(channels.iter().all(|c| c["from"] == "2023-03-15"), "valid from the run's day: {list}");
    std::fs::write(dir.join("known-bad.json"), &exported).unwrap();
    let base = std::fs::read_to_string(&config).unwrap();
    let run = |name: &str, known_bad: &str| {
        let with_list = dir.join(format!("{name}.toml"));
        std::fs::write(&with_list, format!("known_bad_channels = {known_bad:?}\n{base}")).unwrap();
        let done = Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["run", data("small-raw.h5").to_str().unwrap(), "--run", name, "--out"])
            .arg(&out)
            .arg("--plugin-dir")
            .arg(repo().join("target/wasm32-wasip2/plugin"))
            .arg("--config")
            .arg(&with_list)
            .arg("--cache-dir")
            .arg(repo().join("target/test-plugin-cache"))
            .output()
            .unwrap();
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    };
    run("run-0003", "known-bad.json");
    assert_eq!(metric("run-0003", "hot_channels"), 0.0, "no new hot channel");
    assert_eq!(metric("run-0003", "known_problem_channels"), channels.len() as f64);
    let text = std::fs::read_to_string(out.join("run-0003/report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let known = &report["provenance"]["known_bad_channels"];
    assert!(known[0].as_str().unwrap().ends_with("known-bad.json"), "{known}");

    // The same list for a period before the run: the channels are new problems again.
    let old = exported
        .replace("\"from\":\"2023-03-15\"", "\"from\":\"2022-01-01\",\"to\":\"2023-01-01\"");
    assert_ne!(old, exported);
    std::fs::write(dir.join("known-bad-2022.json"), old).unwrap();
    run("run-0004", "known-bad-2022.json");
    assert_eq!(metric("run-0004", "hot_channels"), 5.0);
    assert_eq!(metric("run-0004", "known_problem_channels"), 0.0);

    // A broken list stops the run before any work, naming the entry.
    std::fs::write(dir.join("broken.json"), "[{\"io_group\": 1}]").unwrap();
    std::fs::write(
        dir.join("broken.toml"),
        format!("known_bad_channels = \"broken.json\"\n{base}"),
    )
    .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["run", data("small-raw.h5").to_str().unwrap(), "--out"])
        .arg(&out)
        .arg("--config")
        .arg(dir.join("broken.toml"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("broken.json") && stderr.contains("entry 1"), "{stderr}");
}
