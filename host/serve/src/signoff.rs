//! Sign-off on the dashboard: each run page shows the run's human decision and its history
//! (`OUT/signoff.sqlite`, [`larmon_signoff`]), and — when the server was started with a token —
//! a form to add a decision, and one to make the run the reference of every plugin or of one
//! (`OUT/references.json`). The forms are plain HTML (no script); the token they must carry
//! keeps out both strangers and cross-site posts.

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
    match history(state, &r.run) {
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
        let mut options = String::from("<option value=\"\">every plugin</option>");
        for p in &r.plugins {
            let _ = write!(options, "<option value=\"{0}\">{0}</option>", escape(&p.name));
        }
        // For runs of any kind, or of this run's kind when it has one.
        let kinds = r.run_kind.as_deref().map_or(String::new(), |k| {
            format!("<option value=\"{0}\" selected>{0} runs</option>", escape(k))
        });
        let _ = write!(
            out,
            "<form class=\"filters\" method=\"post\" action=\"/runs/{}/reference\">\
             Make this run the reference of <select name=\"plugin\">{options}</select> \
             for <select name=\"kind\"><option value=\"\">runs of any kind</option>{kinds}</select> \
             <input name=\"token\" type=\"password\" placeholder=\"sign-off token\" required>\
             <button>Set reference</button></form>",
            url_segment(&r.run)
        );
    } else {
        out += "<p class=\"meta\">Sign off with <code>larmon signoff</code> and set references with \
                <code>larmon reference</code> (the dashboard takes both when started with \
                <code>--signoff-token-file</code>).</p>";
    }
    let references =
        larmon_report::references::References::read(state.store.root()).unwrap_or_default();
    let of = |prefix: &str, refs: &larmon_report::references::References| -> Vec<String> {
        std::iter::once(("every plugin".to_string(), refs.run.clone()))
            .chain(refs.plugins.iter().map(|(p, run)| (p.clone(), Some(run.clone()))))
            .filter(|(_, run)| run.as_deref() == Some(r.run.as_str()))
            .map(|(plugin, _)| format!("{prefix}{}", escape(&plugin)))
            .collect()
    };
    let mut mine = of("", &references);
    for (kind, refs) in &references.kinds {
        mine.extend(of(&format!("{} runs: ", escape(kind)), refs));
    }
    if !mine.is_empty() {
        let _ =
            write!(out, "<p class=\"meta\">This run is the reference of: {}.</p>", mine.join(", "));
    }
    out
}

/// What the reference form sends.
#[derive(Deserialize)]
pub(crate) struct ReferenceForm {
    #[serde(default)]
    plugin: String,
    /// Runs of this kind only (empty: any kind).
    #[serde(default)]
    kind: String,
    token: String,
}

/// `POST /runs/<run>/reference`: makes the run the reference of every plugin (or of one), for
/// runs of any kind (or of one), for reports written from now on.
pub(crate) async fn set_reference(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
    Form(form): Form<ReferenceForm>,
) -> Response {
    if let Err((status, why)) = authorised(&state, &run, &form.token, "changes") {
        return refused(status, &why);
    }
    let root = state.store.root();
    let mut references = match larmon_report::references::References::read(root) {
        Ok(r) => r,
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let kind = Some(form.kind.trim()).filter(|k| !k.is_empty());
    if let Some(kind) = kind.filter(|k| !larmon_report::run_kind::valid_kind(k)) {
        let rule = larmon_report::run_kind::KIND_RULE;
        return refused(StatusCode::BAD_REQUEST, &format!("kind {kind:?}: {rule}"));
    }
    let of_kind = references.for_kind_mut(kind);
    match form.plugin.trim() {
        "" => of_kind.run = Some(run.clone()),
        plugin => {
            of_kind.plugins.insert(plugin.to_string(), run.clone());
        }
    }
    match references.write(root) {
        Ok(()) => back_to_run(&run),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
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
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The report of the run a form posted to, when the server takes `what` (sign-offs, changes),
/// the form's token is the server's and the run has a report; else why not (for [`refused`]).
fn authorised(
    state: &AppState,
    run: &str,
    token: &str,
    what: &str,
) -> Result<Arc<RunReport>, (StatusCode, String)> {
    let Some(expected) = &state.signoff_token else {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "this dashboard takes no {what} (start larmon serve with --signoff-token-file)"
            ),
        ));
    };
    if !same_secret(expected, token.trim()) {
        return Err((StatusCode::FORBIDDEN, "wrong sign-off token".into()));
    }
    state.store.run(run).ok_or((StatusCode::NOT_FOUND, "no such run".into()))
}

/// Sends the browser back to the run page's sign-off part after a change.
fn back_to_run(run: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/runs/{}#signoff", url_segment(run)))])
        .into_response()
}

/// The run's sign-off history, oldest first (none while no registry exists).
fn history(state: &AppState, run: &str) -> Result<Vec<SignOff>, larmon_signoff::SignOffError> {
    match Registry::open_existing(state.store.root())? {
        Some(registry) => registry.history(run),
        None => Ok(Vec::new()),
    }
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
    let report = match authorised(&state, &run, &form.token, "sign-offs") {
        Ok(report) => report,
        Err((status, why)) => return refused(status, &why),
    };
    let decision: Decision = match form.decision.parse() {
        Ok(d) => d,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let automatic = report.quality.flag.map(|f| f.as_str());
    let recorded = Registry::open(state.store.root())
        .and_then(|registry| registry.record(&run, decision, &form.by, &form.comment, automatic));
    match recorded {
        Ok(_) => back_to_run(&run),
        Err(larmon_signoff::SignOffError::Invalid(why)) => refused(StatusCode::BAD_REQUEST, &why),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /api/runs/<run>/signoff`: the run's sign-off history, oldest first.
pub(crate) async fn api_history(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    match history(&state, &run) {
        Ok(history) => Json(history).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": e.to_string()})))
                .into_response()
        }
    }
}
