//! The dashboard tested in-process: the router answers requests without a socket (the binary
//! tests in `host/cli/tests/dashboard.rs` stay for the end-to-end view with a browser).

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use larmon_report::model::{LoadEntry, Quality};
use larmon_report::{Check, ChecksConfig, FigureFiles, Metric, PluginEntry, RunReport, Status};
use tower::ServiceExt;

fn report(run: &str, flag: Status, parity: f64) -> RunReport {
    RunReport {
        run: run.into(),
        version: None,
        files: vec![format!("{run}.h5").into()],
        run_kind: None,
        larmon_version: "0.1.0".into(),
        provenance: Default::default(),
        created_unix_s: 1.7e9,
        start_unix_s: Some(1_700_000_000),
        end_unix_s: Some(1_700_000_009),
        host: serde_json::json!({"rows": 1000}),
        detector: serde_json::Value::Null,
        quality: Quality { flag: Some(flag), host_checks: Vec::new() },
        plugins: vec![PluginEntry {
            name: "packet-rate".into(),
            version: "0.1.0".into(),
            description: "packets per second".into(),
            help: "Packet rate vs time. **Bad:** a rate dropping to zero.".into(),
            file: "packet_rate.wasm".into(),
            sha256: "ab".repeat(32),
            status: Status::Ok,
            error: None,
            load: LoadEntry { source: "Cache".into(), milliseconds: 1.0 },
            metrics: vec![Metric {
                name: "parity_error_fraction".into(),
                value: parity,
                error: None,
                unit: "".into(),
            }],
            checks: vec![Check {
                name: "parity".into(),
                status: flag,
                message: "<b>bold</b> claim".into(),
            }],
            figures: vec![FigureFiles {
                name: "rate".into(),
                title: "Rate".into(),
                svg: "packet-rate/rate.svg".into(),
                data: "packet-rate/rate.json".into(),
            }],
            results: Default::default(),
            log: Vec::new(),
        }],
    }
}

fn write(out: &Path, report: &RunReport) {
    let dir = out.join(&report.run);
    std::fs::create_dir_all(dir.join("packet-rate")).unwrap();
    std::fs::write(dir.join("report.json"), serde_json::to_vec(report).unwrap()).unwrap();
    std::fs::write(dir.join("packet-rate/rate.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>")
        .unwrap();
}

async fn get(out: &Path, uri: &str) -> (StatusCode, String, Option<String>) {
    let response = crate::router(out, ChecksConfig::default())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let csp = response
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned(), csp)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("larmon-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn pages_api_and_metrics_show_the_runs() {
    let out = scratch("pages");
    write(&out, &report("run-0000001", Status::Ok, 0.001));
    write(&out, &report("run-0000002", Status::Error, 0.2));

    let (status, page, csp) = get(&out, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("run-0000001") && page.contains("run-0000002"), "{page}");
    assert!(csp.is_some_and(|c| !c.contains("script-src")), "pages carry a CSP without scripts");

    let (status, page, _) = get(&out, "/runs/run-0000002").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("parity_error_fraction"));
    assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;") && !page.contains("<b>bold</b>"), "escaped");

    let (status, api, _) = get(&out, "/api/runs").await;
    assert_eq!(status, StatusCode::OK);
    let runs: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{api}");

    let (_, metrics, _) = get(&out, "/metrics").await;
    assert!(metrics.contains("larmon_runs 2"), "{metrics}");
    assert!(metrics.contains("metric=\"parity_error_fraction\",unit=\"\"} 0.2"), "{metrics}");

    let (status, _, _) = get(&out, "/runs/run-9999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn figure_files_are_served_only_from_inside_the_output_directory() {
    let out = scratch("files");
    write(&out, &report("r1", Status::Ok, 0.0));
    std::fs::write(out.join("secret.txt"), "secret").unwrap();

    let (status, svg, csp) = get(&out, "/files/r1/packet-rate/rate.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(svg.starts_with("<svg"));
    assert!(csp.is_some(), "SVGs are served with their own CSP");

    for escape in
        ["/files/r1/../secret.txt", "/files/r1/%2e%2e/secret.txt", "/files/..%2Fsecret.txt/x"]
    {
        let (status, body, _) = get(&out, escape).await;
        assert_ne!(status, StatusCode::OK, "{escape}");
        assert!(!body.contains("secret"), "{escape}: {body}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// A plugin's SVG is never a page: a click on a figure opens larmon's figure page, which shows
/// it as an image; the SVG itself comes as an attachment with a sandboxing CSP.
#[tokio::test]
async fn a_figure_is_shown_as_an_image_never_opened_as_a_page() {
    let out = scratch("figure-page");
    write(&out, &report("r1", Status::Ok, 0.0));
    let navigating = "<svg xmlns='http://www.w3.org/2000/svg'><foreignObject><meta \
                      xmlns='http://www.w3.org/1999/xhtml' http-equiv='refresh' \
                      content='0;url=https://example.org/'/></foreignObject></svg>";
    std::fs::write(out.join("r1/packet-rate/rate.svg"), navigating).unwrap();

    let (_, page, _) = get(&out, "/runs/r1").await;
    assert!(page.contains("<a href=\"/figure/r1/packet-rate/rate.svg\">"), "{page}");
    assert!(!page.contains("<a href=\"/files/r1/packet-rate/rate.svg\">"), "{page}");
    let (status, view, _) = get(&out, "/figure/r1/packet-rate/rate.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(view.contains("<img src=\"/files/r1/packet-rate/rate.svg\""), "{view}");
    assert!(!view.contains("http-equiv"), "the SVG is not inlined: {view}");

    let response = crate::router(&out, ChecksConfig::default())
        .oneshot(Request::get("/files/r1/packet-rate/rate.svg").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        response.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    };
    assert!(header("content-disposition").starts_with("attachment"), "opened as a page");
    assert!(header("content-security-policy").contains("sandbox"));
    for missing in ["/figure/r1/packet-rate/nope.svg", "/figure/r1/../secret.svg"] {
        assert_eq!(get(&out, missing).await.0, StatusCode::NOT_FOUND, "{missing}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// A NaN or infinite metric keeps its run readable and visible (report.json holds finite
/// numbers only: null plus the value's text), and one unreadable report.json hides no other run.
#[tokio::test]
async fn odd_numbers_and_a_broken_report_hide_no_run() {
    let out = scratch("odd-numbers");
    let mut odd = report("run-0000001", Status::Warning, f64::NAN);
    odd.plugins[0].metrics.push(Metric {
        name: "rate_ratio".into(),
        value: f64::INFINITY,
        error: Some(f64::NAN),
        unit: "".into(),
    });
    write(&out, &odd);
    let text = std::fs::read_to_string(out.join("run-0000001/report.json")).unwrap();
    assert!(text.contains("\"value\":null,\"value_text\":\"NaN\""), "{text}");
    assert!(!text.contains("NaN,") && !text.contains(":inf"), "only finite JSON numbers");
    write(&out, &report("run-0000002", Status::Ok, 0.0));
    std::fs::create_dir_all(out.join("run-0000003")).unwrap();
    std::fs::write(out.join("run-0000003/report.json"), "{\"run\": \"run-0000003\", \"plug")
        .unwrap();

    let (_, overview, _) = get(&out, "/").await;
    assert!(overview.contains("run-0000001") && overview.contains("run-0000002"), "{overview}");
    assert!(overview.contains("run-0000003"), "the unreadable report is named: {overview}");
    let (status, page, _) = get(&out, "/runs/run-0000001").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("NaN") && page.contains("inf"), "{page}");
    let (_, api, _) = get(&out, "/api/runs/run-0000001").await;
    let back: RunReport = serde_json::from_str(&api).unwrap();
    assert!(back.plugins[0].metrics[0].value.is_nan());
    assert_eq!(back.plugins[0].metrics[1].value, f64::INFINITY);
    let _ = std::fs::remove_dir_all(&out);
}

/// The flag pills keep white text on their colour: a bare `.ok`/`.warning`/`.error` rule that
/// sets `color` also matches `<span class="flag error">` and turned its text red on red.
#[test]
fn no_stylesheet_rule_colours_the_text_of_a_flag_pill_like_its_background() {
    let css = include_str!("style.css");
    for rule in css.split('}') {
        let Some((selectors, declarations)) = rule.split_once('{') else { continue };
        let sets_text_colour = declarations
            .split(';')
            .any(|d| d.split_once(':').is_some_and(|(name, _)| name.trim() == "color"));
        for selector in selectors.split(',').map(|s| s.trim().rsplit("*/").next().unwrap().trim()) {
            for flag in ["ok", "warning", "error"] {
                let bare = format!(".{flag}");
                assert!(
                    !(sets_text_colour && selector == bare),
                    "`{selector}` sets the text colour of every `flag {flag}` pill"
                );
            }
        }
    }
    assert!(css.contains(".flag {") && css.contains("color: #fff"), "the pills' white text");
}

/// A reviewer version sits beside the official report: the run page lists it with its flag and
/// the metrics that differ; its own page is marked as not official and shows its figures from
/// its folder; the overview and the API list the run once.
#[tokio::test]
async fn the_run_page_shows_reviewer_versions_beside_the_official_report() {
    let out = scratch("versions");
    let mut official = report("run-0000001", Status::Ok, 0.001);
    official.provenance.detector_sha256 = "d0".repeat(32);
    write(&out, &official);
    let mut version = report("run-0000001", Status::Error, 0.25);
    version.version = Some("alice".into());
    version.provenance.replaced_plugins.push(larmon_report::ReplacedPlugin {
        name: "packet-rate".into(),
        bundled_file: "larmon_plugin_packet_rate.wasm".into(),
        bundled_sha256: "cd".repeat(32),
        by_file: "mine.wasm".into(),
    });
    let dir = out.join("run-0000001/versions/alice");
    std::fs::create_dir_all(dir.join("packet-rate")).unwrap();
    std::fs::write(dir.join("report.json"), serde_json::to_vec(&version).unwrap()).unwrap();
    std::fs::write(dir.join("packet-rate/rate.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>")
        .unwrap();

    let (_, page, _) = get(&out, "/runs/run-0000001").await;
    assert!(page.contains("Reviewer versions"), "{page}");
    assert!(page.contains("href=\"/runs/run-0000001/versions/alice\""), "{page}");
    let row = page.split("<tr>").find(|r| r.contains("packet-rate/parity_error_fraction")).unwrap();
    assert!(row.contains("0.25") && row.contains("0.249"), "official, version, difference: {row}");
    assert!(page.contains(&"d0".repeat(8)), "the detector description's hash: {page}");

    let (status, page, _) = get(&out, "/runs/run-0000001/versions/alice").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("not the official report"), "{page}");
    assert!(page.contains("/files/run-0000001/versions/alice/packet-rate/rate.svg"), "{page}");
    assert!(page.contains("was replaced by mine.wasm"), "{page}");
    let (status, svg, _) =
        get(&out, "/files/run-0000001/versions/alice/packet-rate/rate.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(svg.starts_with("<svg"));
    for missing in ["/runs/run-0000001/versions/bob", "/runs/run-0000001/versions/..%2F.."] {
        assert_eq!(get(&out, missing).await.0, StatusCode::NOT_FOUND, "{missing}");
    }
    let (_, api, _) = get(&out, "/api/runs").await;
    let runs: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{api}");
    let _ = std::fs::remove_dir_all(&out);
}

/// The plugins page lists every component hash a plugin ran as, so a rebuilt plugin shows.
#[tokio::test]
async fn the_plugins_page_lists_every_component_hash_seen() {
    let out = scratch("plugin-hashes");
    write(&out, &report("run-0000001", Status::Ok, 0.0));
    let mut rebuilt = report("run-0000002", Status::Ok, 0.0);
    rebuilt.plugins[0].sha256 = "ef".repeat(32);
    write(&out, &rebuilt);
    let (_, page, _) = get(&out, "/plugins").await;
    assert!(page.contains(&"ab".repeat(8)) && page.contains(&"ef".repeat(8)), "{page}");
    let (_, api, _) = get(&out, "/api/plugins").await;
    let plugins: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(plugins[0]["sha256_seen"].as_array().map(Vec::len), Some(2), "{api}");
    let _ = std::fs::remove_dir_all(&out);
}

async fn post_form(router: axum::Router, uri: &str, form: &str) -> (StatusCode, String, String) {
    let request = Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, location, String::from_utf8_lossy(&bytes).into_owned())
}

/// A sign-off from the run page needs the server's token; a good one is recorded with who and
/// why, shown on the run page and in the overview, and kept in the history after a newer one.
#[tokio::test]
async fn a_sign_off_from_the_dashboard_needs_the_token_and_shows_everywhere() {
    let out = scratch("signoff");
    write(&out, &report("run-0000001", Status::Error, 0.2));
    let token = "0123456789abcdef-secret";
    let dashboard =
        || crate::Dashboard { signoff_token: Some(token.into()), ..crate::Dashboard::default() };
    let form = |decision: &str, token: &str| {
        format!(
            "decision={decision}&by=Ana+Shifter&comment=parity+errors+from+a+known+cable&token={token}"
        )
    };

    let (status, _, _) = post_form(
        crate::router(&out, ChecksConfig::default()),
        "/runs/run-0000001/signoff",
        &form("good", token),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a server without a token takes no sign-off");
    let (status, _, body) = post_form(
        crate::router_for(&out, dashboard()),
        "/runs/run-0000001/signoff",
        &form("good", "guess"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("wrong sign-off token"), "{body}");
    let (status, _, body) = post_form(
        crate::router_for(&out, dashboard()),
        "/runs/run-0000001/signoff",
        &format!("decision=good&by=&comment=x&token={token}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        larmon_signoff::Registry::open(&out).unwrap().history("run-0000001").unwrap().is_empty()
    );

    let (status, location, _) = post_form(
        crate::router_for(&out, dashboard()),
        "/runs/run-0000001/signoff",
        &form("good", token),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/runs/run-0000001#signoff");
    let (status, _, _) = post_form(
        crate::router_for(&out, dashboard()),
        "/runs/run-0000009/signoff",
        &form("good", token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no sign-off of a run without a report");

    let history = larmon_signoff::Registry::open(&out).unwrap().history("run-0000001").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].by, "Ana Shifter");
    assert_eq!(history[0].comment, "parity errors from a known cable");
    assert_eq!(history[0].automatic_flag.as_deref(), Some("error"));

    let (_, page, _) = get(&out, "/runs/run-0000001").await;
    assert!(page.contains("class=\"flag good\""), "{page}");
    assert!(page.contains("parity errors from a known cable"), "{page}");
    assert!(!page.contains("name=\"token\""), "no form on a server without a token");
    let (_, overview, _) = get(&out, "/").await;
    assert!(overview.contains("class=\"flag good\"") && overview.contains("class=\"flag error\""));
    let (_, api, _) = get(&out, "/api/runs/run-0000001/signoff").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api[0]["decision"], "good");

    // The same token makes the run a reference, of every plugin or of one.
    let (status, _, _) = post_form(
        crate::router_for(&out, dashboard()),
        "/runs/run-0000001/reference",
        "plugin=&token=guess",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for form in [format!("plugin=&token={token}"), format!("plugin=dqdx&token={token}")] {
        let (status, _, _) =
            post_form(crate::router_for(&out, dashboard()), "/runs/run-0000001/reference", &form)
                .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let references = larmon_report::references::References::read(&out).unwrap();
    assert_eq!(references.of("timing"), Some("run-0000001"));
    assert_eq!(references.plugins["dqdx"], "run-0000001");
    let (_, page, _) = get(&out, "/runs/run-0000001").await;
    assert!(page.contains("This run is the reference of: every plugin, dqdx"), "{page}");

    // ... and of one run kind: the form offers the run's own kind; a bad kind is refused.
    let mut beam = report("run-0000002", Status::Ok, 0.0);
    beam.run_kind = Some("beam".into());
    write(&out, &beam);
    let (_, page) = get_with(crate::router_for(&out, dashboard()), "/runs/run-0000002", None).await;
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<option value=\"beam\" selected>beam runs</option>"), "{page}");
    assert!(page.contains("beam run · "), "the kind in the run's line: {page}");
    let (status, _, _) = post_form(
        crate::router_for(&out, dashboard()),
        "/runs/run-0000002/reference",
        &format!("plugin=timing&kind=beam&token={token}"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = post_form(
        crate::router_for(&out, dashboard()),
        "/runs/run-0000002/reference",
        &format!("plugin=&kind=a%20b&token={token}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let references = larmon_report::references::References::read(&out).unwrap();
    assert_eq!(references.for_kind(Some("beam")).of("timing"), Some("run-0000002"));
    assert_eq!(references.of("timing"), Some("run-0000001"));
    assert_eq!(references.for_kind(Some("beam")).of("dqdx"), Some("run-0000001"));
    let (_, page, _) = get(&out, "/runs/run-0000002").await;
    assert!(page.contains("This run is the reference of: beam runs: timing"), "{page}");
    let _ = std::fs::remove_dir_all(&out);
}

fn write_health(out: &Path, heartbeat_age_s: f64, data_age_s: f64, errors: usize) {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let health = larmon_report::WatchHealth {
        updated_unix_s: now - heartbeat_age_s,
        pid: 4242,
        folder: "/data/daq".into(),
        newest_data_unix_s: Some(now - data_age_s),
        files_open: 3,
        files_unfinished: 1,
        files_with_errors: errors,
        reports_unwritten: 0,
        last_error: (errors > 0).then(|| "binary-0000007.h5: truncated".into()),
    };
    std::fs::write(out.join("watch-health.json"), serde_json::to_vec(&health).unwrap()).unwrap();
}

/// The overview says when the watcher stopped or no data arrives; /metrics carries the
/// heartbeat and every metric of each recent run, not only the latest.
#[tokio::test]
async fn the_watchers_health_shows_on_the_overview_and_in_metrics() {
    let out = scratch("health");
    write(&out, &report("run-0000001", Status::Ok, 0.001));
    write(&out, &report("run-0000002", Status::Error, 0.2));
    let (_, overview, _) = get(&out, "/").await;
    assert!(!overview.contains("banner"), "no watcher, no banner: {overview}");

    write_health(&out, 2.0, 30.0, 0);
    let (_, overview, _) = get(&out, "/").await;
    assert!(overview.contains("banner ok") && overview.contains("Watcher running"), "{overview}");
    write_health(&out, 2.0, 3600.0, 0);
    let (_, overview, _) = get(&out, "/").await;
    assert!(overview.contains("banner warning") && overview.contains("No new data"), "{overview}");
    write_health(&out, 600.0, 30.0, 1);
    let (_, overview, _) = get(&out, "/").await;
    assert!(overview.contains("banner error"), "{overview}");
    assert!(overview.contains("The watcher has stopped: last heartbeat 10 min ago"), "{overview}");

    let (_, metrics, _) = get(&out, "/metrics").await;
    assert!(metrics.contains("larmon_watch_up 0\n"), "{metrics}");
    assert!(metrics.contains("larmon_watch_files_with_errors 1\n"), "{metrics}");
    for run in ["run-0000001", "run-0000002"] {
        let sample = format!("larmon_metric{{run=\"{run}\",plugin=\"packet-rate\"");
        assert!(metrics.contains(&sample), "every recent run's metrics: {metrics}");
    }
    assert!(metrics.contains("larmon_run_quality{run=\"run-0000001\"} 0"), "{metrics}");
    assert!(metrics.contains("larmon_latest_run_quality 2"), "{metrics}");
    let (_, one, _) = get(&out, "/metrics?runs=1").await;
    assert!(!one.contains("run=\"run-0000001\"") && one.contains("run=\"run-0000002\""), "{one}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Each larmon metric the alert rules use is one /metrics serves (a renamed metric would leave
/// an alert that never fires).
#[tokio::test]
async fn every_metric_of_the_alert_rules_is_served() {
    let out = scratch("alert-rules");
    write(&out, &report("run-0000001", Status::Ok, 0.0));
    write_health(&out, 1.0, 1.0, 0);
    let (_, metrics, _) = get(&out, "/metrics").await;
    let rules = include_str!("../../../docs/prometheus-alerts.yml");
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("larmon_"))
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 5, "{used:?}");
    for name in used {
        assert!(metrics.contains(&format!("# TYPE {name} gauge")), "{name} is not served");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// The runs of the points `/api/trends` gives for `uri`.
async fn trend_runs(out: &Path, uri: &str) -> Vec<String> {
    let (_, api, _) = get(out, uri).await;
    let points: serde_json::Value = serde_json::from_str(&api).unwrap();
    points.as_array().unwrap().iter().map(|p| p["run"].as_str().unwrap().to_string()).collect()
}

/// Trends open on the quality metrics (configured ones first), show several at once, and
/// cover a range of runs given by run names, UTC dates or a count.
#[tokio::test]
async fn trends_show_several_quality_metrics_over_a_chosen_range() {
    let out = scratch("trends");
    for day in 0..5u64 {
        let mut r = report(&format!("run-000000{day}"), Status::Ok, day as f64);
        // 2023-11-14 22:13:20 UTC plus whole days.
        r.start_unix_s = Some(1_700_000_000 + day * 86_400);
        r.end_unix_s = r.start_unix_s.map(|s| s + 9);
        r.plugins[0].metrics.push(Metric {
            name: "larpix_packets".into(),
            value: 1000.0,
            error: None,
            unit: "".into(),
        });
        write(&out, &r);
    }
    let (_, page, _) = get(&out, "/trends").await;
    assert!(
        page.contains("/trends.svg?metric=packet-rate%2Fparity_error_fraction"),
        "the quality metric by default, not the first name: {page}"
    );
    assert!(!page.contains("/trends.svg?metric=packet-rate%2Flarpix_packets"), "{page}");
    assert!(page.contains("5 runs from run-0000000 to run-0000004"), "{page}");

    let both =
        "/trends?metric=packet-rate%2Flarpix_packets&metric=packet-rate%2Fparity_error_fraction";
    let (_, page, _) = get(&out, both).await;
    assert_eq!(page.matches("<img src=\"/trends.svg?").count(), 2, "{page}");

    let metric = "metric=packet-rate%2Fparity_error_fraction";
    let by_run =
        trend_runs(&out, &format!("/api/trends?{metric}&from=run-0000001&to=run-0000003")).await;
    assert_eq!(by_run, ["run-0000001", "run-0000002", "run-0000003"]);
    // 2023-11-15 is the day of run 1 (22:13 UTC), 2023-11-16 that of run 2.
    let by_date =
        trend_runs(&out, &format!("/api/trends?{metric}&from=2023-11-15&to=2023-11-16")).await;
    assert_eq!(by_date, ["run-0000001", "run-0000002"]);
    let latest = trend_runs(&out, &format!("/api/trends?{metric}&last=2")).await;
    assert_eq!(latest, ["run-0000003", "run-0000004"]);
    let two = trend_runs(&out, "/api/trends?metric=packet-rate%2Flarpix_packets&metric=packet-rate%2Fparity_error_fraction&last=1").await;
    assert_eq!(two.len(), 2, "one point per metric");
    let (status, svg, _) =
        get(&out, "/trends.svg?metric=packet-rate%2Fparity_error_fraction&last=3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(svg.contains("run-0000004") && !svg.contains("run-0000001"), "the range: {svg}");
    let _ = std::fs::remove_dir_all(&out);
}

/// GET (with an optional bearer token) on a router; status and body bytes.
async fn get_with(router: axum::Router, uri: &str, bearer: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut request = Request::get(uri);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    (status, axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap().to_vec())
}

/// Downloads follow the server's policy — open on loopback, behind a token (header or the files
/// page's form) or off beyond it — and a file whose source is gone comes from a local replica.
#[tokio::test]
async fn downloads_need_the_token_beyond_this_machine_and_fall_back_to_a_replica() {
    use crate::Downloads;
    let out = scratch("serve-downloads");
    write(&out, &report("run-0000007", Status::Ok, 0.0));
    let source = out.join("binary-0000007-x.h5");
    std::fs::write(&source, b"the bytes of run 7").unwrap();
    let (adler32, size) = larmon_catalog::Adler32::of_file(&source).unwrap();
    let db = out.join("dm.sqlite");
    let catalog = larmon_catalog::Catalog::open(&db).unwrap();
    let declaration = larmon_catalog::Declaration {
        namespace: "neardet-2x2-lar-charge".into(),
        name: "binary-0000007-x.h5".into(),
        size,
        checksums: [("adler32".to_string(), adler32.to_string())].into(),
        metadata: [("core.runs".to_string(), serde_json::json!([7]))].into_iter().collect(),
        parents: Vec::new(),
    };
    catalog.add(&source, &declaration).unwrap();
    let id = catalog.list(Some(7)).unwrap()[0].id;
    let token = "a-download-token-of-32-characters";
    let router = |downloads: Downloads| {
        crate::router_for(
            &out,
            crate::Dashboard { catalog: Some(db.clone()), downloads, ..Default::default() },
        )
    };
    let uri = format!("/download/{id}");

    // Open (loopback): the bytes.
    assert_eq!(get_with(router(Downloads::Open), &uri, None).await.1, b"the bytes of run 7");
    // Token: none → 401, wrong → 403, right → the bytes; the files page asks for it.
    let guarded = || router(Downloads::Token(token.into()));
    assert_eq!(get_with(guarded(), &uri, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get_with(guarded(), &uri, Some("not-the-token")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(get_with(guarded(), &uri, Some(token)).await.1, b"the bytes of run 7");
    let (status, _, body) = post_form(guarded(), &uri, &format!("token={token}")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "the bytes of run 7"));
    let (status, _, _) = post_form(guarded(), &uri, "token=wrong").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, page) = get_with(guarded(), "/runs/run-0000007/files", None).await;
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("name=\"token\"") && !page.contains(&format!("href=\"{uri}\"")));
    // Off (reachable beyond the machine, no token): refused, and the page says so.
    assert_eq!(get_with(router(Downloads::Off), &uri, Some(token)).await.0, StatusCode::FORBIDDEN);
    let (_, page) = get_with(router(Downloads::Off), "/runs/run-0000007/files", None).await;
    assert!(String::from_utf8(page).unwrap().contains("no downloads"));

    // The DAQ buffer cleaned up: the verified replica at NERSC is sent instead.
    let replica = out.join("nersc-copy.h5");
    std::fs::copy(&source, &replica).unwrap();
    catalog.add_replica(id, "NERSC", replica.to_str().unwrap(), &adler32.to_string()).unwrap();
    std::fs::remove_file(&source).unwrap();
    assert_eq!(get_with(router(Downloads::Open), &uri, None).await.1, b"the bytes of run 7");
    std::fs::remove_file(&replica).unwrap();
    assert_eq!(get_with(router(Downloads::Open), &uri, None).await.0, StatusCode::NOT_FOUND);
}

#[test]
fn downloads_are_open_on_loopback_only_unless_a_token_is_given() {
    use crate::Downloads;
    let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
    assert_eq!(Downloads::for_address(&at("127.0.0.1:8080"), None), Downloads::Open);
    assert_eq!(Downloads::for_address(&at("[::1]:8080"), None), Downloads::Open);
    assert_eq!(Downloads::for_address(&at("0.0.0.0:8080"), None), Downloads::Off);
    assert_eq!(
        Downloads::for_address(&at("0.0.0.0:8080"), Some("t".into())),
        Downloads::Token("t".into())
    );
}

/// The data-management chain's status (`larmon daq` writes it into the DQ folder) is served
/// in /metrics: up, backlog and done per stage, failures.
#[tokio::test]
async fn the_daq_chains_backlog_per_stage_is_in_metrics() {
    let out = scratch("serve-daq-status");
    write(&out, &report("run-0000007", Status::Ok, 0.0));
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let status = larmon_report::DaqStatus {
        updated_unix_s: now,
        backlog: [("replicate".to_string(), 2), ("process".to_string(), 1)].into(),
        done: [("declare".to_string(), 5)].into(),
        failures: vec![larmon_report::DaqFailure::default()],
        ..Default::default()
    };
    std::fs::write(out.join("daq-status.json"), serde_json::to_vec(&status).unwrap()).unwrap();
    let (_, metrics, _) = get(&out, "/metrics").await;
    for line in [
        "larmon_daq_up 1\n",
        "larmon_daq_backlog{stage=\"replicate\"} 2\n",
        "larmon_daq_backlog{stage=\"process\"} 1\n",
        "larmon_daq_done{stage=\"declare\"} 5\n",
        "larmon_daq_failures 1\n",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
}

/// `/files` searches the whole catalog by run, kind, tier, site and dates (page and JSON); a
/// bad date is a 400 that says how to write it.
#[tokio::test]
async fn the_catalog_is_searched_by_run_kind_tier_site_and_date() {
    let out = scratch("serve-search");
    write(&out, &report("run-0000007", Status::Ok, 0.0));
    let db = out.join("dm.sqlite");
    let catalog = larmon_catalog::Catalog::open(&db).unwrap();
    // Run 7 (charge, raw, 2023-03-15), run 8 (charge, raw, 2023-03-16), run 8 light.
    let files = [
        ("binary-0000007-a.h5", "neardet-2x2-lar-charge", 7, "raw", 1_678_870_800.0),
        ("binary-0000008-b.h5", "neardet-2x2-lar-charge", 8, "raw", 1_678_957_200.0),
        ("mpd_run_sim_rctl_8_p0.data", "neardet-2x2-lar-light", 8, "raw", 1_678_957_200.0),
    ];
    for (name, namespace, run, tier, start) in files {
        let path = out.join(name);
        std::fs::write(&path, name.as_bytes()).unwrap();
        let (adler32, size) = larmon_catalog::Adler32::of_file(&path).unwrap();
        let metadata = serde_json::json!({
            "core.runs": [run], "core.data_tier": tier,
            "core.start_time": start, "core.end_time": start + 60.0,
        });
        let declaration = larmon_catalog::Declaration {
            namespace: namespace.into(),
            name: name.into(),
            size,
            checksums: [("adler32".to_string(), adler32.to_string())].into(),
            metadata: metadata.as_object().unwrap().clone(),
            parents: Vec::new(),
        };
        catalog.add(&path, &declaration).unwrap();
    }
    let light = catalog.find("mpd_run_sim_rctl_8_p0.data").unwrap().unwrap();
    catalog.add_replica(light.id, "NERSC", "/nersc/x", &light.adler32).unwrap();
    let router = || {
        crate::router_for(
            &out,
            crate::Dashboard { catalog: Some(db.clone()), ..Default::default() },
        )
    };
    let names = |uri: &str| {
        let router = router();
        let uri = uri.to_string();
        async move {
            let (status, body) = get_with(router, &uri, None).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&body));
            let found: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let mut names: Vec<String> = found
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["file"]["declaration"]["name"].as_str().unwrap().to_string())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(names("/api/files").await.len(), 3);
    assert_eq!(
        names("/api/files?run=8").await,
        ["binary-0000008-b.h5", "mpd_run_sim_rctl_8_p0.data"]
    );
    assert_eq!(names("/api/files?run=8&kind=charge").await, ["binary-0000008-b.h5"]);
    assert_eq!(names("/api/files?site=NERSC").await, ["mpd_run_sim_rctl_8_p0.data"]);
    assert_eq!(names("/api/files?from=2023-03-16").await.len(), 2);
    assert_eq!(names("/api/files?to=2023-03-15&tier=raw").await, ["binary-0000007-a.h5"]);
    assert!(names("/api/files?tier=hit-reconstructed").await.is_empty());
    let (status, body) = get_with(router(), "/files?from=15.03.2023", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("write YYYY-MM-DD"));
    let (status, body) = get_with(router(), "/files?run=8", None).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("2 files") && page.contains("binary-0000008-b.h5"), "{page}");
    assert!(page.contains("value=\"8\""), "the form keeps the search: {page}");
}
