//! The rules a plugin's report must keep before the host writes any of it: a size limit over
//! every text it holds (not only the figures), a number of figures, figure names that are safe,
//! distinct file names; and the text rules for what plugins name themselves and what reaches a
//! terminal ([`printable`]).

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::Limits;
use crate::bindings::larmon::plugin::types as wit;
use crate::plugin_run::{PluginFailure, PluginReport};

/// Longest figure name kept (a file-name stem).
const MAX_FIGURE_NAME: usize = 64;

/// Whether `name` can name a plugin: 1–64 ASCII letters, digits, `-`, `_`, `.`, starting with
/// a letter or digit (it names a folder of the run and is printed on terminals).
pub fn is_plugin_name(name: &str) -> bool {
    name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Text from a plugin made safe for a terminal or a log line: control characters (escape
/// sequences, carriage returns, …) are shown as `\u{…}` escapes instead of acting.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() })
            .collect(),
    )
}

/// Every byte of text in a report.
fn report_bytes(report: &wit::Report) -> usize {
    let figures: usize = report
        .figures
        .iter()
        .map(|f| f.name.len() + f.title.len() + f.svg.len() + f.data_json.len())
        .sum();
    let metrics: usize = report.metrics.iter().map(|m| m.name.len() + m.unit.len() + 16).sum();
    let checks: usize = report.checks.iter().map(|c| c.name.len() + c.message.len() + 1).sum();
    let results: usize = report.results.iter().map(|r| r.name.len() + r.json.len()).sum();
    figures + metrics + checks + results
}

/// A figure name as a safe, short file-name stem.
fn figure_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(MAX_FIGURE_NAME)
        .collect();
    if stem.is_empty() { "figure".into() } else { stem }
}

/// The report if it keeps the rules, with notes on the figure names the host changed.
pub(crate) fn checked_report(
    mut report: wit::Report,
    limits: &Limits,
) -> Result<(PluginReport, Vec<String>), PluginFailure> {
    let size = report_bytes(&report);
    if size > limits.max_report_bytes {
        return Err(PluginFailure::ReportLimit {
            mib: size as f64 / (1 << 20) as f64,
            limit_mib: limits.max_report_bytes >> 20,
        });
    }
    if report.figures.len() > limits.max_figures {
        return Err(PluginFailure::ReportRule(format!(
            "{} figures, more than the limit of {}",
            report.figures.len(),
            limits.max_figures
        )));
    }
    // Names become files: safe characters only, and distinct even on a case-insensitive disk.
    let mut notes = Vec::new();
    let mut taken = BTreeSet::new();
    for figure in &mut report.figures {
        let stem = figure_stem(&figure.name);
        let mut unique = stem.clone();
        let mut n = 1;
        while !taken.insert(unique.to_ascii_lowercase()) {
            n += 1;
            unique = format!("{stem}-{n}");
        }
        if unique != figure.name {
            notes.push(format!(
                "figure {} is written as {unique}",
                printable(&format!("{:?}", figure.name))
            ));
            figure.name = unique;
        }
    }
    Ok((report.into(), notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(name: &str) -> wit::Figure {
        wit::Figure {
            name: name.into(),
            title: String::new(),
            svg: "<svg/>".into(),
            data_json: "{}".into(),
        }
    }

    fn report(figures: Vec<wit::Figure>) -> wit::Report {
        wit::Report { figures, metrics: Vec::new(), checks: Vec::new(), results: Vec::new() }
    }

    #[test]
    fn figure_names_become_distinct_safe_stems() {
        let names = ["a/b", "a_b", "A_B", "../../etc", "", "rate"];
        let (checked, notes) =
            checked_report(report(names.iter().map(|n| figure(n)).collect()), &Limits::default())
                .unwrap();
        let stems: Vec<&str> = checked.figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(stems, ["a_b", "a_b-2", "A_B-3", "______etc", "figure", "rate"]);
        assert_eq!(notes.len(), 5);
    }

    #[test]
    fn every_text_counts_toward_the_size_limit() {
        let limits = Limits { max_report_bytes: 1 << 20, ..Limits::default() };
        let mut big = report(vec![figure("f")]);
        big.metrics.push(wit::Metric {
            name: "n".repeat(2 << 20),
            value: 1.0,
            error: None,
            unit: String::new(),
        });
        let err = checked_report(big, &limits).unwrap_err();
        assert!(matches!(err, PluginFailure::ReportLimit { .. }), "{err}");
        let many = report((0..101).map(|i| figure(&format!("f{i}"))).collect());
        let err = checked_report(many, &Limits::default()).unwrap_err().to_string();
        assert!(err.contains("101 figures, more than the limit of 100"), "{err}");
    }

    #[test]
    fn plugin_names_and_terminal_text() {
        assert!(is_plugin_name("charge-light") && is_plugin_name("dqdx_v2.1"));
        for bad in ["", "-x", "a b", "x\u{1b}[32mok", "../x", &"x".repeat(65)] {
            assert!(!is_plugin_name(bad), "{bad:?}");
        }
        assert_eq!(printable("quality ok"), "quality ok");
        assert_eq!(printable("\u{1b}[2K\rquality ok"), "\\u{1b}[2K\\u{d}quality ok");
    }
}
