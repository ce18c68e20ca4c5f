//! Numbering sync and verdicts against the simulator (issue: numbering sync and conflict
//! verification): the demo world, conflicts appearing and clearing, the cost of idle, full and
//! 100 000-row passes, `changedSince` and the invoice window, restarts, history and forecasts,
//! disabled checks and failed syncs, answers that must not be believed (issue 8: malformed lists,
//! endless or repeating paging, huge pages, pass deadlines) and a property test over damaged
//! answers. Every test that reaches Tripletex ends by checking every request the sync sent
//! against the real OpenAPI spec.

mod answers;
mod cost;
mod demo;
mod failures;
mod history;
mod incremental;
mod props;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tripletex_sim::LoggedRequest;
use tripletex_sync::checks::{CheckKind, CheckOutcome, Verdict};
use tripletex_sync::pass::PassReport;
use tripletex_sync::store::Store;
use tripletex_sync::tripletex::{ShopClient, Tripletex};
use tripletex_sync_fixture::daemon::Fixture;

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// One shop's store and client; keep `api` alive as long as the client.
pub struct Shop {
    pub store: Arc<Store>,
    pub api: Arc<Tripletex>,
    pub client: ShopClient,
    pub passes: u64,
}

impl Shop {
    pub fn open(f: &Fixture, name: &str) -> Self {
        let store = f.open_store();
        let api = f.api();
        let client = f.client(&api, name, &CancellationToken::new());
        Self {
            store,
            api,
            client,
            passes: 0,
        }
    }

    /// One recorded pass.
    pub async fn pass(&mut self, f: &Fixture) -> PassReport {
        self.passes += 1;
        f.pass(&self.store, &self.client, self.passes).await
    }
}

/// The outcome of `kind` in `report`; panics (showing the report) when the check did not run.
pub fn outcome(report: &PassReport, kind: CheckKind) -> &CheckOutcome {
    report
        .outcomes()
        .iter()
        .find(|o| o.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} outcome in {report:#?}"))
}

pub fn verdict(report: &PassReport, kind: CheckKind) -> Verdict {
    outcome(report, kind).verdict
}

pub fn customers(report: &PassReport) -> &CheckOutcome {
    outcome(report, CheckKind::CustomerNumbers)
}

pub fn invoices(report: &PassReport) -> &CheckOutcome {
    outcome(report, CheckKind::InvoiceNumbers)
}

/// The value of query parameter `name` in a logged request.
pub fn param<'a>(r: &'a LoggedRequest, name: &str) -> Option<&'a str> {
    r.query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `path?query` for assertion messages.
pub fn describe(requests: &[LoggedRequest]) -> String {
    requests
        .iter()
        .map(|r| {
            let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {} {} -> {}", r.method, r.path, q.join("&"), r.status)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks every request the simulator saw against the OpenAPI spec.
pub fn conforms(f: &Fixture) {
    tripletex_sync_fixture::spec::assert_conforms(&f.sim.request_log());
}

/// The Oslo date `n` days before (negative: after) `date`.
pub fn days_before(date: jiff::civil::Date, n: i64) -> jiff::civil::Date {
    date.checked_sub(jiff::Span::new().days(n)).unwrap()
}

/// Today in Oslo by the fixture's clock.
pub fn today(f: &Fixture) -> jiff::civil::Date {
    tripletex_sync::clock::oslo_date(f.now())
}
