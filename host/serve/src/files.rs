//! Figure files (`/files/<run>/<plugin>/<figure>.svg|.json`): only those two kinds, only inside
//! the run's directory, SVGs with a Content-Security-Policy that forbids scripts and sandboxes
//! them, and as attachments — a plugin's SVG is never opened as a page (where a
//! `<meta http-equiv=refresh>` could send the browser elsewhere, which CSP cannot stop); the
//! dashboard shows it as an `<img>` and on its own page (`/figure/<run>/<path>`), which embeds
//! it as an image too.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// CSP of a served SVG: no script, no external loads (pixel maps embed PNG data URIs), and a
/// sandbox (no navigation, no forms, a unique origin) should it be opened anyway.
pub(crate) const SVG_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox";

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

/// A name safe inside a `Content-Disposition` header: letters, digits, `.`, `-`, `_` only.
pub(crate) fn header_file_name(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect()
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
    let is_svg = file.extension().is_some_and(|e| e == "svg");
    let content_type = if is_svg { "image/svg+xml" } else { "application/json" };
    let name = header_file_name(&file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    // <img> ignores the disposition; a browser sent to the file itself downloads it.
    let disposition = if is_svg {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("inline; filename=\"{name}\"")
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_SECURITY_POLICY, SVG_CSP.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// larmon's page for one figure: the SVG as an image (it cannot script or navigate there),
/// its title, and links to the data and the run.
pub(crate) async fn figure_page(
    State(state): State<Arc<AppState>>,
    UrlPath((run, path)): UrlPath<(String, String)>,
) -> Response {
    if resolve(state.store.root(), &run, &path).is_none() || !path.ends_with(".svg") {
        return (StatusCode::NOT_FOUND, "no such figure").into_response();
    }
    let title = state
        .store
        .run(&run)
        .and_then(|r| {
            r.plugins
                .iter()
                .flat_map(|p| &p.figures)
                .find(|f| f.svg == path)
                .map(|f| f.title.clone())
        })
        .unwrap_or_else(|| path.clone());
    let segment = |s: &str| crate::url_segment(s);
    let svg = format!(
        "/files/{}/{}",
        segment(&run),
        path.split('/').map(segment).collect::<Vec<_>>().join("/")
    );
    let data = format!("{}.json", svg.trim_end_matches(".svg"));
    let body = format!(
        "<h1>{}</h1><p class=\"meta\"><a href=\"/runs/{}\">run {}</a> · <a href=\"{data}\">data</a> · \
         <a href=\"{svg}\" download>download SVG</a></p><figure class=\"wide\"><img src=\"{svg}\" alt=\"{}\"></figure>",
        crate::escape(&title),
        segment(&run),
        crate::escape(&run),
        crate::escape(&title)
    );
    crate::pages::page(&title, &body, false)
}
