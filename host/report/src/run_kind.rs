//! The kind of a run (beam, cosmic, pulser, …), which picks its reference runs: named by the
//! operator (`larmon run|watch --run-kind KIND`) or told from the run's own metrics by rules in
//! the configuration, the first rule that holds naming the kind:
//!
//! ```toml
//! [[run_kinds]]
//! kind = "beam"                      # runs with NuMI-spill triggers
//! metric = "timing/external_trigger_rate_hz"
//! min = 0.3
//! [[run_kinds]]
//! kind = "cosmic"                    # no metric: every run the rules above did not take
//! ```
//!
//! A run no rule takes has no kind and is compared with the references for any kind.

use serde::Deserialize;

use crate::model::PluginEntry;

/// One rule of `[[run_kinds]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunKindRule {
    /// The kind a run gets when the rule holds.
    pub kind: String,
    /// `"plugin/metric"` the rule looks at; none: the rule always holds.
    pub metric: Option<String>,
    /// The metric is at least this.
    pub min: Option<f64>,
    /// The metric is at most this.
    pub max: Option<f64>,
}

/// The `[[run_kinds]]` rules, in the order of the file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunKinds {
    /// The rules.
    pub rules: Vec<RunKindRule>,
}

/// What a run kind may be made of, for the messages that refuse one.
pub const KIND_RULE: &str = "use letters, digits, - and _ (beam, cosmic, …)";

/// Whether `kind` can name a run kind: letters, digits, `-` and `_` (it appears in file
/// names, URLs and forms).
pub fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl RunKinds {
    /// Reads the `[[run_kinds]]` array of tables; a bad rule is named by its position.
    pub fn from_value(value: toml::Value) -> Result<Self, String> {
        let toml::Value::Array(items) = value else {
            return Err("[[run_kinds]] must be an array of tables".into());
        };
        let mut rules = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let at = |reason: String| format!("[[run_kinds]] number {}: {reason}", i + 1);
            let rule: RunKindRule =
                item.try_into().map_err(|e: toml::de::Error| at(e.message().to_string()))?;
            if !valid_kind(&rule.kind) {
                return Err(at(format!("kind {:?}: {KIND_RULE}", rule.kind)));
            }
            match &rule.metric {
                Some(metric) if !metric.contains('/') => {
                    return Err(at(format!("metric {metric:?}: name it \"plugin/metric\"")));
                }
                None if rule.min.is_some() || rule.max.is_some() => {
                    return Err(at("min and max need a metric".into()));
                }
                Some(_) if rule.min.is_none() && rule.max.is_none() => {
                    return Err(at("a metric needs min, max or both".into()));
                }
                _ => {}
            }
            if rule.min.is_some_and(f64::is_nan) || rule.max.is_some_and(f64::is_nan) {
                return Err(at("min and max must be numbers".into()));
            }
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    /// The kind of a run: `forced` when the operator named one, else the first rule that holds
    /// on the plugins' metrics (a rule whose metric the run lacks does not hold).
    pub fn kind_of(&self, forced: Option<&str>, plugins: &[PluginEntry]) -> Option<String> {
        if let Some(kind) = forced {
            return Some(kind.to_string());
        }
        let value = |key: &str| {
            let (plugin, name) = key.split_once('/')?;
            let plugin = plugins.iter().find(|p| p.name == plugin)?;
            Some(plugin.metrics.iter().find(|m| m.name == name)?.value)
        };
        self.rules
            .iter()
            .find(|rule| match &rule.metric {
                None => true,
                Some(metric) => value(metric).is_some_and(|v| {
                    rule.min.is_none_or(|min| v >= min) && rule.max.is_none_or(|max| v <= max)
                }),
            })
            .map(|rule| rule.kind.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, test_entry};

    fn entry(plugin: &str, metric: &str, value: f64) -> PluginEntry {
        test_entry(plugin, (metric, value, "Hz"), Status::Ok)
    }

    fn rules(text: &str) -> Result<RunKinds, String> {
        let mut table: toml::Table = toml::from_str(text).unwrap();
        RunKinds::from_value(table.remove("run_kinds").unwrap())
    }

    /// The first rule that holds names the kind; a rule without a metric takes the rest; a
    /// missing metric does not hold; the operator's kind wins over every rule.
    #[test]
    fn the_first_rule_that_holds_names_the_kind() {
        let kinds = rules(
            "[[run_kinds]]\nkind = \"beam\"\nmetric = \"timing/trigger_rate_hz\"\nmin = 0.3\n\
             [[run_kinds]]\nkind = \"noisy\"\nmetric = \"packet-rate/rate_hz\"\nmin = 1e6\nmax = 1e9\n\
             [[run_kinds]]\nkind = \"cosmic\"\n",
        )
        .unwrap();
        let beam = [entry("timing", "trigger_rate_hz", 0.8)];
        assert_eq!(kinds.kind_of(None, &beam).as_deref(), Some("beam"));
        let quiet = [entry("timing", "trigger_rate_hz", 0.0)];
        assert_eq!(kinds.kind_of(None, &quiet).as_deref(), Some("cosmic"));
        let noisy = [entry("timing", "trigger_rate_hz", 0.1), entry("packet-rate", "rate_hz", 2e6)];
        assert_eq!(kinds.kind_of(None, &noisy).as_deref(), Some("noisy"));
        assert_eq!(kinds.kind_of(None, &[]).as_deref(), Some("cosmic"), "no metric: the rest");
        assert_eq!(kinds.kind_of(Some("pulser"), &beam).as_deref(), Some("pulser"));
        assert_eq!(RunKinds::default().kind_of(None, &beam), None);
    }

    /// Bad rules are refused with their position and what to do.
    #[test]
    fn bad_rules_are_named() {
        let error = |text: &str| rules(text).unwrap_err();
        assert!(error("[[run_kinds]]\nkind = \"a b\"\n").contains("number 1: kind \"a b\""));
        assert!(
            error("[[run_kinds]]\nkind = \"a\"\n[[run_kinds]]\nkind = \"b\"\nmetric = \"rate\"\nmin = 1\n")
                .contains("number 2: metric \"rate\": name it \"plugin/metric\"")
        );
        assert!(error("[[run_kinds]]\nkind = \"a\"\nmin = 1\n").contains("need a metric"));
        assert!(error("[[run_kinds]]\nkind = \"a\"\nmetric = \"p/m\"\n").contains("needs min"));
        assert!(error("[[run_kinds]]\nkind = \"a\"\nmetrc = \"p/m\"\n").contains("unknown field"));
        assert!(error("run_kinds = 3\n").contains("array of tables"));
    }
}
