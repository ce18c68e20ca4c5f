//! The default `status` view: problems first, fitted to the width in characters, counted.

use std::time::Duration;

use jiff::Timestamp;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn check(verdict: Verdict, summary: &str, checked_at: &str) -> CheckStatus {
    CheckStatus {
        verdict,
        summary: summary.to_owned(),
        checked_at: Some(at(checked_at)),
        since: Some(at(checked_at)),
        ..Default::default()
    }
}

fn shop(name: &str, state: SessionState, checks: [CheckStatus; 2]) -> ShopStatus {
    let [customer, invoice] = checks;
    ShopStatus {
        name: name.to_owned(),
        enabled: true,
        session: SessionStatus {
            state,
            ..Default::default()
        },
        checks: ChecksStatus::try_from_fn(|kind| {
            Ok::<_, ()>(match kind {
                CheckKind::CustomerNumbers => customer.clone(),
                CheckKind::InvoiceNumbers => invoice.clone(),
            })
        })
        .unwrap(),
        push: None,
    }
}

const NOW: &str = "2026-11-29T10:00:00Z";
const RECENT: &str = "2026-11-29T09:59:00Z";
const LONG: &str = "ok: shop's run 1–1200, 98799 numbers left before 100000; at 3 a day, about 90 years; \
                    Tripletex's own series starts at 100000 … and more words to overflow any terminal";

/// Healthy, stale, conflicting, rejected and disabled shops, in that config order.
fn report() -> StatusReport {
    let ok = |s: &str| check(Verdict::Ok, s, RECENT);
    let mut off = shop("hvile", SessionState::Unknown, [ok(LONG), ok(LONG)]);
    off.enabled = false;
    StatusReport {
        generated_at: at(NOW),
        shard: None,
        store_error: None,
        notify: None,
        shops: vec![
            shop("fjellsport", SessionState::Valid, [ok(LONG), ok(LONG)]),
            shop(
                "gammel",
                SessionState::Revoked,
                [check(Verdict::Ok, LONG, "2026-11-29T06:55:00Z"), ok(LONG)],
            ),
            shop(
                "kaffebrenneriet",
                SessionState::Valid,
                [
                    check(
                        Verdict::Conflict,
                        "conflict: Tripletex's own series found inside the shop's range at 10000–10042",
                        RECENT,
                    ),
                    ok(LONG),
                ],
            ),
            shop(
                "sykkelsmia",
                SessionState::KeyRejected,
                [
                    check(
                        Verdict::Error,
                        "error: could not check customer numbers: Tripletex rejected the employee key",
                        RECENT,
                    ),
                    check(Verdict::Warn, "warn: runs out within 30 days", RECENT),
                ],
            ),
            off,
        ],
    }
}

fn view(width: usize, problems_only: bool) -> View {
    View {
        now: at(NOW),
        stale_after: Duration::from_secs(3 * 3600),
        width,
        problems_only,
    }
}

#[test]
fn status_lines_fit_the_width_in_characters_problems_first() {
    for width in [40, 80, 132] {
        let text = report().compact(&view(width, false));
        for line in text.lines() {
            assert!(line.chars().count() <= width, "{width}: {line:?}");
        }
        assert!(text.contains('…'), "long reasons are cut: {text}");
    }
    let text = report().compact(&view(80, false));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SHOP "), "{text}");
    let order: Vec<(&str, &str)> = lines[1..lines.len() - 2]
        .iter()
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap(), words.nth(1).unwrap())
        })
        .collect();
    assert_eq!(
        order,
        [
            ("kaffebrenneriet", "conflict"),
            ("sykkelsmia", "error"),
            ("sykkelsmia", "warn"),
            ("gammel", "ok"),
            ("fjellsport", "ok"),
            ("fjellsport", "ok"),
            ("gammel", "ok"),
            ("kaffebrenneriet", "ok"),
            ("hvile", "disabled"),
            ("hvile", "disabled"),
        ],
        "{text}"
    );
    assert!(
        lines[2].ends_with(" error    Tripletex rejected the employee key"),
        "{}",
        lines[2]
    );
    // The verdict is its own column; the reason says why the ok line ranks as stale.
    assert!(
        lines[1].contains(" conflict Tripletex's own series found"),
        "{}",
        lines[1]
    );
    assert!(
        lines[4].starts_with("gammel ")
            && lines[4].contains(" ok       not checked for 3h 5m: shop's run 1–1"),
        "{}",
        lines[4]
    );
    // The rejected shop's warn counts as key rejected: that is what to fix first.
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "5 shops, 10 checks: 1 conflict, 2 key rejected, 1 stale, 4 ok, 2 disabled;",
            "  1 session revoked"
        ]
    );
}

#[test]
fn status_problems_keep_only_what_needs_attention() {
    let text = report().compact(&view(80, true));
    assert_eq!(text.lines().count(), 1 + 4 + 2, "{text}");
    assert!(
        !text.contains("fjellsport") && !text.contains("hvile"),
        "{text}"
    );
    assert!(report().has_problems(&view(80, true)));

    let mut fine = report();
    fine.shops
        .retain(|s| s.name == "fjellsport" || s.name == "hvile");
    assert!(!fine.has_problems(&view(80, true)));
    assert_eq!(
        fine.compact(&view(80, true)),
        "nothing needs attention (2 shops, 4 checks: 2 ok, 2 disabled)\n"
    );
    let mut problems = report();
    problems.retain_problems(&view(80, true));
    let names: Vec<&str> = problems.shops.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gammel", "kaffebrenneriet", "sykkelsmia"]);
}

#[test]
fn status_wide_table_shows_a_revoked_session() {
    let table = report().table();
    let gammel = table.lines().find(|l| l.starts_with("gammel")).unwrap();
    assert!(gammel.contains(" revoked "), "{gammel}");
    // Nothing is cut in the full table.
    assert!(table.contains("and more words to overflow any terminal"));
}

#[test]
fn status_shop_names_longer_than_the_width_are_cut_too() {
    let mut long = report();
    long.shops[0].name = "x".repeat(100);
    for line in long.compact(&view(60, false)).lines() {
        assert!(line.chars().count() <= 60, "{line}");
    }
}

#[test]
fn a_notify_backlog_gets_a_line_that_fits_and_none_while_everything_is_delivered() {
    let mut report = report();
    let view = view(80, false);
    report.notify = Some(crate::notify::Backlog {
        delivered: 12,
        ..Default::default()
    });
    assert!(!report.compact(&view).contains("notify:"));
    report.notify = Some(crate::notify::Backlog {
        pending: 12,
        oldest_pending_at: Some(at("2026-12-06T06:12:00Z")),
        dead: 1,
        last_error: Some("refused: 503 Service Unavailable in 3 ms, retry after 30s (the platform asks to come back later)".into()),
        ..Default::default()
    });
    let text = report.compact(&view);
    let line = text.lines().find(|l| l.starts_with("notify:")).unwrap();
    assert!(
        line.starts_with(
            "notify: 12 pending since 2026-12-06 07:12 (Oslo), 1 dead; last error: refused"
        ),
        "{line}"
    );
    assert!(line.chars().count() <= 80, "{line}");
    assert!(report.table().contains("notify: 12 pending"));
}

/// A revoked session's record carries no sentence, nor does status.json (the stop revokes every
/// shop at once); what `revoked` means is said where it is shown.
#[test]
fn a_revoked_session_says_what_it_means_without_storing_it() {
    let record = SessionRecord {
        state: SessionState::Revoked,
        company_id: Some(1001),
        ..SessionRecord::default()
    };
    let status = SessionStatus::from(&record);
    let json = serde_json::to_string(&status).unwrap();
    assert!(!json.contains("detail"), "{json}");
    assert!(
        status
            .detail()
            .unwrap()
            .contains("next pass mints a new one")
    );
    let rejected = SessionStatus {
        state: SessionState::KeyRejected,
        detail: Some("422".into()),
        ..status
    };
    assert_eq!(rejected.detail(), Some("422"));
}
