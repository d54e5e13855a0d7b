//! Sign-off on the dashboard: each run page shows the run's human decision and its history
//! (`OUT/signoff.sqlite`, [`larmon_signoff`]), and — when the server was started with a token —
//! a form to add a decision. The form is plain HTML (no script); the token it must carry keeps
//! out both strangers and cross-site posts.

use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use larmon_report::RunReport;
use larmon_signoff::{Decision, Registry, SignOff};
use serde::Deserialize;

use crate::pages::{page, utc};
use crate::{AppState, escape, url_segment};

/// The badge of a human decision.
pub(crate) fn decision_badge(signoff: &SignOff) -> String {
    let d = signoff.decision.as_str();
    format!(
        "<span class=\"flag {d}\" title=\"signed off by {}: {}\">{d}</span>",
        escape(&signoff.by),
        escape(&signoff.comment)
    )
}

/// The sign-off part of a run page: the decision in force, the history, and the form when the
/// server takes sign-offs.
pub(crate) fn section(state: &AppState, r: &RunReport) -> String {
    let mut out = String::from("<h2 id=\"signoff\">Sign-off</h2>");
    let history = match Registry::open_existing(state.store.root()) {
        Ok(Some(registry)) => registry.history(&r.run),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    match history {
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"failure\">sign-off registry: {}</p>",
                escape(&e.to_string())
            );
        }
        Ok(history) if history.is_empty() => {
            out += "<p class=\"meta\">No sign-off yet: the automatic flag applies.</p>";
        }
        Ok(history) => {
            match history.last().filter(|s| s.decision != Decision::Auto) {
                Some(current) => {
                    let _ = write!(
                        out,
                        "<p>Human decision: {} by {} — the automatic flag is overridden.</p>",
                        decision_badge(current),
                        escape(&current.by)
                    );
                }
                None => out += "<p class=\"meta\">Handed back to the automatic flag.</p>",
            }
            out += "<table class=\"runs\"><thead><tr><th>when (UTC)</th><th>decision</th><th>by</th>\
                    <th>automatic flag then</th><th>why</th></tr></thead><tbody>";
            for s in history.iter().rev() {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    utc(s.unix_s as u64),
                    escape(s.decision.as_str()),
                    escape(&s.by),
                    escape(s.automatic_flag.as_deref().unwrap_or("–")),
                    escape(&s.comment)
                );
            }
            out += "</tbody></table>";
        }
    }
    if state.signoff_token.is_some() {
        let _ = write!(
            out,
            "<form class=\"filters\" method=\"post\" action=\"/runs/{}/signoff\">\
             <select name=\"decision\"><option value=\"good\">good</option><option value=\"bad\">bad</option>\
             <option value=\"suspect\">suspect</option><option value=\"auto\">auto (automatic flag)</option></select>\
             <input name=\"by\" placeholder=\"your name\" required maxlength=\"100\">\
             <input name=\"comment\" placeholder=\"why\" required maxlength=\"4000\" size=\"50\">\
             <input name=\"token\" type=\"password\" placeholder=\"sign-off token\" required>\
             <button>Sign off</button></form>",
            url_segment(&r.run)
        );
    } else {
        out += "<p class=\"meta\">Sign off with <code>larmon signoff</code> (the dashboard takes \
                sign-offs when started with <code>--signoff-token-file</code>).</p>";
    }
    out
}

/// What the sign-off form sends.
#[derive(Deserialize)]
pub(crate) struct SignOffForm {
    decision: String,
    by: String,
    comment: String,
    token: String,
}

/// Byte strings compared in a time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        page(
            "Sign-off refused",
            &format!("<h1>Sign-off refused</h1><p class=\"failure\">{}</p>", escape(why)),
            false,
        ),
    )
        .into_response()
}

/// `POST /runs/<run>/signoff`: appends the decision and sends the browser back to the run page.
pub(crate) async fn sign_off(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
    Form(form): Form<SignOffForm>,
) -> Response {
    let Some(token) = &state.signoff_token else {
        return refused(
            StatusCode::FORBIDDEN,
            "this dashboard takes no sign-offs (start larmon serve with --signoff-token-file)",
        );
    };
    if !same_secret(token, form.token.trim()) {
        return refused(StatusCode::FORBIDDEN, "wrong sign-off token");
    }
    let Some(report) = state.store.run(&run) else {
        return refused(StatusCode::NOT_FOUND, "no such run");
    };
    let decision: Decision = match form.decision.parse() {
        Ok(d) => d,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let automatic = report.quality.flag.map(|f| f.as_str());
    let recorded = Registry::open(state.store.root())
        .and_then(|registry| registry.record(&run, decision, &form.by, &form.comment, automatic));
    match recorded {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/runs/{}#signoff", url_segment(&run)))],
        )
            .into_response(),
        Err(larmon_signoff::SignOffError::Invalid(why)) => refused(StatusCode::BAD_REQUEST, &why),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /api/runs/<run>/signoff`: the run's sign-off history, oldest first.
pub(crate) async fn api_history(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    let history = match Registry::open_existing(state.store.root()) {
        Ok(Some(registry)) => registry.history(&run),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    match history {
        Ok(history) => Json(history).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": e.to_string()})))
                .into_response()
        }
    }
}
