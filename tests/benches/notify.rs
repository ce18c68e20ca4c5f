//! `cargo bench --bench notify [-- --messages 10000]`: the outbox's burst, as a 10 000-shop
//! first start makes it (one `check.verdict` per shop). Prints figures; asserts nothing.
//!
//! 1. Queues N messages (one per shop, committed 1000 a batch) into a fresh store.
//! 2. The platform is down (a loopback receiver answering 503) for 3 s: the delivery task keeps
//!    all N pending; this process's RSS before and after says whether memory grows with them.
//! 3. The platform answers 204: the time until the outbox is empty gives the delivery rate.
//!
//! Everything runs in this process (the store, the delivery task, a counting receiver that keeps
//! no bodies); RSS is this process's `VmRSS`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tripletex_sync::checks::{CheckKind, CheckOutcome, Verdict};
use tripletex_sync::clock::SystemClock;
use tripletex_sync::config::Config;
use tripletex_sync::metrics::Metrics;
use tripletex_sync::notify::{self, Delivery, Destination, Message, Queueing};
use tripletex_sync::store::{Role, Store};
use tripletex_sync_fixture::daemon::write_private;
use tripletex_sync_fixture::platform;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages = args
        .iter()
        .position(|a| a == "--messages")
        .and_then(|i| args.get(i + 1))
        .map_or(10_000, |n| n.parse().expect("--messages N"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(burst(messages));
}

/// This process's resident memory, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A receiver that answers with `status` and only counts what it took.
async fn receiver(status: Arc<AtomicU16>, taken: Arc<AtomicU64>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (status, taken) = (status.clone(), taken.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (status, taken) = (status.clone(), taken.clone());
                    async move {
                        let _ = request.into_body().collect().await?;
                        let code = status.load(Ordering::Relaxed);
                        if code == 204 {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::from_u16(code).expect("status");
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn burst(messages: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Arc::new(AtomicU16::new(503));
    let taken = Arc::new(AtomicU64::new(0));
    let addr = receiver(status.clone(), taken.clone()).await;
    write_private(&dir.path().join("consumer"), "consumer");
    write_private(&dir.path().join("notify-secret"), platform::SECRET);
    std::fs::create_dir(dir.path().join("shops.d")).expect("shops.d");
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = \"state\"\n[tripletex]\nconsumer_token_file = \"consumer\"\n\
             [notify]\nurl = \"http://{addr}/hook\"\nsecret_file = \"notify-secret\"\n\
             retry_min = \"1s\"\nretry_max = \"1s\"\n"
        ),
    )
    .expect("config");
    let config = Config::load(&config_path)
        .expect("config")
        .notify
        .expect("[notify]");
    let store = Arc::new(Store::open(&dir.path().join("state"), Role::Daemon).expect("store"));

    let queueing = Queueing {
        max_pending: config.max_pending,
    };
    let now = jiff::Timestamp::now();
    let started = Instant::now();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(1000) {
        let mut batch = store.batch();
        for n in chunk {
            let outcome = CheckOutcome {
                kind: CheckKind::CustomerNumbers,
                verdict: Verdict::Ok,
                summary: format!("ok: shop's run 1–{n}, {} numbers left", 99_999 - n),
                fix: None,
                evidence: Default::default(),
            };
            let message =
                Message::verdict(&format!("shop{n:05}"), &outcome, Verdict::Unknown, now, now);
            notify::queue(&store, &mut batch, message, queueing).expect("queue");
        }
        store.commit(batch).await.expect("commit");
    }
    let queued = started.elapsed();
    let rss_queued = rss_kib();

    let destination = Arc::new(Destination {
        signer: config.load_signer(None).expect("secret"),
        config: config.clone(),
    });
    let (_keep, destinations) = watch::channel(Some(destination));
    let (report, _backlog) = watch::channel(None);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(notify::run(
        Delivery {
            store: store.clone(),
            destination: destinations,
            transport: Arc::new(notify::Http(notify::client().expect("client"))),
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::new()),
            report,
        },
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_down = rss_kib();
    let pending_down = store.outbox_pending_count();

    status.store(204, Ordering::Relaxed);
    let up = Instant::now();
    while store.outbox_pending_count() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = up.elapsed();
    let rss_after = rss_kib();
    cancel.cancel();
    task.await.expect("delivery task");
    let db = du(&dir.path().join("state"));
    println!(
        "{messages} messages: queued in {:.2} s ({:.0}/s); platform down 3 s: {pending_down} pending, \
         RSS {:.1} MiB after queueing, {:.1} MiB while down; platform up: all delivered in {:.2} s \
         ({:.0} messages/s, {} taken), RSS {:.1} MiB; state_dir {:.1} MiB",
        queued.as_secs_f64(),
        f64::from(messages) / queued.as_secs_f64(),
        rss_queued as f64 / 1024.0,
        rss_down as f64 / 1024.0,
        drained.as_secs_f64(),
        f64::from(messages) / drained.as_secs_f64(),
        taken.load(Ordering::Relaxed),
        rss_after as f64 / 1024.0,
        db as f64 / (1024.0 * 1024.0),
    );
}

/// Bytes of the files under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => du(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}
