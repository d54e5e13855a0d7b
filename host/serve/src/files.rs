//! Figure files (`/files/<run>/<plugin>/<figure>.svg|.json`): only those two kinds, only inside
//! the run's directory, SVGs with a Content-Security-Policy that forbids scripts.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// CSP of a served SVG: no script, no external loads (pixel maps embed PNG data URIs).
pub(crate) const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The file under `root/run/path`, if `path` is a plain relative path to an .svg or .json file
/// that exists inside the run directory.
pub(crate) fn resolve(root: &Path, run: &str, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let plain = |p: &Path| p.components().all(|c| matches!(c, Component::Normal(_)));
    if run.is_empty()
        || !plain(Path::new(run))
        || Path::new(run).components().count() != 1
        || !plain(relative)
    {
        return None;
    }
    let extension = relative.extension()?.to_str()?;
    if extension != "svg" && extension != "json" {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let file = root.join(run).join(relative).canonicalize().ok()?;
    (file.starts_with(root.join(run)) && file.is_file()).then_some(file)
}

pub(crate) async fn figure_file(
    State(state): State<Arc<AppState>>,
    UrlPath((run, path)): UrlPath<(String, String)>,
) -> Response {
    let Some(file) = resolve(state.store.root(), &run, &path) else {
        return (StatusCode::NOT_FOUND, "no such figure file").into_response();
    };
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return (StatusCode::NOT_FOUND, "no such figure file").into_response();
    };
    let content_type = if file.extension().is_some_and(|e| e == "svg") {
        "image/svg+xml"
    } else {
        "application/json"
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, SVG_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response()
}
