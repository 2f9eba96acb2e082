//! docs/metrics.md and docs/alerts.yml held against what a processor's `/metrics` serves:
//! every metric the document names must be served with the type it gives, and every
//! series its suggested alerts and the alert rules use must exist (a counter's samples
//! end in `_total`).

/// The document, as built.
pub const METRICS_MD: &str = include_str!("../../../docs/metrics.md");
/// The alert rules, as built.
pub const ALERTS_YML: &str = include_str!("../../../docs/alerts.yml");
/// The Grafana dashboard, as built.
pub const DASHBOARD_JSON: &str = include_str!("../../../docs/grafana-dashboard.json");

/// The processor's metrics the document's table names: `(processor_<name>, type)`.
pub fn documented(doc: &str) -> Vec<(String, String)> {
    let Some(section) = doc.split("## The processor").nth(1) else { return vec![] };
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut out = vec![];
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let columns: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(names), Some(kind)) = (columns.get(1), columns.get(2)) else { continue };
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            let name = name.split('{').next().unwrap_or(name);
            out.push((format!("processor_{name}"), kind.to_string()));
        }
    }
    out
}

/// The series the document's suggested alerts use (`processor_…` names).
pub fn alert_series(doc: &str) -> Vec<String> {
    let Some(alerts) = doc.split("Suggested alerts").nth(1) else { return vec![] };
    let alerts = alerts.split_once('\n').map_or("", |(_, rest)| rest);
    series_in(alerts.split("\n\n").next().unwrap_or_default())
}

/// The series the expressions of alert rules (`expr:` lines) or of a dashboard
/// (`"expr":` fields) use (`processor_…` names).
pub fn rule_series(rules: &str) -> Vec<String> {
    let exprs: Vec<&str> = rules
        .lines()
        .map(str::trim_start)
        .filter_map(|l| l.strip_prefix("expr:").or_else(|| l.strip_prefix("\"expr\":")))
        .collect();
    series_in(&exprs.join("\n"))
}

/// The `processor_…` names in `text`, each once, in order.
fn series_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if token.starts_with("processor_") && !out.iter().any(|o| o == token) {
            out.push(token.to_string());
        }
    }
    out
}

/// What the document and the alert `rules` name that `served` (a `/metrics` body) lacks:
/// a metric without its `# TYPE` line of the documented type, or an alert's series without
/// a sample.
pub fn missing(doc: &str, rules: &str, served: &str) -> Vec<String> {
    let mut out = vec![];
    for (name, kind) in documented(doc) {
        if !served.lines().any(|l| l == format!("# TYPE {name} {kind}")) {
            out.push(format!("{name} ({kind})"));
        }
    }
    for series in alert_series(doc).into_iter().chain(rule_series(rules)) {
        let sampled = served.lines().any(|l| {
            l.strip_prefix(series.as_str()).is_some_and(|rest| rest.starts_with([' ', '{']))
        });
        if !sampled {
            out.push(format!("{series} (in an alert)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_metrics_and_alert_series() {
        let names = documented(METRICS_MD);
        assert!(names.contains(&("processor_conflicts".into(), "counter".into())), "{names:?}");
        assert!(names.contains(&("processor_task_iterations".into(), "gauge".into())));
        assert!(alert_series(METRICS_MD).contains(&"processor_conflicts_total".to_string()));
        let rules = rule_series(ALERTS_YML);
        for series in ["processor_payments_held_total", "processor_scan_lag"] {
            assert!(rules.contains(&series.to_string()), "{rules:?}");
        }
        let panels = rule_series(DASHBOARD_JSON);
        for series in ["processor_fee_bump_paid_total", "processor_task_consecutive_failures"] {
            assert!(panels.contains(&series.to_string()), "{panels:?}");
        }
        // A body serving a counter without its `_total` samples misses the alert's series.
        let served = "# TYPE processor_conflicts counter\nprocessor_conflicts 0\n";
        let lacking = missing("## The processor\n| `conflicts` | counter | x |\n\nSuggested alerts:\n- `increase(processor_conflicts_total[5m]) > 0`\n", "", served);
        assert_eq!(lacking, vec!["processor_conflicts_total (in an alert)".to_string()]);
        let lacking = missing("", "      expr: processor_scan_lag > 20\n", served);
        assert_eq!(lacking, vec!["processor_scan_lag (in an alert)".to_string()]);
    }
}
