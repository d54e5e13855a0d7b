//! The files of a run from the data-management catalog (`larmon serve --catalog DB`): metadata,
//! checksums, replicas and a download link per file, as a page and as JSON. Downloads are
//! streamed and limited to files the catalog lists (by id), so no path ever comes from the URL;
//! they follow the server's [`Downloads`] policy (a token beyond this machine), and come from a
//! local replica of the same size when the source is gone (a DAQ buffer cleaned up).

use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use larmon_catalog::{Catalog, FileRecord, Replica};
use serde::Serialize;

use crate::pages::{page, utc};
use crate::signoff::same_secret;
use crate::{AppState, Downloads, escape, url_segment};

/// A catalogued file with its replicas.
#[derive(Serialize)]
pub(crate) struct RunFile {
    file: FileRecord,
    replicas: Vec<Replica>,
    /// DIDs of the files of other detectors overlapping it in time (`larmon catalog associate`).
    associated: Vec<String>,
}

/// The run number in a run name (`run-0000042` → 42).
fn run_number(run: &str) -> Option<u64> {
    let digits: String = run
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// The catalogued files of a run: its run number's files and those its report names.
fn run_files(state: &AppState, run: &str) -> Result<Vec<RunFile>, String> {
    let Some(path) = &state.catalog else { return Err("no catalog configured".into()) };
    let catalog = Catalog::open_read_only(path).map_err(|e| e.to_string())?;
    let report_files: Vec<String> = state
        .store
        .run(run)
        .map(|r| r.files.iter().map(|f| f.display().to_string()).collect())
        .unwrap_or_default();
    let mut files = match run_number(run) {
        Some(n) => catalog.list(Some(n)).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    for path in &report_files {
        if !files.iter().any(|f| f.path.display().to_string() == *path) {
            if let Some(f) = catalog.find(path).map_err(|e| e.to_string())? {
                files.push(f);
            }
        }
    }
    let links: Vec<_> = larmon_catalog::associate::associate(&files, 1.0, None)
        .into_iter()
        .flat_map(|run| run.links)
        .collect();
    files
        .into_iter()
        .map(|file| {
            let replicas = catalog.replicas(file.id).map_err(|e| e.to_string())?;
            let associated = links
                .iter()
                .filter_map(|l| {
                    if l.charge == file.did {
                        Some(l.other.clone())
                    } else if l.other == file.did {
                        Some(l.charge.clone())
                    } else {
                        None
                    }
                })
                .collect();
            Ok(RunFile { file, replicas, associated })
        })
        .collect()
}

pub(crate) async fn files_page(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    let files = match run_files(&state, &run) {
        Ok(files) => files,
        Err(e) => {
            let body = format!("<h1>Files of run {}</h1><p>{}</p>", escape(&run), escape(&e));
            return (StatusCode::NOT_FOUND, page("Files", &body, false)).into_response();
        }
    };
    let mut body = format!(
        "<h1>Files of run <a href=\"/runs/{}\">{}</a></h1><p class=\"meta\">{} files in the catalog · \
         <a href=\"/api/runs/{}/files\">JSON</a> · <a href=\"/files\">search all files</a></p>",
        url_segment(&run),
        escape(&run),
        files.len(),
        url_segment(&run)
    );
    body += &files_table(&files, &state.downloads);
    page(&format!("Files of {run}"), &body, false)
}

pub(crate) async fn api_files(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    match run_files(&state, &run) {
        Ok(files) => Json(files).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
}

/// The table of files with metadata, checksums, replicas, overlaps and downloads.
fn files_table(files: &[RunFile], downloads: &Downloads) -> String {
    let mut body = String::new();
    body += "<table class=\"files\"><tr><th>file (click: metadata)</th><th>kind</th><th>bytes</th>\
             <th>adler32</th><th>data (UTC)</th><th>events</th><th>replicas</th>\
             <th>overlaps</th><th></th></tr>";
    for f in files {
        let r = &f.file;
        let replicas: Vec<String> = f
            .replicas
            .iter()
            .map(|x| {
                format!(
                    "<b>{}</b> {} ({})",
                    escape(&x.site),
                    escape(&x.location),
                    escape(&x.adler32)
                )
            })
            .collect();
        let metadata = serde_json::to_string_pretty(&r.declaration.metadata).unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td><details><summary>{}</summary><pre>{}</pre></details></td><td>{}</td>\
             <td class=\"num\">{}</td><td><code>{}</code></td><td>{} – {}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(&r.did),
            escape(&metadata),
            escape(&r.kind),
            r.size,
            escape(&r.adler32),
            r.start_time.map_or("–".into(), |t| utc(t as u64)),
            r.end_time.map_or("–".into(), |t| utc(t as u64)),
            r.declaration.metadata.get("core.event_count").map_or("–".into(), |v| v.to_string()),
            if replicas.is_empty() { "none yet".into() } else { replicas.join("<br>") },
            if f.associated.is_empty() { "–".into() } else { escape(&f.associated.join(", ")) },
            download_cell(downloads, r.id)
        );
    }
    body += "</table>";
    body
}

/// The search form's fields (`/files?run=&kind=&tier=&site=&from=&to=`), all optional.
#[derive(Default, serde::Deserialize)]
pub(crate) struct FileSearch {
    run: Option<String>,
    kind: Option<String>,
    tier: Option<String>,
    site: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Most files a search shows.
const SEARCH_LIMIT: usize = 500;

/// The first second of a `YYYY-MM-DD` day (UTC).
fn day_start(text: &str) -> Result<i64, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp()))
        .map_err(|_| format!("{text:?} is no date: write YYYY-MM-DD"))
}

/// The catalogued files matching a search, with replicas (overlaps are left to the run pages).
fn search_files(state: &AppState, search: &FileSearch) -> Result<Vec<RunFile>, String> {
    let Some(path) = &state.catalog else { return Err("no catalog configured".into()) };
    let catalog = Catalog::open_read_only(path).map_err(|e| e.to_string())?;
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let mut conditions = Vec::new();
    if let Some(run) = given(&search.run) {
        let run: u64 = run.parse().map_err(|_| format!("{run:?} is no run number"))?;
        conditions.push(format!("run={run}"));
    }
    if let Some(kind) = given(&search.kind) {
        conditions.push(format!("kind={kind}"));
    }
    if let Some(tier) = given(&search.tier) {
        conditions.push(format!("core.data_tier={tier}"));
    }
    if let Some(from) = given(&search.from) {
        conditions.push(format!("core.end_time>={}", day_start(from)?));
    }
    if let Some(to) = given(&search.to) {
        conditions.push(format!("core.start_time<{}", day_start(to)? + 86_400));
    }
    let site = given(&search.site);
    let mut found = Vec::new();
    for file in catalog.query(&conditions).map_err(|e| e.to_string())? {
        let replicas = catalog.replicas(file.id).map_err(|e| e.to_string())?;
        if site.is_some_and(|s| !replicas.iter().any(|r| r.site == s)) {
            continue;
        }
        found.push(RunFile { file, replicas, associated: Vec::new() });
    }
    Ok(found)
}

/// `/files`: search the catalog by run, kind, tier, site and dates.
pub(crate) async fn search_page(
    State(state): State<Arc<AppState>>,
    Query(search): Query<FileSearch>,
) -> Response {
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or_default());
    let mut body = format!(
        "<h1>Files</h1><form method=\"get\" action=\"/files\" class=\"search\">\
         <label>run <input name=\"run\" size=\"8\" value=\"{}\"></label> \
         <label>kind <input name=\"kind\" size=\"8\" placeholder=\"charge, light…\" value=\"{}\"></label> \
         <label>tier <input name=\"tier\" size=\"10\" placeholder=\"raw…\" value=\"{}\"></label> \
         <label>site <input name=\"site\" size=\"8\" value=\"{}\"></label> \
         <label>from <input name=\"from\" size=\"10\" placeholder=\"YYYY-MM-DD\" value=\"{}\"></label> \
         <label>to <input name=\"to\" size=\"10\" placeholder=\"YYYY-MM-DD\" value=\"{}\"></label> \
         <button>search</button></form>",
        value(&search.run),
        value(&search.kind),
        value(&search.tier),
        value(&search.site),
        value(&search.from),
        value(&search.to)
    );
    match search_files(&state, &search) {
        Err(e) => {
            let _ = write!(body, "<p>{}</p>", escape(&e));
            return (StatusCode::BAD_REQUEST, page("Files", &body, false)).into_response();
        }
        Ok(files) => {
            let shown = files.len().min(SEARCH_LIMIT);
            let more = if files.len() > SEARCH_LIMIT {
                format!(" (the first {SEARCH_LIMIT} shown: narrow the search)")
            } else {
                String::new()
            };
            let _ = write!(body, "<p class=\"meta\">{} files{more}</p>", files.len());
            body += &files_table(&files[..shown], &state.downloads);
        }
    }
    page("Files", &body, false).into_response()
}

/// `/api/files`: the same search as JSON.
pub(crate) async fn api_search(
    State(state): State<Arc<AppState>>,
    Query(search): Query<FileSearch>,
) -> Response {
    match search_files(&state, &search) {
        Ok(files) => Json(files).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

/// The files page's download cell: a link, a token form, or why there is none.
fn download_cell(downloads: &Downloads, id: i64) -> String {
    match downloads {
        Downloads::Open => format!("<a href=\"/download/{id}\">download</a>"),
        Downloads::Token(_) => format!(
            "<form method=\"post\" action=\"/download/{id}\"><input name=\"token\" \
             type=\"password\" placeholder=\"download token\" required> \
             <button>download</button></form>"
        ),
        Downloads::Off => "<span title=\"this dashboard is reachable beyond its machine and was \
                           started without --download-token-file\">no downloads</span>"
            .into(),
    }
}

/// Why the policy refuses `token` a download, as the answer to give; None: allowed.
fn refusal(downloads: &Downloads, token: Option<&str>) -> Option<Response> {
    match (downloads, token) {
        (Downloads::Open, _) => None,
        (Downloads::Token(expected), Some(given)) if same_secret(expected, given.trim()) => None,
        (Downloads::Token(_), Some(_)) => {
            Some((StatusCode::FORBIDDEN, "wrong download token").into_response())
        }
        (Downloads::Token(_), None) => Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "downloads need the token: Authorization: Bearer TOKEN, or the files page's form",
            )
                .into_response(),
        ),
        (Downloads::Off, _) => Some(
            (
                StatusCode::FORBIDDEN,
                "this dashboard is reachable beyond its machine: downloads need larmon serve \
                 --download-token-file",
            )
                .into_response(),
        ),
    }
}

/// Streams a catalogued file by its catalog id (token: `Authorization: Bearer`).
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<i64>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(refused) = refusal(&state.downloads, bearer) {
        return refused;
    }
    send_file(&state, id).await
}

/// The files page's download form.
#[derive(serde::Deserialize)]
pub(crate) struct DownloadForm {
    token: String,
}

/// Streams a catalogued file for the files page's form (its token).
pub(crate) async fn download_form(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<i64>,
    Form(form): Form<DownloadForm>,
) -> Response {
    if let Some(refused) = refusal(&state.downloads, Some(&form.token)) {
        return refused;
    }
    send_file(&state, id).await
}

/// Opens the file of catalog record `id`: its path, else a replica on a local path with the
/// catalogued size (verified by its adler32 when it was made).
async fn open_file(state: &AppState, id: i64) -> Option<(FileRecord, tokio::fs::File)> {
    let catalog = Catalog::open_read_only(state.catalog.as_ref()?).ok()?;
    let record = catalog.get(id).ok()??;
    if let Ok(file) = tokio::fs::File::open(&record.path).await {
        return Some((record, file));
    }
    let replicas = catalog.replicas(id).ok()?;
    for replica in replicas {
        let path = std::path::Path::new(&replica.location);
        if !path.is_absolute() || replica.adler32 != record.adler32 {
            continue;
        }
        let Ok(file) = tokio::fs::File::open(path).await else { continue };
        if file.metadata().await.is_ok_and(|m| m.len() == record.size) {
            return Some((record, file));
        }
    }
    None
}

/// Streams catalog record `id` as an attachment.
async fn send_file(state: &AppState, id: i64) -> Response {
    let Some((record, file)) = open_file(state, id).await else {
        return (StatusCode::NOT_FOUND, "no such file in the catalog, or no copy of it here")
            .into_response();
    };
    let name = record.declaration.name.replace(['"', '\\', '\r', '\n'], "_");
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CONTENT_LENGTH, record.size.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_numbers_come_from_the_name() {
        assert_eq!(super::run_number("run-0000042"), Some(42));
        assert_eq!(super::run_number("demo"), None);
    }
}
