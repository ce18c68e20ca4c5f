//! The daemon's in-memory picture of status.json: each configured shop's entry, already
//! serialised, in config order, in a [`Board`] that the status page renders from too.
//!
//! Invariants: a pass costs one shop's worth of work (one serialisation of that shop, from what
//! the pass recorded: no store read), whatever the number of shops; writing the file joins the
//! cached fragments and never reads the store; the file is the `StatusReport` shape, one shop per line; only a
//! reload rebuilds the whole view from the store, keeping each shop's chart trail. A shop new
//! to the view gets its checks' newest [`POINTS`] history points (never the whole history) from
//! [`seed_trails`], off the async workers and a few hundred shops per lock, since at 100 000 shops
//! reading them takes seconds (~130 µs a shop) that status.json must not wait for.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::checks::{PerKind, Verdict};
use crate::clock::SharedClock;
use crate::config::{Config, ShopConfig};
use crate::metrics::Pages;
use crate::notify::Backlog;
use crate::page::{Board, Document, POINTS, Tile};
use crate::pass::PassReport;
use crate::status::{SessionStatus, ShopStatus, View, stale_after, write_atomically};
use crate::store::{Store, StoreError};

/// The view, shared by the status writer (which updates it) and the status page (which reads
/// it); `None` until it could be read from the store.
pub(super) type SharedView = Arc<RwLock<Option<StatusView>>>;

/// The status page, rendered from `view` at the clock's time, staleness judged by the running
/// config's intervals (as `status` judges it).
pub(super) fn pages(view: SharedView, config: Arc<RwLock<Config>>, clock: SharedClock) -> Pages {
    Arc::new(move |uri| {
        let stale_after = stale_after(&config.read().expect("config lock"));
        let judged = View {
            now: clock.now(),
            stale_after,
            width: 0,
            problems_only: false,
        };
        let reply = {
            let view = view.read().expect("status view lock");
            crate::page::respond(view.as_ref().map(StatusView::board), &judged, uri)
        };
        // status.json is serialised after the lock is let go: the writer never waits for it.
        reply.map(crate::page::Reply::into_response)
    })
}

pub(super) struct StatusView {
    board: Board,
}

impl StatusView {
    /// Every configured shop as the store has it; `observe` sees each shop's status, and may
    /// complete it with what only the daemon knows (push). A shop `previous` (the view before a
    /// reload) has keeps its chart trail; the others' wait for [`seed_trails`].
    pub fn build(
        store: &Store,
        config: &Config,
        previous: Option<&StatusView>,
        mut observe: impl FnMut(&mut ShopStatus),
    ) -> Result<Self, StoreError> {
        let tiles = config
            .shops
            .iter()
            .map(|shop| {
                let mut status = ShopStatus::collect(Some(store), shop)?;
                observe(&mut status);
                let ranges = shop.checks.clone();
                Ok(match previous.and_then(|p| p.board.find(&shop.name)) {
                    Some(old) => Tile::carried(old, &status, ranges),
                    None => Tile::new(&status, ranges),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            board: Board::new(config.shard.map(|s| s.to_string()), tiles),
        })
    }

    /// What the status page renders from.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Re-reads `shop` (after a callback, a revoked session); false when nothing in its entry
    /// changed. A shop `config` no longer lists where the view has it is left to the rebuild
    /// that a reload brings.
    pub fn refresh(
        &mut self,
        store: &Store,
        config: &Config,
        shop: &str,
        observe: impl FnOnce(&mut ShopStatus),
    ) -> Result<bool, StoreError> {
        self.update(
            config,
            shop,
            |shop| ShopStatus::collect(Some(store), shop),
            observe,
        )
    }

    /// Takes in what `report`'s pass recorded, without reading it back; false when nothing in
    /// the shop's entry changed.
    pub fn recorded(
        &mut self,
        store: &Store,
        config: &Config,
        report: PassReport,
        observe: impl FnOnce(&mut ShopStatus),
    ) -> Result<bool, StoreError> {
        let PassReport {
            shop,
            session,
            results,
            ..
        } = report;
        self.update(
            config,
            &shop,
            |shop| ShopStatus::recorded(store, shop, session, results),
            observe,
        )
    }

    /// Replaces `shop`'s entry with what `status` makes of its configuration, once `observe`
    /// completed it; a shop the view and `config` do not list at the same place is left to the
    /// rebuild a reload brings. False when nothing in the entry changed.
    fn update(
        &mut self,
        config: &Config,
        shop: &str,
        status: impl FnOnce(&ShopConfig) -> Result<ShopStatus, StoreError>,
        observe: impl FnOnce(&mut ShopStatus),
    ) -> Result<bool, StoreError> {
        let Some(i) = self.board.position(shop) else {
            return Ok(false);
        };
        let Some(shop): Option<&ShopConfig> =
            config.shops.get(i).map(|s| &**s).filter(|s| s.name == shop)
        else {
            return Ok(false);
        };
        let mut status = status(shop)?;
        observe(&mut status);
        Ok(self.board.tile_mut(i).update(&status, shop.checks.clone()))
    }

    /// Shows `shop` with `session` in place of its session, leaving the rest of its entry as it
    /// is, without reading the store (a stop revokes every shop's session at once); false when
    /// nothing in its entry changed.
    pub fn set_session(
        &mut self,
        config: &Config,
        shop: &str,
        session: SessionStatus,
        observe: impl FnOnce(&mut ShopStatus),
    ) -> Result<bool, StoreError> {
        let Some(mut status) = self.board.find(shop).map(Tile::status) else {
            return Ok(false);
        };
        status.session = session;
        self.update(config, shop, |_| Ok(status), observe)
    }

    /// The file as of `generated_at`, with the outbox's `notify` block; while the store fails
    /// (`failing`: why, and since when), every enabled check shows `error` with that reason
    /// instead of its last recorded verdict (and the page says so too).
    pub fn snapshot(
        &mut self,
        generated_at: Timestamp,
        failing: Option<(&str, Timestamp)>,
        notify: Option<Backlog>,
    ) -> Document {
        self.board
            .set_failing(failing.map(|(e, since)| (e.to_owned(), since)));
        self.board.set_notify(notify);
        self.board.document(generated_at)
    }

    /// "3 shops: 1 ok, 0 warn, 1 conflict, 1 error" (each enabled shop counted by its worst
    /// check), for systemd's STATUS= line.
    pub fn summary_line(&self) -> String {
        let mut counts: HashMap<Verdict, usize> = HashMap::new();
        for worst in self.board.tiles().iter().filter_map(|t| t.glance().worst()) {
            *counts.entry(worst).or_default() += 1;
        }
        let part = |v: Verdict| format!("{} {}", counts.get(&v).copied().unwrap_or(0), v.as_str());
        format!(
            "{} shops: {}, {}, {}, {}",
            self.board.tiles().len(),
            part(Verdict::Ok),
            part(Verdict::Warn),
            part(Verdict::Conflict),
            part(Verdict::Error)
        )
    }
}

/// Shops whose trails are read in per hold of the view's lock (~30 ms of reads at most).
const SEED_CHUNK: usize = 256;

/// Reads the newest stored history points into every trail of the view that lacks them, until
/// done or `cancel`; the task must be awaited before the store may close.
pub(super) fn seed_trails(
    view: SharedView,
    store: Arc<Store>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let names = match &*view.read().expect("status view lock") {
            Some(v) => v.board.unseeded(),
            None => return,
        };
        for chunk in names.chunks(SEED_CHUNK) {
            if cancel.is_cancelled() {
                return;
            }
            let read: Result<Vec<_>, StoreError> = chunk
                .iter()
                .map(|name| {
                    let history =
                        PerKind::try_from_fn(|kind| store.recent_history(name, kind, POINTS))?;
                    Ok((name, history))
                })
                .collect();
            // A store that fails now fails the passes too, which say so; the charts wait.
            let Ok(read) = read else { return };
            let mut view = view.write().expect("status view lock");
            let Some(view) = view.as_mut() else { return };
            for (name, history) in read {
                if let Some(i) = view.board.position(name) {
                    view.board.tile_mut(i).seed(history);
                }
            }
        }
    })
}

/// Replaces `STATE_DIR/status.json` with `document` (blocking: file I/O and fsync).
pub(super) fn write_file(document: &Document, state_dir: &Path) -> std::io::Result<()> {
    write_atomically(state_dir, |out| document.write_to(out))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::checks::{self, CheckKind};
    use crate::status::StatusReport;
    use crate::store::{ResultRecord, Role};

    const MAIN: &str = r#"
state_dir = "state"
[tripletex]
base_url = "https://tripletex.no/v2"
consumer_token_file = "consumer-token"
session_valid_days = 7
renew_before = "1d"
request_timeout = "30s"
"#;

    /// Two shops, one of them with a check turned off.
    fn config(dir: &Path) -> Config {
        std::fs::create_dir_all(dir.join("shops.d")).unwrap();
        std::fs::write(dir.join("config.toml"), MAIN).unwrap();
        for name in ["consumer-token", "a.token", "b.token"] {
            std::fs::write(dir.join(name), "secret").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        std::fs::write(
            dir.join("shops.d/a.toml"),
            "employee_token_file = \"../a.token\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("shops.d/b.toml"),
            "employee_token_file = \"../b.token\"\n[invoice_numbers]\nenabled = false\n",
        )
        .unwrap();
        Config::load(&dir.join("config.toml")).unwrap()
    }

    #[tokio::test]
    async fn the_file_is_the_status_report_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let store = Store::open(&config.state_dir, Role::OneShot).unwrap();
        let at: Timestamp = "2026-03-10T11:00:00Z".parse().unwrap();
        let mut view = StatusView::build(&store, &config, None, |_| {}).unwrap();

        // A pass of `a` is recorded: only its entry changes, and the file says what the store does.
        let mut batch = store.batch();
        for kind in CheckKind::ALL {
            let outcome = checks::could_not_run(kind, "Tripletex is down");
            batch.put_result("a", kind, &ResultRecord::next(None, outcome, at));
        }
        store.commit(batch).await.unwrap();
        assert!(view.refresh(&store, &config, "a", |_| {}).unwrap());
        assert!(!view.refresh(&store, &config, "b", |_| {}).unwrap());
        assert!(
            !view
                .refresh(&store, &config, "not-configured", |_| {})
                .unwrap()
        );

        write_file(&view.snapshot(at, None, None), store.state_dir()).unwrap();
        let written = StatusReport::read(store.state_dir()).unwrap();
        assert_eq!(
            written,
            StatusReport::collect(Some(&store), &config, at).unwrap()
        );
        assert_eq!(
            view.summary_line(),
            "2 shops: 0 ok, 0 warn, 0 conflict, 1 error"
        );
    }

    #[tokio::test]
    async fn new_trails_read_the_newest_stored_points_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let store = Arc::new(Store::open(&config.state_dir, Role::OneShot).unwrap());
        let at: Timestamp = "2026-03-10T11:00:00Z".parse().unwrap();
        let kind = CheckKind::ALL[0];
        let points: Vec<_> = (0..(POINTS as i64 + 5))
            .map(|day| checks::HistoryPoint {
                at: at + jiff::SignedDuration::from_hours(24 * day),
                shop_high: Some(100 + u32::try_from(day).unwrap()),
            })
            .collect();
        let mut batch = store.batch();
        batch.put_history("a", kind, &points);
        store.commit(batch).await.unwrap();
        let view = StatusView::build(&store, &config, None, |_| {}).unwrap();
        let shared: SharedView = Arc::new(RwLock::new(Some(view)));
        seed_trails(shared.clone(), store.clone(), CancellationToken::new())
            .await
            .unwrap();
        let view = shared.read().unwrap();
        let board = view.as_ref().unwrap().board();
        let points = board.find("a").unwrap().trail().points(kind);
        assert_eq!(points.len(), POINTS);
        assert_eq!(
            points[POINTS - 1].shop_high(),
            Some(100 + POINTS as u32 + 4)
        );
        assert_eq!(
            points[0].shop_high(),
            Some(105),
            "the newest {POINTS} stored"
        );
        assert!(board.unseeded().is_empty());
    }

    #[test]
    fn an_empty_view_is_a_status_report_too() {
        let dir = tempfile::tempdir().unwrap();
        let at: Timestamp = "2026-03-10T11:00:00Z".parse().unwrap();
        let empty = Document {
            generated_at: at,
            ..Default::default()
        };
        write_file(&empty, dir.path()).unwrap();
        let read = StatusReport::read(dir.path()).unwrap();
        assert_eq!(read.generated_at, at);
        assert!(read.shops.is_empty());
    }
}
