//! Property test over answers from Tripletex: the real pass (client, sync, checks, store) against
//! the simulator, whose list answers are damaged by random mutations of their envelope and rows.
//! However an answer is damaged, the pass ends (bounded by a timeout), nothing panics, the damaged
//! check says `error` (never `ok` or another verdict read from the damaged data) and its mirror
//! stays as it was.

use std::cell::RefCell;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use tripletex_sim::{Fault, FaultKind, Mutation};
use tripletex_sync::checks::CheckKind::{CustomerNumbers, InvoiceNumbers};
use tripletex_sync::checks::{CheckKind, Verdict};

use crate::{DAY, HOUR, Shop, days_before, outcome, today};
use tripletex_sync_fixture::daemon::Fixture;

/// Integers no row id or number may be.
fn not_positive() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        (i64::MIN..0).prop_map(|n| json!(n)),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!("7")),
        Just(json!(1.5)),
        Just(json!([1])),
        Just(json!({"n": 1})),
    ]
}

/// What no customer or invoice number may be: not a positive integer, or beyond int32. (`null`
/// and 0 are Tripletex's "no number", which the spec allows: not damage.)
fn bad_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        not_positive().prop_filter("null and 0 are no number", |v| !v.is_null()
            && v != &json!(0)),
        (i64::from(i32::MAX) + 1..=i64::MAX).prop_map(|n| json!(n)),
    ]
}

/// What no object's `version` may be: not an integer from 0, or beyond int32.
fn bad_version() -> impl Strategy<Value = Value> {
    prop_oneof![
        not_positive().prop_filter("0 is the first version", |v| v != &json!(0)),
        (i64::from(i32::MAX) + 1..=i64::MAX).prop_map(|n| json!(n)),
    ]
}

fn not_a_list() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        Just(json!({})),
        Just(json!("[]")),
        Just(json!(3))
    ]
}

/// `from` for a first page (which asked for 0), `count` for a page of at most 1000 rows when
/// more than 1000 are claimed or the type is wrong, `fullResultSize` below the rows sent.
fn bad_envelope_key() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        (1..1_000_000i64).prop_map(|n| ("from".to_owned(), json!(n))),
        not_positive()
            .prop_filter("0 is a valid from", |v| v != &json!(0))
            .prop_map(|v| ("from".to_owned(), v)),
        (1001..1_000_000i64).prop_map(|n| ("count".to_owned(), json!(n))),
        not_positive()
            .prop_filter("0 may be a valid count", |v| v != &json!(0))
            .prop_map(|v| ("count".to_owned(), v)),
        // `fullResultSize` is optional: null means "not sent".
        not_positive()
            .prop_filter("0 needs rows to be wrong; null is absent", |v| {
                v != &json!(0) && !v.is_null()
            })
            .prop_map(|v| ("fullResultSize".to_owned(), v)),
        not_a_list().prop_map(|v| ("values".to_owned(), v)),
    ]
}

/// One mutation that makes a list answer of `kind` with at least one row unbelievable.
fn damage(kind: CheckKind) -> impl Strategy<Value = Mutation> {
    let (number, third, bad_third): (&str, &str, BoxedStrategy<Value>) = match kind {
        CheckKind::CustomerNumbers => (
            "customerNumber",
            "isInactive",
            prop_oneof![Just(json!(0)), Just(json!("false")), Just(json!(null))].boxed(),
        ),
        CheckKind::InvoiceNumbers => (
            "invoiceNumber",
            "invoiceDate",
            prop_oneof![
                Just(json!("2026-13-45")),
                Just(json!(20260101)),
                Just(json!(null))
            ]
            .boxed(),
        ),
    };
    let row = 0..100usize;
    prop_oneof![
        prop_oneof![Just("values"), Just("from"), Just("count")]
            .prop_map(|key| Mutation::RemoveKey(key.into())),
        bad_envelope_key().prop_map(|(key, value)| Mutation::SetKey(key, value)),
        (
            row.clone(),
            prop_oneof![Just("id"), Just("version"), Just(number), Just(third)]
        )
            .prop_map(|(row, field)| Mutation::RemoveField {
                row,
                field: field.into()
            }),
        (row.clone(), not_positive()).prop_map(|(row, value)| Mutation::SetField {
            row,
            field: "id".into(),
            value
        }),
        (row.clone(), bad_number()).prop_map(move |(row, value)| Mutation::SetField {
            row,
            field: number.into(),
            value
        }),
        (row.clone(), bad_version()).prop_map(|(row, value)| Mutation::SetField {
            row,
            field: "version".into(),
            value
        }),
        (row.clone(), bad_third).prop_map(move |(row, value)| Mutation::SetField {
            row,
            field: third.into(),
            value
        }),
        (row.clone(), not_positive()).prop_map(|(row, value)| Mutation::ReplaceRow { row, value }),
        row.prop_map(|row| Mutation::DuplicateRow { row }),
    ]
}

fn case() -> impl Strategy<Value = (CheckKind, Vec<Mutation>)> {
    prop_oneof![
        Just(CheckKind::CustomerNumbers),
        Just(CheckKind::InvoiceNumbers)
    ]
    .prop_flat_map(|kind| (Just(kind), prop::collection::vec(damage(kind), 1..4)))
}

#[test]
fn a_damaged_list_answer_is_an_error_never_ok_and_never_touches_the_mirror() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (f, shop) = rt.block_on(async {
        let f = Fixture::new().await;
        f.add_shop("acme", 1001, "");
        f.sim.add_customers(1001, 1, 50, false);
        f.sim.add_customers(1001, 90, 3, true);
        f.sim
            .add_invoices(1001, 6000, 20, days_before(today(&f), 19), 1);
        let mut shop = Shop::open(&f, "acme");
        let first = shop.pass(&f).await;
        assert!(first.outcomes().iter().all(|o| o.verdict == Verdict::Ok));
        (f, shop)
    });
    let shop = RefCell::new(shop);
    let mirrors = |shop: &Shop| {
        let mut c = shop.store.mirror("acme", CustomerNumbers).unwrap();
        let mut i = shop.store.mirror("acme", InvoiceNumbers).unwrap();
        c.sort_by_key(|(id, _)| *id);
        i.sort_by_key(|(id, _)| *id);
        (c, i)
    };
    let before = mirrors(&shop.borrow());
    let config = Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config)
        .run(&case(), |(kind, mutations)| {
            let path = match kind {
                CheckKind::CustomerNumbers => "/customer",
                CheckKind::InvoiceNumbers => "/invoice",
            };
            // A full resync every case: every listing of the kind is read and damaged.
            f.clock.advance(DAY + HOUR);
            f.sim.clear_faults();
            f.sim.inject(Fault {
                path_prefix: Some(path.into()),
                ..Fault::always(FaultKind::Envelope(mutations.clone()))
            });
            let mut shop = shop.borrow_mut();
            let report = rt
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(30), shop.pass(&f)).await
                })
                .expect("the pass ends");
            let damaged = outcome(&report, kind);
            prop_assert_eq!(damaged.verdict, Verdict::Error, "{:#?}", damaged);
            prop_assert!(
                damaged.summary.contains("Tripletex sent an invalid answer"),
                "{}",
                damaged.summary
            );
            let (c, i) = mirrors(&shop);
            prop_assert_eq!(&c, &before.0);
            prop_assert_eq!(&i, &before.1);
            Ok(())
        })
        .unwrap();
    f.sim.clear_faults();
    let healed = rt.block_on(shop.borrow_mut().pass(&f));
    assert!(healed.outcomes().iter().all(|o| o.verdict == Verdict::Ok));
    crate::conforms(&f);
}
