//! The dashboard (`larmon serve OUT`): a read-only web server over the run reports of an output
//! directory. Pages: the runs overview with filters, one page per run (figures, shifter text,
//! metrics, coloured checks, plugin errors; live runs refresh themselves), trends of any metric
//! across runs with threshold bands, the plugins seen; a JSON API for all of it and Prometheus
//! `/metrics`. Everything is served by the binary (no CDN, no script at all).
//!
//! Security: plugin SVGs are only ever shown as `<img>` (a script inside an SVG image never
//! runs) and served with their own Content-Security-Policy; every page carries a CSP without
//! scripts; file paths are checked component by component and must stay inside the output
//! directory; everything is GET but the sign-off form, which is off unless the server was given
//! a token, and needs that token with every decision.

mod catalog_pages;
mod files;
mod pages;
mod signoff;
mod trends;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use larmon_report::{ChecksConfig, RunStore};

/// What the handlers share.
pub struct AppState {
    /// The reports.
    pub store: RunStore,
    /// Threshold bands for the trends (the `[checks]` configuration).
    pub checks: ChecksConfig,
    /// The data-management catalog, for the files pages and downloads.
    pub catalog: Option<PathBuf>,
    /// The token a sign-off from the dashboard must carry; none: sign-off only with
    /// `larmon signoff`.
    pub signoff_token: Option<String>,
    /// Who may download catalogued files.
    pub downloads: Downloads,
}

/// Who may download catalogued files from the dashboard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Downloads {
    /// Anyone who reaches the server (it listens on this machine only).
    #[default]
    Open,
    /// Those who give this token (`Authorization: Bearer`, or the files page's form).
    Token(String),
    /// Nobody: the server is reachable beyond this machine and has no download token.
    Off,
}

impl Downloads {
    /// The policy for a server bound to `bind`: a token when one is given, else open on a
    /// loopback address and off beyond it (data files are not for anyone on the network).
    pub fn for_address(bind: &SocketAddr, token: Option<String>) -> Self {
        match token {
            Some(token) => Self::Token(token),
            None if bind.ip().is_loopback() => Self::Open,
            None => Self::Off,
        }
    }
}

/// What the dashboard shows beside the reports, and whether it takes sign-offs.
#[derive(Default)]
pub struct Dashboard {
    /// Threshold bands for the trends (the `[checks]` configuration).
    pub checks: ChecksConfig,
    /// The data-management catalog, for the files pages and downloads.
    pub catalog: Option<PathBuf>,
    /// The token that sign-offs from the run pages must give (none: the form is off).
    pub signoff_token: Option<String>,
    /// Who may download catalogued files.
    pub downloads: Downloads,
}

/// The dashboard's routes over an output directory.
pub fn router(out: &Path, checks: ChecksConfig) -> Router {
    router_for(out, Dashboard { checks, ..Dashboard::default() })
}

/// The routes of a dashboard over an output directory.
pub fn router_for(out: &Path, dashboard: Dashboard) -> Router {
    let Dashboard { checks, catalog, signoff_token, downloads } = dashboard;
    let state =
        Arc::new(AppState { store: RunStore::new(out), checks, catalog, signoff_token, downloads });
    Router::new()
        .route("/", get(pages::overview))
        .route("/runs/{run}", get(pages::run_page))
        .route("/runs/{run}/signoff", post(signoff::sign_off))
        .route("/runs/{run}/reference", post(signoff::set_reference))
        .route("/api/runs/{run}/signoff", get(signoff::api_history))
        .route("/api/runs/{run}/known-bad.json", get(pages::api_known_bad))
        .route("/runs/{run}/versions/{version}", get(pages::version_page))
        .route("/runs/{run}/files", get(catalog_pages::files_page))
        .route("/files", get(catalog_pages::search_page))
        .route("/api/files", get(catalog_pages::api_search))
        .route("/api/runs/{run}/files", get(catalog_pages::api_files))
        .route("/download/{id}", get(catalog_pages::download).post(catalog_pages::download_form))
        .route("/trends", get(pages::trends_page))
        .route("/trends.svg", get(trends::trend_svg))
        .route("/plugins", get(pages::plugins_page))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/files/{run}/{*path}", get(files::figure_file))
        .route("/figure/{run}/{*path}", get(files::figure_page))
        .route("/api/runs", get(pages::api_runs))
        .route("/api/runs/{run}", get(pages::api_run))
        .route("/api/trends", get(trends::api_trend))
        .route("/api/plugins", get(pages::api_plugins))
        .route("/metrics", get(pages::prometheus))
        .with_state(state)
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Serves the dashboard until Ctrl-C; calls `ready` with the bound address first.
pub async fn serve(
    out: &Path,
    dashboard: Dashboard,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    ready(listener.local_addr().unwrap_or(addr));
    axum::serve(listener, router_for(out, dashboard))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(ServeError::Serve)
}

/// Escapes text for HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Escapes a path segment for a URL.
pub(crate) fn url_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
