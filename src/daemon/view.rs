//! The daemon's in-memory picture of status.json: each configured shop's entry, already
//! serialised, in config order.
//!
//! Invariants: a pass costs one shop's worth of work (three store reads and one serialisation of
//! that shop), whatever the number of shops; writing the file joins the cached fragments and
//! never reads the store; the file is the `StatusReport` shape, one shop per line; only a
//! reload rebuilds the whole view from the store.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;

use crate::checks::Verdict;
use crate::config::Config;
use crate::notify::Backlog;
use crate::status::{ShopStatus, write_atomically};
use crate::store::{Store, StoreError};

pub(super) struct StatusView {
    /// "i/n" of this instance (config `shard`), named in the file like `StatusReport` does.
    shard: Option<String>,
    shops: Vec<Entry>,
    /// Shop name → position in `shops` (and in the config it was built from).
    index: HashMap<String, usize>,
}

struct Entry {
    /// The shop's worst verdict, or `None` when the shop is disabled (not counted).
    worst: Option<Verdict>,
    json: Arc<str>,
}

/// What one write needs, detached from the view so the write can run off the async workers.
pub(super) struct Snapshot {
    generated_at: Timestamp,
    shard: Option<String>,
    store_error: Option<String>,
    /// The outbox (`[notify]`), while notify is on or messages remain.
    notify: Option<Backlog>,
    shops: Vec<Arc<str>>,
}

impl StatusView {
    /// Every configured shop as the store has it; `observe` sees each shop's status, and may
    /// complete it with what only the daemon knows (push).
    pub fn build(
        store: &Store,
        config: &Config,
        mut observe: impl FnMut(&mut ShopStatus),
    ) -> Result<Self, StoreError> {
        let shops = config
            .shops
            .iter()
            .map(|shop| {
                ShopStatus::collect(Some(store), shop).map(|mut s| {
                    observe(&mut s);
                    Entry::of(&s)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let index = config
            .shops
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Self {
            shard: config.shard.map(|s| s.to_string()),
            shops,
            index,
        })
    }

    /// Re-reads `shop` after its pass was recorded; false when nothing in its entry changed.
    /// A shop `config` no longer lists where the view has it is left to the rebuild that a
    /// reload brings.
    pub fn refresh(
        &mut self,
        store: &Store,
        config: &Config,
        shop: &str,
        observe: impl FnOnce(&mut ShopStatus),
    ) -> Result<bool, StoreError> {
        let Some(&i) = self.index.get(shop) else {
            return Ok(false);
        };
        let Some(shop) = config.shops.get(i).filter(|s| s.name == shop) else {
            return Ok(false);
        };
        let mut status = ShopStatus::collect(Some(store), shop)?;
        observe(&mut status);
        let entry = Entry::of(&status);
        let changed = entry.json != self.shops[i].json;
        self.shops[i] = entry;
        Ok(changed)
    }

    /// The file as of `generated_at`; while the store fails (`failing`: why, and since when),
    /// every enabled check shows `error` with that reason instead of its last recorded verdict.
    pub fn snapshot(
        &self,
        generated_at: Timestamp,
        failing: Option<(&str, Timestamp)>,
    ) -> Snapshot {
        let shops = match failing {
            None => self.shops.iter().map(|e| e.json.clone()).collect(),
            // Re-serialised only while failing, which is rare and rate-limited like every write.
            Some((error, since)) => self
                .shops
                .iter()
                .map(|e| {
                    let mut status: ShopStatus =
                        serde_json::from_str(&e.json).expect("the view holds status JSON");
                    status.store_failing(error, generated_at, since);
                    Entry::of(&status).json
                })
                .collect(),
        };
        Snapshot {
            generated_at,
            shard: self.shard.clone(),
            store_error: failing.map(|(error, _)| error.to_owned()),
            notify: None,
            shops,
        }
    }

    /// "3 shops: 1 ok, 0 warn, 1 conflict, 1 error" (each enabled shop counted by its worst
    /// check), for systemd's STATUS= line.
    pub fn summary_line(&self) -> String {
        let mut counts: HashMap<Verdict, usize> = HashMap::new();
        for worst in self.shops.iter().filter_map(|e| e.worst) {
            *counts.entry(worst).or_default() += 1;
        }
        let part = |v: Verdict| format!("{} {}", counts.get(&v).copied().unwrap_or(0), v.as_str());
        format!(
            "{} shops: {}, {}, {}, {}",
            self.shops.len(),
            part(Verdict::Ok),
            part(Verdict::Warn),
            part(Verdict::Conflict),
            part(Verdict::Error)
        )
    }
}

impl Entry {
    fn of(status: &ShopStatus) -> Self {
        Self {
            worst: status.enabled.then(|| status.worst()),
            json: serde_json::to_string(status)
                .expect("status serializes")
                .into(),
        }
    }
}

impl Snapshot {
    /// The same, with the outbox's `notify` block.
    pub fn with_notify(self, notify: Option<Backlog>) -> Self {
        Self { notify, ..self }
    }

    /// Replaces `STATE_DIR/status.json` (blocking: file I/O and fsync).
    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        write_atomically(state_dir, |out| {
            // The same document `StatusReport` serialises, one shop per line.
            let head = serde_json::to_string(&self.generated_at).map_err(std::io::Error::other)?;
            write!(out, "{{\"generated_at\":{head},")?;
            if let Some(shard) = &self.shard {
                let shard = serde_json::to_string(shard).map_err(std::io::Error::other)?;
                write!(out, "\"shard\":{shard},")?;
            }
            if let Some(error) = &self.store_error {
                let error = serde_json::to_string(error).map_err(std::io::Error::other)?;
                write!(out, "\"store_error\":{error},")?;
            }
            if let Some(notify) = &self.notify {
                let notify = serde_json::to_string(notify).map_err(std::io::Error::other)?;
                write!(out, "\"notify\":{notify},")?;
            }
            out.write_all(b"\"shops\":[")?;
            for (i, shop) in self.shops.iter().enumerate() {
                out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
                out.write_all(shop.as_bytes())?;
            }
            out.write_all(b"\n]}\n")
        })
    }
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
        let mut view = StatusView::build(&store, &config, |_| {}).unwrap();

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

        view.snapshot(at, None).write(store.state_dir()).unwrap();
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

    #[test]
    fn an_empty_view_is_a_status_report_too() {
        let dir = tempfile::tempdir().unwrap();
        let at: Timestamp = "2026-03-10T11:00:00Z".parse().unwrap();
        let empty = Snapshot {
            generated_at: at,
            shard: None,
            store_error: None,
            notify: None,
            shops: Vec::new(),
        };
        empty.write(dir.path()).unwrap();
        let read = StatusReport::read(dir.path()).unwrap();
        assert_eq!(read.generated_at, at);
        assert!(read.shops.is_empty());
    }
}
