//! The files of a run from the data-management catalog (`larmon serve --catalog DB`): metadata,
//! checksums, replicas and a download link per file, as a page and as JSON. Downloads are
//! streamed and limited to files the catalog lists (by id), so no path ever comes from the URL.

use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use larmon_catalog::{Catalog, FileRecord, Replica};
use serde::Serialize;

use crate::pages::{page, utc};
use crate::{AppState, escape, url_segment};

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
         <a href=\"/api/runs/{}/files\">JSON</a></p>",
        url_segment(&run),
        escape(&run),
        files.len(),
        url_segment(&run)
    );
    body += "<table class=\"files\"><tr><th>file (click: metadata)</th><th>kind</th><th>bytes</th>\
             <th>adler32</th><th>data (UTC)</th><th>events</th><th>replicas</th>\
             <th>overlaps</th><th></th></tr>";
    for f in &files {
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
             <td><a href=\"/download/{}\">download</a></td></tr>",
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
            r.id
        );
    }
    body += "</table>";
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

/// Streams a catalogued file by its catalog id.
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<i64>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such file in the catalog").into_response();
    let Some(path) = &state.catalog else { return not_found() };
    let Ok(catalog) = Catalog::open_read_only(path) else { return not_found() };
    let Ok(Some(record)) = catalog.get(id) else { return not_found() };
    let Ok(file) = tokio::fs::File::open(&record.path).await else { return not_found() };
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
