//! The delivery task against a scripted platform, in paused time: order per shop, retries with
//! the same id, `Retry-After`, refusals, `max_age`, and stopping.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::clock::Clock;
use crate::config::Config;
use crate::notify::{Queueing, queue};
use crate::store::Role;

const SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Wall time that moves with tokio's (paused) clock.
struct TokioClock {
    start: Timestamp,
    at: Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.start + crate::clock::span(self.at.elapsed())
    }
}

/// What the scripted platform answers the `n`th attempt (from 0) of a message.
type Script = Box<dyn Fn(&Message, usize) -> Answer + Send + Sync>;

struct Platform {
    script: Script,
    /// How long an answer takes: a moment, so attempts of several shops overlap.
    delay: Duration,
    /// Every attempt: when, the id, the shop.
    attempts: Mutex<Vec<(Instant, String, String)>>,
}

impl Transport for Platform {
    fn send(&self, _to: &Destination, message: &Message) -> impl Future<Output = Answer> + Send {
        let mut attempts = self.attempts.lock().unwrap();
        let n = attempts
            .iter()
            .filter(|(_, id, _)| *id == message.id)
            .count();
        let shop = message.data["shop"].as_str().unwrap_or_default().to_owned();
        attempts.push((Instant::now(), message.id.clone(), shop));
        let answer = (self.script)(message, n);
        let delay = self.delay;
        async move {
            tokio::time::sleep(delay).await;
            answer
        }
    }
}

fn ok() -> Answer {
    Answer::Delivered {
        status: StatusCode::NO_CONTENT,
        took: Duration::ZERO,
    }
}

fn refused(status: u16, retry_after: Option<u64>) -> Answer {
    Answer::Refused {
        status: StatusCode::from_u16(status).unwrap(),
        retry_after: retry_after.map(Duration::from_secs),
        took: Duration::ZERO,
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    config: NotifyConfig,
    platform: Arc<Platform>,
    backlog: watch::Receiver<Option<Backlog>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    clock: Arc<TokioClock>,
}

impl Rig {
    /// A store with `messages` (shop, n) queued, and the task delivering them to `script`.
    async fn start(messages: &[(&str, u32)], script: Script) -> Rig {
        Self::answering_after(Duration::from_millis(10), messages, script).await
    }

    async fn answering_after(delay: Duration, messages: &[(&str, u32)], script: Script) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let private = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        private("consumer", "consumer-token");
        private("notify-secret", SECRET);
        private(
            "config.toml",
            "state_dir = \"state\"\n[tripletex]\nconsumer_token_file = \"consumer\"\n\
             [notify]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"notify-secret\"\n\
             max_age = \"1d\"\nretry_min = \"5s\"\nretry_max = \"1h\"\n",
        );
        std::fs::create_dir(dir.path().join("shops.d")).unwrap();
        let config = Config::load(&dir.path().join("config.toml")).unwrap();
        let config = config.notify.unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state"), Role::Daemon).unwrap());
        let clock = Arc::new(TokioClock {
            start: "2026-12-06T06:00:00Z".parse().unwrap(),
            at: Instant::now(),
        });
        let rig_clock: SharedClock = clock.clone();
        let mut batch = store.batch();
        for (shop, n) in messages {
            let message = Message::new(
                super::super::Kind::KeyAccepted,
                rig_clock.now(),
                json!({"shop": shop, "n": n}),
            );
            let queueing = Queueing {
                max_pending: 100_000,
            };
            queue(&store, &mut batch, message, queueing).unwrap();
        }
        store.commit(batch).await.unwrap();
        let platform = Arc::new(Platform {
            script,
            delay,
            attempts: Mutex::new(Vec::new()),
        });
        let destination = Arc::new(Destination {
            signer: config.load_signer(None).unwrap(),
            config: config.clone(),
        });
        let (report, backlog) = watch::channel(None);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            Delivery {
                store: store.clone(),
                destination: watch::channel(Some(destination)).1,
                transport: platform.clone(),
                clock: rig_clock,
                metrics: Arc::new(Metrics::new()),
                report,
            },
            cancel.clone(),
        ));
        Rig {
            _dir: dir,
            store,
            config,
            platform,
            backlog,
            cancel,
            task,
            clock,
        }
    }

    /// Lets the task run until the outbox is empty (paused time jumps to each wake-up).
    async fn until_empty(&self) {
        while self.store.outbox_pending_count() > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn attempts(&self) -> Vec<(Instant, String, String)> {
        self.platform.attempts.lock().unwrap().clone()
    }

    /// The ids delivered per shop, in delivery order (an id's last attempt is its delivery).
    fn delivered_ids(&self) -> HashMap<String, Vec<String>> {
        let mut per_shop: HashMap<String, Vec<String>> = HashMap::new();
        for (_, id, shop) in self.attempts() {
            let ids = per_shop.entry(shop).or_default();
            ids.retain(|i| *i != id);
            ids.push(id);
        }
        per_shop
    }

    async fn stop(mut self) -> Self {
        self.cancel.cancel();
        (&mut self.task).await.unwrap();
        self
    }
}

/// The order the messages were queued in, per shop.
fn queued_order(store: &Store) -> HashMap<String, Vec<String>> {
    let mut per_shop: HashMap<String, Vec<String>> = HashMap::new();
    for p in store.outbox_pending() {
        let p = p.unwrap();
        per_shop
            .entry(p.record.group)
            .or_default()
            .push(p.record.id);
    }
    per_shop
}

#[tokio::test(start_paused = true)]
async fn a_shops_messages_arrive_in_order_and_a_failing_one_is_retried_with_its_id() {
    // acme's second message fails twice (500, then no answer); bike's all go at once.
    let script: Script = Box::new(
        |m, n| match (m.data["shop"].as_str(), m.data["n"].as_u64()) {
            (Some("acme"), Some(1)) if n == 0 => refused(500, None),
            (Some("acme"), Some(1)) if n == 1 => Answer::Failed {
                problem: "connection refused".into(),
            },
            _ => ok(),
        },
    );
    let messages = [
        ("acme", 0),
        ("bike", 0),
        ("acme", 1),
        ("bike", 1),
        ("acme", 2),
    ];
    let rig = Rig::start(&messages, script).await;
    let expected = queued_order(&rig.store);
    rig.until_empty().await;
    let rig = rig.stop().await;
    assert_eq!(rig.delivered_ids(), expected);
    let attempts = rig.attempts();
    assert_eq!(attempts.len(), 7, "{attempts:?}");
    // The failing message was sent three times under one id, and nothing of acme's overtook
    // it: acme's third message went only after its second was delivered.
    let second = &expected["acme"][1];
    let tries: Vec<Instant> = attempts
        .iter()
        .filter(|(_, id, _)| id == second)
        .map(|(at, ..)| *at)
        .collect();
    assert_eq!(tries.len(), 3);
    let third_at = attempts
        .iter()
        .find(|(_, id, _)| *id == expected["acme"][2])
        .unwrap()
        .0;
    assert!(third_at >= tries[2]);
    // Backoff: the second try came within retry_min, the third within twice that.
    assert!(tries[1] - tries[0] <= rig.config.retry_min + Duration::from_millis(20));
    assert!(tries[2] - tries[1] <= rig.config.retry_min * 2 + Duration::from_millis(20));
    let backlog = rig.backlog.borrow().clone().unwrap();
    assert_eq!(
        (backlog.pending, backlog.delivered, backlog.dead),
        (0, 5, 0)
    );
    assert!(backlog.last_error.unwrap().contains("connection refused"));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_pauses_every_shop() {
    let script: Script = Box::new(|m, n| match m.data["shop"].as_str() {
        Some("acme") if n == 0 => refused(429, Some(120)),
        _ => ok(),
    });
    let rig = Rig::start(&[("acme", 0), ("bike", 0), ("acme", 1)], script).await;
    rig.until_empty().await;
    let rig = rig.stop().await;
    let attempts = rig.attempts();
    let first = attempts[0].0;
    let retried = attempts
        .iter()
        .filter(|(_, _, s)| s == "acme")
        .nth(1)
        .unwrap()
        .0;
    assert!(retried - first >= Duration::from_secs(120), "{attempts:?}");
    assert!(retried - first < Duration::from_secs(121));
}

#[tokio::test(start_paused = true)]
async fn a_message_refused_again_and_again_dies_and_its_shop_goes_on() {
    let script: Script = Box::new(|m, _| match m.data["n"].as_u64() {
        Some(0) => refused(422, None),
        _ => ok(),
    });
    let rig = Rig::start(&[("acme", 0), ("acme", 1)], script).await;
    rig.until_empty().await;
    let rig = rig.stop().await;
    let attempts = rig.attempts();
    assert_eq!(attempts.len(), REFUSALS as usize + 1, "{attempts:?}");
    assert_eq!(rig.store.outbox_dead_kept(), 1);
    let dead = rig.store.outbox_dead(1).unwrap();
    assert!(
        dead[0].1.reason.contains("refused it 5 times (last: 422"),
        "{dead:?}"
    );
    let backlog = rig.backlog.borrow().clone().unwrap();
    assert_eq!((backlog.delivered, backlog.dead), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_platform_down_past_max_age_leaves_every_message_dead_and_counted() {
    let script: Script = Box::new(|_, _| Answer::Failed {
        problem: "connection refused".into(),
    });
    let messages: Vec<(&str, u32)> = (0..50)
        .map(|n| (["acme", "bike"][n as usize % 2], n))
        .collect();
    let rig = Rig::start(&messages, script).await;
    rig.until_empty().await;
    let rig = rig.stop().await;
    let waited = rig.clock.at.elapsed();
    assert!(waited >= rig.config.max_age, "{waited:?}");
    assert!(waited <= rig.config.max_age + rig.config.retry_max + Duration::from_secs(61));
    assert_eq!(rig.store.outbox_dead_kept(), 50);
    let dead = rig.store.outbox_dead(1).unwrap();
    assert!(
        dead[0].1.reason.contains("notify.max_age (1day)"),
        "{dead:?}"
    );
    // Backed off: a day of a platform that is down costs a few dozen attempts, not thousands.
    let attempts = rig.attempts().len();
    assert!(attempts < 200, "{attempts}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_abandons_a_stalled_attempt_within_the_grace_and_keeps_the_message() {
    // A platform that takes an hour to answer: the attempt is in flight when the stop comes.
    let hour = Duration::from_secs(3600);
    let rig = Rig::answering_after(hour, &[("acme", 0)], Box::new(|_, _| ok())).await;
    while rig.attempts().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let rig = rig.stop().await;
    assert!(started.elapsed() <= STOP_GRACE + Duration::from_millis(1));
    assert_eq!(
        rig.store.outbox_pending_count(),
        1,
        "nothing undelivered is lost"
    );
}

#[tokio::test]
async fn a_full_outbox_merges_a_shops_older_verdicts_into_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::Daemon).unwrap();
    let full = Queueing { max_pending: 3 };
    let now: Timestamp = "2026-12-06T06:00:00Z".parse().unwrap();
    let outcome = |verdict| crate::checks::CheckOutcome {
        kind: crate::checks::CheckKind::CustomerNumbers,
        verdict,
        summary: String::new(),
        fix: None,
        evidence: Default::default(),
    };
    use crate::checks::Verdict::{Conflict, Ok as Fine, Unknown};
    let mut batch = store.batch();
    queue(
        &store,
        &mut batch,
        Message::verdict("bike", &outcome(Fine), Unknown, now, now),
        full,
    )
    .unwrap();
    store.commit(batch).await.unwrap();
    for (verdict, was) in [
        (Fine, Unknown),
        (Conflict, Fine),
        (Fine, Conflict),
        (Conflict, Fine),
    ] {
        let mut batch = store.batch();
        let message = Message::verdict("acme", &outcome(verdict), was, now, now);
        queue(&store, &mut batch, message, full).unwrap();
        store.commit(batch).await.unwrap();
    }
    let pending: Vec<Pending> = store.outbox_pending().map(Result::unwrap).collect();
    assert_eq!(pending.len(), 3);
    assert_eq!(pending[0].record.group, "bike");
    // acme's third (ok, was conflict) took its second's place; the fourth its third's.
    let newest = &pending[2].record.data;
    assert_eq!(newest["verdict"], "conflict");
    assert_eq!(newest["was"], "ok", "the verdict before the merged ones");
    assert_eq!(newest["coalesced"], 2);
    assert_eq!(
        store.outbox_dead_kept(),
        0,
        "nothing dropped while merging was possible"
    );
    // A message that merges with nothing makes room by giving up the oldest.
    let mut batch = store.batch();
    queue(&store, &mut batch, Message::key_accepted("cafe", now), full).unwrap();
    store.commit(batch).await.unwrap();
    assert_eq!(store.outbox_dead_kept(), 1);
    assert_eq!(store.outbox_dead(1).unwrap()[0].1.message.group, "bike");
}
