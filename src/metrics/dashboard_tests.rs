//! The shipped Grafana dashboard (`contrib/grafana/tripletex-sync.json`) parses, and every metric
//! name its queries use is one the daemon exports: a renamed or dropped metric fails here, not on
//! an operator's empty panel.

use std::collections::BTreeSet;

use super::tests::recorded;

/// Every name the exposition can carry: the samples of a registry with data in every family,
/// and for each declared family the names its type writes (`_total`, `_bucket`, `_sum`, `_count`).
fn exported() -> BTreeSet<String> {
    let text = recorded().prometheus_text();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            names.insert(name.to_owned());
        }
    }
    names
}

/// The `tripletex_sync_…` names in a PromQL expression.
fn queried(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tripletex_sync_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        found.push(name);
    }
    found
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/tripletex-sync.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "tripletex-sync");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let exported = exported();
    let mut unknown = Vec::new();
    let mut queries = 0;
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            queries += 1;
            for name in queried(expr) {
                if !exported.contains(&name) {
                    unknown.push(format!("{}: {name}", panel["title"]));
                }
            }
        }
    }
    assert!(queries > 10, "{queries} queries");
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the daemon does not export: {unknown:#?}"
    );
}

#[test]
fn the_name_scanner_finds_every_name() {
    assert_eq!(
        queried("sum(rate(tripletex_sync_a_total[5m])) / tripletex_sync_b{x=\"y\"}"),
        ["tripletex_sync_a_total", "tripletex_sync_b"]
    );
}
