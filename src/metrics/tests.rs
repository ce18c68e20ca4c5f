//! The exposition parses in both formats, carries what was recorded, and forgets removed shops.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;

use super::{CheckState, Metrics, SERIES_PER_SHOP, ShopState};
use crate::checks::{CheckKind, Evidence, PerKind, Verdict};
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

fn check<'a>(verdict: Verdict, e: &'a Evidence) -> Option<CheckState<'a>> {
    Some(CheckState {
        verdict,
        evidence: Some(e),
        checked_at: Some(now()),
    })
}

/// A shop with a valid session and both checks recorded as given.
fn shop_state<'a>(
    customers: Option<CheckState<'a>>,
    invoices: Option<CheckState<'a>>,
) -> ShopState<'a> {
    let mut checks = PerKind::default();
    checks[CheckKind::CustomerNumbers] = customers;
    checks[CheckKind::InvoiceNumbers] = invoices;
    ShopState {
        session: SessionState::Valid,
        session_expires_at: Some("2026-12-08T23:00:00Z".parse().unwrap()),
        push_active: None,
        push_last_callback: None,
        checks,
    }
}

/// A registry with data in every family.
pub(super) fn recorded() -> Metrics {
    let m = Metrics::new();
    m.configured(2, 2, Duration::from_secs(3600), &[]);
    let e = evidence();
    // An error carries empty evidence: it must not replace known figures with nothing.
    let empty = Evidence::default();
    let mut acme = shop_state(check(Verdict::Conflict, &e), check(Verdict::Error, &empty));
    acme.push_active = Some(true);
    acme.push_last_callback = Some(now());
    m.shop("acme", &acme);
    m.answered("acme", "customer", Some(200));
    m.answered("acme", "customer", Some(429));
    m.answered("acme", "session_delete", Some(204));
    m.answered("acme", "invoice", None);
    m.minted("acme");
    m.waited("acme", Duration::from_millis(1500));
    m.shop("bolt", &shop_state(check(Verdict::Conflict, &e), None));
    m.pass_recorded(Duration::from_millis(120));
    m.pass_failed();
    m.reload(true);
    m.reload(false);
    m.webhook_refused(401);
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
        // One series per check: the current verdict's.
        assert_eq!(verdict("ok"), None);
        assert_eq!(
            value(&s, "tripletex_sync_check_numbers_left", &acme),
            Some(1234.0)
        );
        let at = now().as_second() as f64;
        assert_eq!(
            value(
                &s,
                "tripletex_sync_checks_completed_timestamp_seconds",
                &[("shop", "acme")]
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
        assert_eq!(
            value(
                &s,
                "tripletex_sync_session_expiry_timestamp_seconds",
                &[("shop", "acme")]
            ),
            Some(1_796_770_800.0)
        );
        assert_eq!(
            value(&s, "tripletex_sync_push_active", &[("shop", "acme")]),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "tripletex_sync_push_active", &[("shop", "bolt")]),
            None
        );
        assert_eq!(
            value(
                &s,
                "tripletex_sync_push_last_callback_timestamp_seconds",
                &[]
            ),
            Some(at)
        );
        let req = |endpoint, class| {
            value(
                &s,
                "tripletex_sync_requests_total",
                &[("endpoint", endpoint), ("class", class)],
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
            value(&s, "tripletex_sync_throttled_total", &[("shop", "bolt")]),
            None
        );
        assert_eq!(
            value(&s, "tripletex_sync_session_mints_total", &[]),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "tripletex_sync_rate_limit_wait_seconds_total", &[]),
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
fn an_unknown_endpoint_label_counts_as_other() {
    let m = Metrics::new();
    m.answered("acme", "parcel", Some(200));
    let text = m.openmetrics();
    assert!(!text.contains("parcel"), "{text}");
    assert!(text.contains("endpoint=\"other\""), "{text}");
}

#[test]
fn a_new_verdict_replaces_the_series_and_an_error_keeps_the_headroom() {
    let m = Metrics::new();
    let e = evidence();
    m.shop("acme", &shop_state(check(Verdict::Conflict, &e), None));
    let empty = Evidence::default();
    m.shop("acme", &shop_state(check(Verdict::Error, &empty), None));
    let s = parse(&m.prometheus_text(), false);
    let acme = [("shop", "acme"), ("check", "customer_numbers")];
    let verdicts: Vec<_> = s
        .iter()
        .filter(|(n, _, _)| n == "tripletex_sync_check_verdict")
        .map(|(_, labels, v)| (labels["verdict"].clone(), *v))
        .collect();
    assert_eq!(verdicts, [("error".to_owned(), 1.0)]);
    assert_eq!(
        value(&s, "tripletex_sync_check_numbers_left", &acme),
        Some(1234.0)
    );
    // A check turned off leaves nothing, and the shop's completion time is its other checks'.
    m.shop("acme", &shop_state(None, None));
    let text = m.prometheus_text();
    assert!(!text.contains("check=\""), "{text}");
    assert!(
        !text.contains("tripletex_sync_checks_completed_timestamp_seconds{"),
        "{text}"
    );
}

/// The budget per shop, at a few hundred shops recorded with every per-shop series there is
/// (webhooks off): at most 8 series and 1 KiB of exposition each, counted in both formats.
#[test]
fn a_shop_costs_at_most_eight_series_and_a_kibibyte() {
    const SHOPS: usize = 300;
    let m = Metrics::new();
    m.configured(SHOPS, SHOPS, Duration::from_secs(3600), &[]);
    let e = evidence();
    for i in 0..SHOPS {
        // Names as long as a realistic shop's.
        let shop = format!("nordic-garden-supply-{i:04}");
        m.shop(
            &shop,
            &shop_state(check(Verdict::Warn, &e), check(Verdict::Ok, &e)),
        );
        for endpoint in super::endpoints() {
            m.answered(&shop, endpoint, Some(200));
            m.answered(&shop, endpoint, Some(429));
            m.answered(&shop, endpoint, None);
        }
        m.minted(&shop);
        m.waited(&shop, Duration::from_millis(5));
    }
    for openmetrics in [true, false] {
        let text = if openmetrics {
            m.openmetrics()
        } else {
            m.prometheus_text()
        };
        let samples = parse(&text, openmetrics);
        let per_shop = samples
            .iter()
            .filter(|(_, labels, _)| labels.contains_key("shop"))
            .count();
        assert_eq!(
            per_shop,
            SHOPS * SERIES_PER_SHOP,
            "every per-shop series present"
        );
        assert!(per_shop <= SHOPS * 8, "{per_shop} series for {SHOPS} shops");
        let series = samples.len() as f64 / SHOPS as f64;
        assert!(series <= 8.5, "{series} series per shop, all included");
        let bytes = text.len() / SHOPS;
        assert!(bytes <= 1024, "{bytes} bytes per shop");
    }
}

#[test]
fn the_textfile_is_replaced_whole_and_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    use std::io::Write as _;
    super::write_textfile(dir.path(), |out| out.write_all(b"a 1\n")).unwrap();
    super::write_textfile(dir.path(), |out| out.write_all(b"b 2\n")).unwrap();
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
