//! The HTML pages (overview, run, trends, plugins), the JSON API and Prometheus metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use larmon_report::{RunReport, Status};
use serde::{Deserialize, Serialize};

use crate::{AppState, escape, url_segment};

/// CSP of every page: no script at all; images and styles from this server (and data: for
/// nothing else than images).
const PAGE_CSP: &str = "default-src 'none'; img-src 'self' data:; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A plugin's shifter text as HTML: escaped, `` `code` `` as <code>, `**bold**` as <strong>.
fn shifter_html(text: &str) -> String {
    let mut html = String::new();
    for (k, part) in escape(text).split('`').enumerate() {
        if k % 2 == 1 {
            let _ = write!(html, "<code>{part}</code>");
            continue;
        }
        for (j, piece) in part.split("**").enumerate() {
            if j % 2 == 1 {
                let _ = write!(html, "<strong>{piece}</strong>");
            } else {
                html.push_str(piece);
            }
        }
    }
    html
}

pub(crate) fn page(title: &str, body: &str, refresh: bool) -> Response {
    let meta = if refresh { "<meta http-equiv=\"refresh\" content=\"10\">" } else { "" };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{meta}<title>{} · larmon</title>\
         <link rel=\"stylesheet\" href=\"/static/style.css\"></head><body>\
         <nav><a class=\"brand\" href=\"/\">larmon</a><a href=\"/\">Runs</a><a href=\"/trends\">Trends</a>\
         <a href=\"/plugins\">Plugins</a><a href=\"/api/runs\">API</a><a href=\"/metrics\">Metrics</a></nav>\
         <main>{body}</main></body></html>",
        escape(title)
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
        ],
        html,
    )
        .into_response()
}

fn flag_badge(flag: Option<Status>) -> String {
    let f = flag.map_or("unknown", Status::as_str);
    format!("<span class=\"flag {f}\">{f}</span>")
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time (UTC).
pub(crate) fn utc(seconds: u64) -> String {
    let time = i64::try_from(seconds).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    time.map_or_else(|| format!("unix {seconds}"), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// One line of the overview.
#[derive(Serialize)]
pub(crate) struct RunSummary {
    run: String,
    start_unix_s: Option<u64>,
    duration_s: Option<u64>,
    rows: Option<f64>,
    data_packets: Option<f64>,
    events: Option<f64>,
    tracks: Option<f64>,
    flag: Option<Status>,
    failed_plugins: Vec<String>,
}

fn summary(r: &RunReport) -> RunSummary {
    let events = match (r.host_number("triggered_events"), r.host_number("self_triggered_events")) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    RunSummary {
        run: r.run.clone(),
        start_unix_s: r.start_unix_s,
        duration_s: r.duration_s(),
        rows: r.host_number("rows"),
        data_packets: r.host_number("data_packets"),
        events,
        tracks: r.host_number("tracks"),
        flag: r.quality.flag,
        failed_plugins: r
            .plugins
            .iter()
            .filter(|p| p.status != Status::Ok)
            .map(|p| p.name.clone())
            .collect(),
    }
}

#[derive(Deserialize)]
pub(crate) struct OverviewQuery {
    flag: Option<String>,
    q: Option<String>,
}

pub(crate) async fn overview(
    State(state): State<Arc<AppState>>,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let (runs, mut errors) = state.store.runs();
    let signoffs = match larmon_signoff::Registry::open_existing(state.store.root()) {
        Ok(Some(registry)) => registry.all_current().unwrap_or_else(|e| {
            errors.push(e.to_string());
            Default::default()
        }),
        Ok(None) => Default::default(),
        Err(e) => {
            errors.push(e.to_string());
            Default::default()
        }
    };
    let wanted = query.flag.as_deref().filter(|f| !f.is_empty());
    let text = query.q.as_deref().unwrap_or("").to_lowercase();
    let mut body = String::from("<h1>Runs</h1>");
    body += &watcher_banner(&state);
    body += "<form class=\"filters\" method=\"get\" action=\"/\">";
    let _ = write!(
        body,
        "<input name=\"q\" placeholder=\"run name contains\" value=\"{}\"><select name=\"flag\">",
        escape(&text)
    );
    for f in ["", "ok", "warning", "error"] {
        let selected =
            if wanted == Some(f) || (f.is_empty() && wanted.is_none()) { " selected" } else { "" };
        let label = if f.is_empty() { "any quality" } else { f };
        let _ = write!(body, "<option value=\"{f}\"{selected}>{label}</option>");
    }
    body += "</select><button>Filter</button></form>";
    body += "<table class=\"runs\"><thead><tr><th>run</th><th>start (UTC)</th><th>duration</th><th>packets</th>\
             <th>events</th><th>tracks</th><th>quality</th><th>sign-off</th><th>failed plugins</th></tr></thead><tbody>";
    let mut shown = 0;
    for r in runs.iter().rev() {
        let s = summary(r);
        if wanted.is_some_and(|w| s.flag.map(Status::as_str) != Some(w))
            || !s.run.to_lowercase().contains(&text)
        {
            continue;
        }
        shown += 1;
        let number = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0}"));
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_segment(&s.run),
            escape(&s.run),
            s.start_unix_s.map_or("–".into(), utc),
            s.duration_s.map_or("–".into(), |d| format!("{d} s")),
            number(s.rows),
            number(s.events),
            number(s.tracks),
            flag_badge(s.flag),
            signoffs.get(&s.run).map_or("–".into(), crate::signoff::decision_badge),
            escape(&s.failed_plugins.join(", "))
        );
    }
    body += "</tbody></table>";
    if shown == 0 {
        body += "<p class=\"empty\">No run matches.</p>";
    }
    for e in errors {
        let _ = write!(body, "<p class=\"failure\">unreadable report: {}</p>", escape(&e));
    }
    page("Runs", &body, false)
}

pub(crate) async fn run_page(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    let Some(r) = state.store.run(&run) else {
        return (StatusCode::NOT_FOUND, page("Not found", "<h1>No such run</h1>", false))
            .into_response();
    };
    run_or_version_page(&state, &r)
}

/// A reviewer's version of a run (`larmon run --as NAME`), shown like the run, marked as not
/// the official report.
pub(crate) async fn version_page(
    State(state): State<Arc<AppState>>,
    UrlPath((run, version)): UrlPath<(String, String)>,
) -> Response {
    let Some(r) = state.store.version(&run, &version) else {
        return (StatusCode::NOT_FOUND, page("Not found", "<h1>No such version</h1>", false))
            .into_response();
    };
    run_or_version_page(&state, &r)
}

/// The folder of a report under the output directory, relative: `<run>` or
/// `<run>/versions/<name>`, as URL path segments.
fn report_folder(r: &RunReport) -> String {
    match &r.version {
        None => url_segment(&r.run),
        Some(v) => {
            format!("{}/{}/{}", url_segment(&r.run), larmon_report::store::VERSIONS, url_segment(v))
        }
    }
}

fn run_or_version_page(state: &AppState, r: &RunReport) -> Response {
    // A report written in the last two minutes belongs to a run still being processed.
    let folder = match &r.version {
        None => state.store.root().join(&r.run),
        Some(v) => state.store.root().join(&r.run).join(larmon_report::store::VERSIONS).join(v),
    };
    let modified = std::fs::metadata(folder.join("report.json")).and_then(|m| m.modified());
    let live = modified.is_ok_and(|t| {
        SystemTime::now().duration_since(t).unwrap_or(Duration::MAX) < Duration::from_secs(120)
    });
    let mut body = match &r.version {
        None => format!("<h1>Run {} {}</h1>", escape(&r.run), flag_badge(r.quality.flag)),
        Some(v) => format!(
            "<h1>Run {} · reviewer version {} {}</h1><p class=\"shifter\">A reviewer's \
             re-analysis (<code>larmon run --as {}</code>), not the official report of the run: \
             its flag and metrics change nothing there. <a href=\"/runs/{}\">The official \
             report</a>.</p>",
            escape(&r.run),
            escape(v),
            flag_badge(r.quality.flag),
            escape(v),
            url_segment(&r.run)
        ),
    };
    let _ = write!(
        body,
        "<p class=\"meta\">{}{} · {} · larmon {} · files: {}{}</p>",
        r.run_kind.as_deref().map_or(String::new(), |k| format!("{} run · ", escape(k))),
        r.start_unix_s.map_or("no time".into(), |s| format!("start {} UTC", utc(s))),
        r.duration_s().map_or("–".into(), |d| format!("{d} s of data")),
        escape(&r.larmon_version),
        escape(&r.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")),
        if live { " · <b>live</b> (refreshes every 10 s)" } else { "" }
    );
    if state.catalog.is_some() && r.version.is_none() {
        let _ = write!(
            body,
            "<p class=\"meta\"><a href=\"/runs/{}/files\">Files, checksums and replicas</a></p>",
            url_segment(&r.run)
        );
    }
    if r.version.is_none() {
        body += &crate::signoff::section(state, r);
        body += &versions_section(r, &state.store.versions(&r.run));
    }
    body += "<h2>Host</h2><table class=\"kv\">";
    if let Some(host) = r.host.as_object() {
        for (k, v) in host {
            let _ =
                write!(body, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v.to_string()));
        }
    }
    body += "</table>";
    body += &provenance_section(r);
    if !r.quality.host_checks.is_empty() {
        body += "<h2>Configured checks</h2>";
        body += &checks_table(&r.quality.host_checks);
    }
    body += "<div class=\"toc\">";
    for p in &r.plugins {
        let status = if p.status == Status::Ok {
            p.checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok)
        } else {
            Status::Error
        };
        let _ = write!(
            body,
            "<a href=\"#{}\" class=\"flag {}\">{}</a>",
            url_segment(&p.name),
            status.as_str(),
            escape(&p.name)
        );
    }
    body += "</div>";
    let folder = report_folder(r);
    for p in &r.plugins {
        let _ = write!(
            body,
            "<section id=\"{}\"><h2>{} <small>{} · {} · <code title=\"SHA-256 of {}\">{}</code></small></h2>",
            url_segment(&p.name),
            escape(&p.name),
            escape(&p.version),
            escape(&p.description),
            escape(&p.file),
            escape(p.sha256.get(..12).unwrap_or(&p.sha256))
        );
        if !p.help.is_empty() {
            let _ = write!(body, "<p class=\"shifter\">{}</p>", shifter_html(&p.help));
        }
        if let Some(error) = &p.error {
            let _ = write!(body, "<p class=\"failure\">plugin failed: {}</p>", escape(error));
        }
        body += &checks_table(&p.checks);
        if p.results.contains_key("flagged_channels") && r.version.is_none() {
            let _ = write!(
                body,
                "<p class=\"meta\"><a href=\"/api/runs/{}/known-bad.json\">Flagged channels as a \
                 known-bad list</a> (for <code>known_bad_channels</code> in the configuration: \
                 later runs then tell new problems from these)</p>",
                url_segment(&r.run)
            );
        }
        if !p.metrics.is_empty() {
            body += "<table class=\"metrics\"><tr><th>metric</th><th>value</th><th>unit</th><th></th></tr>";
            for m in &p.metrics {
                let key = format!("{}/{}", p.name, m.name);
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}{}</td><td>{}</td><td><a href=\"/trends?metric={}\">trend</a></td></tr>",
                    escape(&m.name),
                    format_value(m.value),
                    m.error.map_or(String::new(), |e| format!(" ± {}", format_value(e))),
                    escape(&m.unit),
                    url_segment(&key)
                );
            }
            body += "</table>";
        }
        body += "<div class=\"grid\">";
        for f in &p.figures {
            let path = |file: &str| {
                format!(
                    "{folder}/{}",
                    file.split('/').map(url_segment).collect::<Vec<_>>().join("/")
                )
            };
            let (svg, data) =
                (format!("/files/{}", path(&f.svg)), format!("/files/{}", path(&f.data)));
            // A click opens larmon's own page showing the figure as an image (an SVG opened
            // as a page could navigate the browser away; as an <img> it cannot).
            let view = format!("/figure/{}", path(&f.svg));
            let _ = write!(
                body,
                "<figure><a href=\"{view}\"><img src=\"{svg}\" alt=\"{}\" loading=\"lazy\"></a><figcaption>{} · <a href=\"{data}\">data</a></figcaption></figure>",
                escape(&f.title),
                escape(&f.title)
            );
        }
        body += "</div></section>";
    }
    let title = match &r.version {
        None => format!("Run {}", r.run),
        Some(v) => format!("Run {} · version {v}", r.run),
    };
    page(&title, &body, live)
}

/// What made the report: larmon version, detector description and configuration hashes, and
/// any bundled plugin that another component replaced.
fn provenance_section(r: &RunReport) -> String {
    let p = &r.provenance;
    let short = |sha: &str| escape(sha.get(..16).unwrap_or(sha));
    let mut out = String::from("<h2>Provenance</h2><table class=\"kv\">");
    let _ = write!(out, "<tr><th>larmon</th><td>{}</td></tr>", escape(&r.larmon_version));
    let _ = write!(
        out,
        "<tr><th>detector description</th><td><code title=\"{}\">{}</code></td></tr>",
        escape(&p.detector_sha256),
        if p.detector_sha256.is_empty() {
            "not recorded".into()
        } else {
            short(&p.detector_sha256)
        }
    );
    let config = match (&p.config_file, &p.config_sha256) {
        (Some(file), Some(sha)) => format!(
            "{} <code title=\"{}\">{}</code>",
            escape(&file.display().to_string()),
            escape(sha),
            short(sha)
        ),
        _ => "built-in defaults".into(),
    };
    let _ = write!(out, "<tr><th>configuration</th><td>{config}</td></tr>");
    let _ = write!(
        out,
        "<tr><th>run kind</th><td>{}</td></tr>",
        r.run_kind.as_deref().map_or("none (references for any kind)".into(), escape)
    );
    if !p.reference_runs.is_empty() {
        let compared: Vec<String> = p
            .reference_runs
            .iter()
            .map(|(plugin, run)| {
                format!(
                    "{} vs <a href=\"/runs/{}\">{}</a>",
                    escape(plugin),
                    url_segment(run),
                    escape(run)
                )
            })
            .collect();
        let _ = write!(out, "<tr><th>references</th><td>{}</td></tr>", compared.join(" · "));
    }
    if let Some((file, sha)) = &p.known_bad_channels {
        let _ = write!(
            out,
            "<tr><th>known-bad channels</th><td>{} <code title=\"{}\">{}</code></td></tr>",
            escape(&file.display().to_string()),
            escape(sha),
            short(sha)
        );
    }
    let plugins: Vec<String> = r
        .plugins
        .iter()
        .map(|e| {
            format!(
                "{} {} <code title=\"{}\">{}</code>",
                escape(&e.name),
                escape(&e.version),
                escape(&e.sha256),
                short(&e.sha256)
            )
        })
        .collect();
    let _ = write!(out, "<tr><th>plugin components</th><td>{}</td></tr>", plugins.join(" · "));
    for replaced in &p.replaced_plugins {
        let _ = write!(
            out,
            "<tr class=\"warning\"><th>replaced plugin</th><td>bundled {} ({}, <code>{}</code>) was replaced by {}</td></tr>",
            escape(&replaced.name),
            escape(&replaced.bundled_file),
            short(&replaced.bundled_sha256),
            escape(&replaced.by_file)
        );
    }
    out + "</table>"
}

/// The reviewer versions of a run beside the official report: each version's flag, and every
/// metric whose value differs from the official one (or exists in one only).
fn versions_section(official: &RunReport, versions: &[Arc<RunReport>]) -> String {
    if versions.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Reviewer versions <small>re-analyses beside this official report; they never change it</small></h2>\
         <table class=\"runs\"><thead><tr><th>metric</th><th>official</th>",
    );
    for v in versions {
        let name = v.version.as_deref().unwrap_or("");
        let _ = write!(
            out,
            "<th><a href=\"/runs/{}/versions/{}\">{}</a> {}</th><th>difference</th>",
            url_segment(&official.run),
            url_segment(name),
            escape(name),
            flag_badge(v.quality.flag)
        );
    }
    out += "</tr></thead><tbody>";
    let mut keys: Vec<String> = official.metric_keys();
    for v in versions {
        keys.extend(v.metric_keys());
    }
    keys.sort();
    keys.dedup();
    let value = |r: &RunReport, key: &str| r.metric(key).map(|m| m.value);
    let mut same = 0;
    for key in &keys {
        let base = value(official, key);
        let differs = versions.iter().any(|v| {
            let other = value(v, key);
            match (base, other) {
                (Some(a), Some(b)) => !(a == b || (a.is_nan() && b.is_nan())),
                (a, b) => a.is_some() != b.is_some(),
            }
        });
        if !differs {
            same += 1;
            continue;
        }
        let shown = |v: Option<f64>| v.map_or("–".into(), format_value);
        let _ = write!(out, "<tr><td>{}</td><td>{}</td>", escape(key), shown(base));
        for v in versions {
            let other = value(v, key);
            let difference = match (base, other) {
                (Some(a), Some(b)) if a != b => format_value(b - a),
                (Some(_), Some(_)) => "=".into(),
                _ => "–".into(),
            };
            let _ = write!(out, "<td>{}</td><td>{difference}</td>", shown(other));
        }
        out += "</tr>";
    }
    let _ = write!(
        out,
        "</tbody></table><p class=\"meta\">{same} of {} metrics are equal in every version.</p>",
        keys.len()
    );
    out
}

fn format_value(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        format!("{v:.3e}")
    } else {
        format!("{:.4}", v).trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn checks_table(checks: &[larmon_report::Check]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut out = String::from("<table class=\"checks\">");
    for c in checks {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.status.as_str(),
            c.status.as_str(),
            escape(&c.name),
            escape(&c.message)
        );
    }
    out + "</table>"
}

pub(crate) async fn trends_page(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Response {
    let (runs, _) = state.store.runs();
    let mut keys: Vec<String> = runs.iter().flat_map(|r| r.metric_keys()).collect();
    keys.sort();
    keys.dedup();
    let selection = TrendSelection::parse(query.as_deref());
    let chosen: Vec<String> = if selection.metrics.is_empty() {
        default_trend_metrics(&state.checks, &keys)
    } else {
        selection.metrics.iter().filter(|m| keys.contains(m)).cloned().collect()
    };
    let shown = selection.runs_in_range(&runs);
    let mut body = String::from(
        "<h1>Trends</h1><form class=\"filters\" method=\"get\" action=\"/trends\">\
         <select name=\"metric\" multiple size=\"8\" title=\"Ctrl-click to choose several\">",
    );
    for k in &keys {
        let selected = if chosen.contains(k) { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{}\"{selected}>{}</option>", escape(k), escape(k));
    }
    let _ = write!(
        body,
        "</select> from <input name=\"from\" placeholder=\"run or YYYY-MM-DD\" value=\"{}\" size=\"16\"> \
         to <input name=\"to\" placeholder=\"run or YYYY-MM-DD\" value=\"{}\" size=\"16\"> \
         last <input name=\"last\" value=\"{}\" size=\"4\"> runs <button>Show</button></form>",
        escape(selection.from.as_deref().unwrap_or("")),
        escape(selection.to.as_deref().unwrap_or("")),
        selection.last
    );
    let (first, last) = (shown.first(), shown.last());
    let _ = write!(
        body,
        "<p class=\"meta\">{} runs{}{}</p>",
        shown.len(),
        first.map_or(String::new(), |r| format!(" from {}", escape(&r.run))),
        last.map_or(String::new(), |r| format!(
            " to {}{}",
            escape(&r.run),
            r.start_unix_s.map_or(String::new(), |s| format!(" ({} UTC)", utc(s)))
        )),
    );
    if chosen.is_empty() {
        body += "<p class=\"empty\">No metrics yet.</p>";
    }
    body += "<div class=\"grid\">";
    for metric in &chosen {
        let query = selection.query_for(metric);
        let _ = write!(
            body,
            "<figure><img src=\"/trends.svg?{query}\" alt=\"{e} vs run\"><figcaption>{e} per run, in order of data time; \
             bands: configured warning (amber) and error (red) limits · <a href=\"/api/trends?{query}\">data</a></figcaption></figure>",
            e = escape(metric)
        );
    }
    body += "</div>";
    page("Trends", &body, false)
}

/// Metrics a shifter looks at first: those with configured limits, then the bundled plugins'
/// quality metrics, as far as the runs have them (at most six).
fn default_trend_metrics(checks: &larmon_report::ChecksConfig, keys: &[String]) -> Vec<String> {
    const QUALITY: [&str; 10] = [
        "packet-rate/parity_error_fraction",
        "channel-health/hot_channels",
        "channel-health/dead_channels",
        "tile-rate/low_rate_tiles",
        "fifo-flags/local_full_fraction",
        "timing/max_abs_sync_offset_ticks",
        "electron-lifetime/lifetime_us",
        "dqdx/mpv_ke_per_cm",
        "charge-light/light_to_charge_efficiency",
        "light-health/dead_inputs",
    ];
    let mut chosen: Vec<String> = Vec::new();
    let configured = checks.limits.keys().map(String::as_str);
    for key in configured.chain(QUALITY) {
        if keys.iter().any(|k| k == key) && !chosen.iter().any(|c| c == key) && chosen.len() < 6 {
            chosen.push(key.to_string());
        }
    }
    if chosen.is_empty() {
        chosen.extend(keys.first().cloned());
    }
    chosen
}

/// What a trends request asks for: metrics (`metric`, repeated) and a range of runs
/// (`from`/`to`: a run name or a UTC date `YYYY-MM-DD`; `last`: at most this many, the latest).
pub(crate) struct TrendSelection {
    pub(crate) metrics: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    last: usize,
}

/// Runs a trend shows by default.
const TREND_RUNS: usize = 100;

impl TrendSelection {
    /// From a query string (repeated keys allowed).
    pub(crate) fn parse(query: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> =
            query.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
        let value = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, v)| k == key && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
        };
        Self {
            metrics: pairs.iter().filter(|(k, _)| k == "metric").map(|(_, v)| v.clone()).collect(),
            from: value("from"),
            to: value("to"),
            last: value("last")
                .and_then(|v| v.parse().ok())
                .unwrap_or(TREND_RUNS)
                .clamp(1, 100_000),
        }
    }

    /// The runs in range, oldest first (`runs` sorted by data time).
    pub(crate) fn runs_in_range<'a>(&self, runs: &'a [Arc<RunReport>]) -> &'a [Arc<RunReport>] {
        let position = |bound: &str, end: bool| -> usize {
            if let Ok(day) = chrono::NaiveDate::parse_from_str(bound, "%Y-%m-%d") {
                let midnight = day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp());
                let limit = if end { midnight + 86_400 } else { midnight };
                return runs.partition_point(|r| r.start_unix_s.map_or(0, |s| s as i64) < limit);
            }
            match runs.iter().position(|r| r.run == bound) {
                Some(i) if end => i + 1,
                Some(i) => i,
                None if end => runs.len(),
                None => 0,
            }
        };
        let start = self.from.as_deref().map_or(0, |b| position(b, false));
        let end = self.to.as_deref().map_or(runs.len(), |b| position(b, true)).max(start);
        let range = &runs[start..end];
        &range[range.len().saturating_sub(self.last)..]
    }

    /// The query string of one metric over this range.
    pub(crate) fn query_for(&self, metric: &str) -> String {
        let mut pairs = vec![("metric", metric.to_string()), ("last", self.last.to_string())];
        pairs.extend(self.from.clone().map(|f| ("from", f)));
        pairs.extend(self.to.clone().map(|t| ("to", t)));
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// A plugin as seen across runs.
#[derive(Serialize)]
pub(crate) struct PluginSummary {
    name: String,
    versions: Vec<String>,
    /// The latest component hash.
    sha256: String,
    /// Every component hash seen, oldest first.
    sha256_seen: Vec<String>,
    description: String,
    runs_ok: usize,
    runs_failed: usize,
    last_error: Option<String>,
}

fn plugin_summaries(runs: &[Arc<RunReport>]) -> Vec<PluginSummary> {
    let mut by_name: BTreeMap<String, PluginSummary> = BTreeMap::new();
    for r in runs {
        for p in &r.plugins {
            let s = by_name.entry(p.name.clone()).or_insert_with(|| PluginSummary {
                name: p.name.clone(),
                versions: Vec::new(),
                sha256: String::new(),
                sha256_seen: Vec::new(),
                description: String::new(),
                runs_ok: 0,
                runs_failed: 0,
                last_error: None,
            });
            if !s.versions.contains(&p.version) {
                s.versions.push(p.version.clone());
            }
            s.sha256 = p.sha256.clone();
            if !p.sha256.is_empty() && !s.sha256_seen.contains(&p.sha256) {
                s.sha256_seen.push(p.sha256.clone());
            }
            s.description = p.description.clone();
            if p.status == Status::Ok {
                s.runs_ok += 1;
            } else {
                s.runs_failed += 1;
                s.last_error = p.error.as_ref().map(|e| format!("{}: {e}", r.run));
            }
        }
    }
    by_name.into_values().collect()
}

pub(crate) async fn plugins_page(State(state): State<Arc<AppState>>) -> Response {
    let (runs, _) = state.store.runs();
    let mut body = String::from(
        "<h1>Plugins</h1><table class=\"runs\"><thead><tr><th>plugin</th><th>versions</th><th>description</th>\
         <th>runs ok</th><th>runs failed</th><th>last error</th><th>components seen (sha256, latest last)</th></tr></thead><tbody>",
    );
    for p in plugin_summaries(&runs) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"failure\">{}</td><td>{}</td></tr>",
            escape(&p.name),
            escape(&p.versions.join(", ")),
            escape(&p.description),
            p.runs_ok,
            p.runs_failed,
            escape(p.last_error.as_deref().unwrap_or("")),
            p.sha256_seen
                .iter()
                .map(|sha| format!(
                    "<code title=\"{}\">{}</code>",
                    escape(sha),
                    escape(sha.get(..16).unwrap_or(sha))
                ))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    body += "</tbody></table>";
    page("Plugins", &body, false)
}

pub(crate) async fn api_runs(State(state): State<Arc<AppState>>) -> Json<Vec<RunSummary>> {
    Json(state.store.runs().0.iter().map(|r| summary(r)).collect())
}

pub(crate) async fn api_run(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    match state.store.run(&run) {
        Some(r) => Json(r.as_ref().clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such run"})))
            .into_response(),
    }
}

/// `/api/runs/<run>/known-bad.json`: the channels a run's plugins flagged
/// (`results.flagged_channels`), as a known-bad channel file valid from the run's day on.
pub(crate) async fn api_known_bad(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    let Some(r) = state.store.run(&run) else {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such run"})))
            .into_response();
    };
    let from = r.start_unix_s.map(|s| utc(s)[..10].to_string());
    let mut channels = Vec::new();
    for p in &r.plugins {
        let Some(flagged) = p.results.get("flagged_channels").and_then(|v| v.as_array()) else {
            continue;
        };
        for f in flagged {
            let mut entry = serde_json::Map::new();
            for key in ["io_group", "io_channel", "chip_id", "channel_id", "kind"] {
                if let Some(v) = f.get(key) {
                    entry.insert(key.into(), v.clone());
                }
            }
            if let Some(from) = &from {
                entry.insert("from".into(), from.clone().into());
            }
            entry.insert("why".into(), format!("flagged by {} in {}", p.name, r.run).into());
            channels.push(serde_json::Value::Object(entry));
        }
    }
    let file = format!(
        "attachment; filename=\"known-bad-{}.json\"",
        crate::files::header_file_name(&r.run)
    );
    ([(header::CONTENT_DISPOSITION, file)], Json(serde_json::json!({ "channels": channels })))
        .into_response()
}

pub(crate) async fn api_plugins(State(state): State<Arc<AppState>>) -> Json<Vec<PluginSummary>> {
    Json(plugin_summaries(&state.store.runs().0))
}

/// Runs `/metrics` covers by default: the latest ones by data time.
const METRICS_RUNS: usize = 20;

#[derive(Deserialize)]
pub(crate) struct MetricsQuery {
    /// How many of the latest runs (1–500).
    runs: Option<usize>,
}

/// Prometheus text format: every plugin metric and the quality flag of the latest runs
/// (`?runs=N`, default 20), the latest run's flag without a run label (for alerts), and the
/// realtime watcher's heartbeat (docs/prometheus-alerts.yml alerts on them).
pub(crate) async fn prometheus(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MetricsQuery>,
) -> Response {
    let (runs, errors) = state.store.runs();
    let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ");
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge("larmon_runs", "Runs with a readable report.", &[(String::new(), runs.len() as f64)]);
    gauge(
        "larmon_unreadable_reports",
        "Runs whose report.json cannot be read.",
        &[(String::new(), errors.len() as f64)],
    );
    let count = query.runs.unwrap_or(METRICS_RUNS).clamp(1, 500);
    let recent = &runs[runs.len().saturating_sub(count)..];
    let flag_value = |r: &RunReport| r.quality.flag.map_or(-1.0, |f| f as i32 as f64);
    let run_label = |r: &RunReport| format!("{{run=\"{}\"}}", label(&r.run));
    gauge(
        "larmon_run_quality",
        "Automatic quality flag of each recent run: 0 ok, 1 warning, 2 error, -1 none.",
        &recent.iter().map(|r| (run_label(r), flag_value(r))).collect::<Vec<_>>(),
    );
    gauge(
        "larmon_run_start_unix_seconds",
        "First data second of each recent run.",
        &recent
            .iter()
            .filter_map(|r| Some((run_label(r), r.start_unix_s? as f64)))
            .collect::<Vec<_>>(),
    );
    if let Some(latest) = runs.last() {
        gauge(
            "larmon_latest_run_quality",
            "Automatic quality flag of the latest run (by data time): 0 ok, 1 warning, 2 error.",
            &[(String::new(), flag_value(latest))],
        );
    }
    let mut samples = Vec::new();
    for r in recent {
        for p in &r.plugins {
            for m in p.metrics.iter().filter(|m| m.value.is_finite()) {
                let labels = format!(
                    "{{run=\"{}\",plugin=\"{}\",metric=\"{}\",unit=\"{}\"}}",
                    label(&r.run),
                    label(&p.name),
                    label(&m.name),
                    label(&m.unit)
                );
                samples.push((labels, m.value));
            }
        }
    }
    gauge("larmon_metric", "Each plugin metric of each recent run.", &samples);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    match larmon_report::WatchHealth::read(state.store.root()) {
        None => {}
        Some(Err(_)) => gauge(
            "larmon_watch_health_unreadable",
            "The watcher's heartbeat file cannot be read.",
            &[(String::new(), 1.0)],
        ),
        Some(Ok(h)) => {
            let one = |v: f64| [(String::new(), v)];
            let up = h.heartbeat_age_s(now) < larmon_report::health::WATCHER_STOPPED_AFTER_S;
            gauge(
                "larmon_watch_up",
                "1 while the watcher's heartbeat is under 120 s old.",
                &one(f64::from(u8::from(up))),
            );
            gauge(
                "larmon_watch_heartbeat_unix_seconds",
                "When the watcher last finished a pass.",
                &one(h.updated_unix_s),
            );
            if let Some(t) = h.newest_data_unix_s {
                gauge(
                    "larmon_watch_newest_data_unix_seconds",
                    "Modification time of the newest data file the watcher has seen.",
                    &one(t),
                );
            }
            gauge(
                "larmon_watch_files_open",
                "Files the watcher holds open.",
                &one(h.files_open as f64),
            );
            gauge(
                "larmon_watch_files_unfinished",
                "Files still growing or with data left to read.",
                &one(h.files_unfinished as f64),
            );
            gauge(
                "larmon_watch_files_with_errors",
                "Files that cannot be read now or were set aside.",
                &one(h.files_with_errors as f64),
            );
            gauge(
                "larmon_watch_reports_unwritten",
                "Run reports the last pass could not write.",
                &one(h.reports_unwritten as f64),
            );
        }
    }
    match larmon_report::DaqStatus::read(state.store.root()) {
        None => {}
        Some(Err(_)) => gauge(
            "larmon_daq_status_unreadable",
            "The data-management chain's status file cannot be read.",
            &[(String::new(), 1.0)],
        ),
        Some(Ok(status)) => {
            let age = (now - status.updated_unix_s).max(0.0);
            let up = age < larmon_report::health::DAQ_STOPPED_AFTER_S;
            gauge(
                "larmon_daq_up",
                "1 while the data-management chain (larmon daq) wrote its status in the last 300 s.",
                &[(String::new(), f64::from(u8::from(up)))],
            );
            let per_stage = |counts: &std::collections::BTreeMap<String, usize>| {
                counts
                    .iter()
                    .map(|(stage, n)| (format!("{{stage=\"{}\"}}", label(stage)), *n as f64))
                    .collect::<Vec<_>>()
            };
            gauge(
                "larmon_daq_backlog",
                "DAQ files waiting at each stage of the chain.",
                &per_stage(&status.backlog),
            );
            gauge("larmon_daq_done", "DAQ files past each stage.", &per_stage(&status.done));
            gauge(
                "larmon_daq_failures",
                "Failures of the chain's last pass (retried).",
                &[(String::new(), status.failures.len() as f64)],
            );
        }
    }
    gauge(
        "larmon_scrape_unix_seconds",
        "When this page was made.",
        &[(String::new(), now.floor())],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// The overview's line on the realtime watcher: stopped (heartbeat too old), no new data, or
/// fine; nothing when no watcher ever wrote to this output directory.
fn watcher_banner(state: &AppState) -> String {
    use larmon_report::health::{NO_DATA_AFTER_S, WATCHER_STOPPED_AFTER_S};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let ago = |s: f64| match s {
        s if s < 120.0 => format!("{s:.0} s ago"),
        s if s < 7200.0 => format!("{:.0} min ago", s / 60.0),
        s => format!("{:.1} h ago", s / 3600.0),
    };
    let h = match larmon_report::WatchHealth::read(state.store.root()) {
        None => return String::new(),
        Some(Err(e)) => {
            return format!(
                "<p class=\"banner error\">watcher heartbeat unreadable: {}</p>",
                escape(&e)
            );
        }
        Some(Ok(h)) => h,
    };
    let heartbeat = h.heartbeat_age_s(now);
    let data = h.data_age_s(now);
    let (class, headline) = if heartbeat >= WATCHER_STOPPED_AFTER_S {
        ("error", format!("The watcher has stopped: last heartbeat {}.", ago(heartbeat)))
    } else if data.is_none_or(|d| d >= NO_DATA_AFTER_S) {
        ("warning", format!("No new data: newest file {}.", data.map_or("never seen".into(), ago)))
    } else if h.files_with_errors > 0 || h.reports_unwritten > 0 {
        (
            "warning",
            format!(
                "The watcher has trouble: {} files in error, {} reports unwritten.",
                h.files_with_errors, h.reports_unwritten
            ),
        )
    } else {
        ("ok", "Watcher running.".into())
    };
    format!(
        "<p class=\"banner {class}\">{} <span class=\"meta\">{} · heartbeat {} · newest data {} · {} files open, {} unfinished, {} in error{}</span></p>",
        escape(&headline),
        escape(&h.folder.display().to_string()),
        ago(heartbeat),
        data.map_or("–".into(), ago),
        h.files_open,
        h.files_unfinished,
        h.files_with_errors,
        h.last_error.as_deref().map_or(String::new(), |e| format!(" · last error: {}", escape(e)))
    )
}

pub(crate) async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css")], include_str!("style.css")).into_response()
}

#[cfg(test)]
mod tests {
    use super::{shifter_html, utc};

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_720_463_869), "2024-07-08 18:37:49");
        assert_eq!(utc(u64::MAX), format!("unix {}", u64::MAX));
    }

    #[test]
    fn shifter_text_is_escaped_with_code_and_bold() {
        assert_eq!(
            shifter_html("rate < `warn_low` **Bad:** <script> & `a**b`"),
            "rate &lt; <code>warn_low</code> <strong>Bad:</strong> &lt;script&gt; &amp; \
             <code>a**b</code>"
        );
    }
}
