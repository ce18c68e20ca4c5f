//! Every message the code can build validates against contrib/notify/message.schema.json, and
//! the schema itself tells the types apart (a `check.verdict` sample, what it must refuse).

use serde_json::{Value, json};

use super::{Kind, Message};
use crate::checks::{CheckKind, CheckOutcome, Verdict};

fn schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/notify/message.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn problems(validator: &jsonschema::Validator, body: &Value) -> Vec<String> {
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

#[test]
fn every_message_the_code_builds_fits_the_schema() {
    let validator = schema();
    let now = jiff::Timestamp::now();
    let conflict = CheckOutcome {
        kind: CheckKind::CustomerNumbers,
        verdict: Verdict::Conflict,
        summary: "conflict: Tripletex's customer 6001 is inside the shop's range".into(),
        fix: Some("set Customer › Settings › customer number to 100000".into()),
        evidence: Default::default(),
    };
    let first_ok = CheckOutcome {
        verdict: Verdict::Ok,
        fix: None,
        ..conflict.clone()
    };
    // One message of every kind: this match stops compiling when a kind is added, until its
    // message is built here too.
    let of = |kind| match kind {
        Kind::Test => vec![Message::test("web1.example", now)],
        Kind::CheckVerdict => vec![
            Message::verdict("acme", &conflict, Verdict::Ok, now, now),
            Message::verdict("acme", &first_ok, Verdict::Unknown, now, now),
        ],
        Kind::KeyRejected => vec![Message::key_rejected("acme", "make a new key", now)],
        Kind::KeyAccepted => vec![Message::key_accepted("acme", now)],
        Kind::ConsumerTokenExpiring => vec![Message::consumer_token_expiring(now, 12, now)],
        Kind::ConsumerTokenRejected => vec![Message::consumer_token_rejected("renew it", now)],
    };
    for kind in [
        Kind::Test,
        Kind::CheckVerdict,
        Kind::KeyRejected,
        Kind::KeyAccepted,
        Kind::ConsumerTokenExpiring,
        Kind::ConsumerTokenRejected,
    ] {
        for message in of(kind) {
            assert_eq!(message.kind, kind.as_str());
            let body: Value = serde_json::from_str(&message.body()).unwrap();
            assert_eq!(problems(&validator, &body), Vec::<String>::new(), "{body}");
        }
    }
    // A coalesced verdict says how many it stands for.
    let mut merged: Value =
        serde_json::from_str(&Message::verdict("acme", &conflict, Verdict::Ok, now, now).body())
            .unwrap();
    merged["data"]["coalesced"] = json!(3);
    assert_eq!(problems(&validator, &merged), Vec::<String>::new());
}

#[test]
fn the_schema_knows_check_verdict_and_refuses_what_fits_no_type() {
    let validator = schema();
    let verdict = json!({
        "type": "check.verdict",
        "timestamp": "2026-12-06T06:17:42Z",
        "data": {
            "shop": "acme", "check": "customer_numbers", "verdict": "conflict", "was": "ok",
            "summary": "Tripletex's series 10000–10004 is inside the shop's range",
            "fix": "raise tripletex_start above 10004", "since": "2026-12-06T06:00:00Z",
            "checked_at": "2026-12-06T06:17:40Z"
        }
    });
    assert_eq!(problems(&validator, &verdict), Vec::<String>::new());
    let mut first = verdict.clone();
    first["data"]["was"] = Value::Null;
    first["data"]["fix"] = Value::Null;
    assert!(validator.is_valid(&first));
    let bad = |edit: fn(&mut Value)| {
        let mut body = verdict.clone();
        edit(&mut body);
        body
    };
    for wrong in [
        bad(|b| b["type"] = json!("check.verdicts")),
        bad(|b| b["timestamp"] = json!("yesterday")),
        bad(|b| b["data"]["verdict"] = json!("fine")),
        bad(|b| drop(b["data"].as_object_mut().unwrap().remove("since"))),
        bad(|b| b["data"]["token"] = json!("x")),
        bad(|b| b["type"] = json!("test")),
        bad(|b| drop(b.as_object_mut().unwrap().remove("data"))),
    ] {
        assert!(!validator.is_valid(&wrong), "{wrong}");
    }
}
