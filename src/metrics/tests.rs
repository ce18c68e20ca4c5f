//! The exposition parses in both formats, carries what was recorded, and forgets removed shops.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;

use super::{CheckState, Metrics};
use crate::checks::{CheckKind, Evidence, Verdict};
use crate::store::SessionState;
use crate::tripletex::Observer;

fn now() -> Timestamp {
    "2026-12-02T08:00:00Z".parse().unwrap()
}

fn evidence() -> Evidence {
    Evidence {
        headroom: Some(1234),
        forecast_exhausted_on: Some("2026-12-12".parse().unwrap()),
        ..Evidence::default()
    }
}

fn recorded_check(m: &Metrics, shop: &str, kind: CheckKind, verdict: Verdict, e: &Evidence) {
    let state = CheckState {
        verdict,
        evidence: Some(e),
        checked_at: Some(now()),
        since: Some(now()),
    };
    m.check(shop, kind, Some(&state));
}

/// A registry with data in every family.
pub(super) fn recorded() -> Metrics {
    let m = Metrics::new();
    m.configured(2, 2, Duration::from_secs(3600), &[]);
    let e = evidence();
    recorded_check(
        &m,
        "acme",
        CheckKind::CustomerNumbers,
        Verdict::Conflict,
        &e,
    );
    // An error carries empty evidence: it must not replace known figures with nothing.
    let empty = Evidence::default();
    recorded_check(
        &m,
        "acme",
        CheckKind::InvoiceNumbers,
        Verdict::Error,
        &empty,
    );
    m.session(
        "acme",
        SessionState::Valid,
        Some("2026-12-08T23:00:00Z".parse().unwrap()),
    );
    m.answered("acme", "customer", Some(200));
    m.answered("acme", "customer", Some(429));
    m.answered("acme", "session_delete", Some(204));
    m.answered("acme", "invoice", None);
    m.minted("acme");
    m.waited("acme", Duration::from_millis(1500));
    recorded_check(
        &m,
        "bolt",
        CheckKind::CustomerNumbers,
        Verdict::Conflict,
        &e,
    );
    m.check("bolt", CheckKind::InvoiceNumbers, None);
    m.pass_recorded(Duration::from_millis(120));
    m.pass_failed();
    m.reload(true);
    m.reload(false);
    m.webhook_refused(401);
    m.push("acme", Some((true, Some(now()))));
    m
}

/// A sample line's family name and its labels; panics on anything that is not a valid sample.
fn sample(line: &str) -> (String, HashMap<String, String>, f64) {
    let (head, value) = line.rsplit_once(' ').expect("name and value");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value in {line:?}"));
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
        None => (head, ""),
    };
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "bad metric name in {line:?}"
    );
    let labels = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("label=value");
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
            (k.to_owned(), v.expect("quoted label value").to_owned())
        })
        .collect();
    (name.to_owned(), labels, value)
}

/// Every sample belongs to a family with HELP and TYPE; returns samples by name.
fn parse(text: &str, openmetrics: bool) -> Vec<(String, HashMap<String, String>, f64)> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            typed.insert(name.to_owned(), kind.to_owned());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split_once(' ').unwrap().0.to_owned());
        } else if line == "# EOF" {
            assert!(openmetrics, "# EOF in the Prometheus text format");
        } else {
            let s = sample(line);
            let family = typed
                .keys()
                .filter(|f| s.0.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .unwrap_or_else(|| panic!("sample without TYPE: {line}"));
            assert!(helped.contains(family), "family without HELP: {family}");
            if typed[family] == "counter" {
                let want = if openmetrics {
                    format!("{family}_total")
                } else {
                    family.clone()
                };
                assert_eq!(s.0, want, "counter sample named like its family");
                assert!(s.0.ends_with("_total"));
            }
            samples.push(s);
        }
    }
    if openmetrics {
        assert_eq!(text.lines().last(), Some("# EOF"));
    }
    samples
}

fn value(
    samples: &[(String, HashMap<String, String>, f64)],
    name: &str,
    want: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

#[test]
fn both_formats_parse_and_carry_the_recorded_figures() {
    let m = recorded();
    for openmetrics in [true, false] {
        let text = if openmetrics {
            m.openmetrics()
        } else {
            m.prometheus_text()
        };
        let s = parse(&text, openmetrics);
        let acme = [("shop", "acme"), ("check", "customer_numbers")];
        let verdict = |v| {
            value(
                &s,
                "tripletex_sync_check_verdict",
                &[acme[0], acme[1], ("verdict", v)],
            )
        };
        assert_eq!(verdict("conflict"), Some(1.0));
        assert_eq!(verdict("ok"), Some(0.0));
        assert_eq!(
            value(&s, "tripletex_sync_check_numbers_left", &acme),
            Some(1234.0)
        );
        // 2026-12-12 00:00 Europe/Oslo.
        assert_eq!(
            value(
                &s,
                "tripletex_sync_check_forecast_exhausted_timestamp_seconds",
                &acme
            ),
            Some(1_797_030_000.0)
        );
        let at = now().as_second() as f64;
        assert_eq!(
            value(
                &s,
                "tripletex_sync_check_completed_timestamp_seconds",
                &acme
            ),
            Some(at)
        );
        // An error verdict has no evidence: no headroom is invented for it.
        let invoices = [("shop", "acme"), ("check", "invoice_numbers")];
        assert_eq!(
            value(&s, "tripletex_sync_check_numbers_left", &invoices),
            None
        );
        assert_eq!(
            value(
                &s,
                "tripletex_sync_session_state",
                &[("shop", "acme"), ("state", "valid")]
            ),
            Some(1.0)
        );
        let req = |endpoint, class| {
            value(
                &s,
                "tripletex_sync_requests_total",
                &[("shop", "acme"), ("endpoint", endpoint), ("class", class)],
            )
        };
        assert_eq!(req("customer", "2xx"), Some(1.0));
        assert_eq!(req("customer", "4xx"), Some(1.0));
        assert_eq!(req("session_delete", "2xx"), Some(1.0));
        assert_eq!(req("invoice", "error"), Some(1.0));
        assert_eq!(
            value(&s, "tripletex_sync_throttled_total", &[("shop", "acme")]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &s,
                "tripletex_sync_session_mints_total",
                &[("shop", "acme")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &s,
                "tripletex_sync_rate_limit_wait_seconds_total",
                &[("shop", "acme")]
            ),
            Some(1.5)
        );
        assert_eq!(
            value(&s, "tripletex_sync_shops", &[("set", "enabled")]),
            Some(2.0)
        );
        assert_eq!(
            value(&s, "tripletex_sync_pass_duration_seconds_count", &[]),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "tripletex_sync_passes_failed_total", &[]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &s,
                "tripletex_sync_config_reloads_total",
                &[("result", "failed")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &s,
                "tripletex_sync_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0)
        );
    }
}

#[test]
fn a_removed_shop_leaves_no_series() {
    let m = recorded();
    m.configured(1, 1, Duration::from_secs(3600), &["acme".to_owned()]);
    let text = m.prometheus_text();
    assert!(!text.contains("\"acme\""), "{text}");
    assert!(text.contains("shop=\"bolt\""));
}

/// Alert rules and dashboards name these: a new kind adds its label, none may change.
#[test]
fn the_endpoint_labels_are_the_kinds_and_the_clients_own() {
    let labels: Vec<&str> = super::endpoints().collect();
    assert_eq!(
        labels,
        [
            "customer",
            "invoice",
            "session_create",
            "session_whoami",
            "session_delete",
            "other"
        ]
    );
}

#[test]
fn an_unknown_endpoint_label_counts_as_other_and_is_forgotten() {
    let m = Metrics::new();
    m.answered("acme", "parcel", Some(200));
    let text = m.openmetrics();
    assert!(!text.contains("parcel"), "{text}");
    assert!(text.contains("endpoint=\"other\""), "{text}");
    m.configured(0, 0, Duration::from_secs(3600), &["acme".to_owned()]);
    assert!(!m.openmetrics().contains("\"acme\""));
}

#[test]
fn the_textfile_is_replaced_whole_and_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    super::write_textfile(dir.path(), "a 1\n").unwrap();
    super::write_textfile(dir.path(), "b 2\n").unwrap();
    let path = dir.path().join(super::METRICS_FILE);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temp file left: {names:?}");
}
