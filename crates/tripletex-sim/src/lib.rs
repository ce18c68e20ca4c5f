//! A Tripletex API v2 simulator for tests, `demo` and the `sim` command: session tokens with
//! Oslo-midnight expiry, Basic auth, `>whoAmI`, customers and invoices with `fields`, `sorting`,
//! paging and `versionDigest`/`If-None-Match`, per-(consumer, employee) rate limiting,
//! injectable faults (statuses, delays, resets, broken JSON, mutated list answers, endless or
//! repeating paging, huge bodies), and webhooks (`/event`, `/event/subscription`, callbacks
//! delivered when a test changes a customer or an invoice through a [`Simulator`] method), over
//! real HTTP.
//!
//! Invariants: a [`Simulator`] is a cheap handle to one shared world (clones see the same data);
//! time-based decisions (token expiry, `changed`) use the injected clock, while rate-limit windows
//! and injected delays use real monotonic time; tokens, subscription secrets and callback bodies
//! are never logged (see `server.rs` and `delivery.rs`).
//!
//! This crate knows nothing of the daemon (`tripletex-sync`): it plays the other end of the wire,
//! so a test that passes against it tests the daemon's requests, not a shared misunderstanding.
//! The daemon's library never depends on it; its binary does only through the default-on `sim`
//! feature (for `demo` and `sim`), and its tests and benches as a dev-dependency.

mod answers;
mod api;
mod delivery;
mod error;
mod events;
mod faults;
mod fields;
mod ratelimit;
mod rawpath;
mod records;
mod scenario;
mod server;
mod session;
mod state;
mod subscription_draft;
mod subscriptions;
mod timeline;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;

pub use delivery::{Delivery, DeliveryOutcome};
pub use faults::{Fault, FaultKind, Mutation};
pub use scenario::{
    CompanySpec, CustomerSeries, EmployeeSpec, InvoiceSeries, RateLimitSpec, Scenario,
    ScenarioDate, ScenarioError,
};
pub use server::RunningSim;
pub use subscriptions::{SubscriptionInfo, SubscriptionStatus};
pub use timeline::ChangeSpec;

use oslo_clock::{SharedClock, oslo_date};
use ratelimit::RateLimiter;
use state::World;

/// The annotated demo world: three shops, one healthy, one with colliding customer numbers, one
/// with a revoked key.
pub const DEMO_SCENARIO: &str = include_str!("../../../config/sim/demo.toml");

/// What objects' `url` fields start with; not resolvable on purpose.
const URL_BASE: &str = "tripletex-sim.invalid/v2";

const DEFAULT_LIMIT: u32 = 100;
const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// How long before start-up seeded customers were last changed.
pub const SEEDED_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Decoded, without the query, e.g. `/v2/token/session/>whoAmI`; a session token in the path
    /// is replaced by `{token}`.
    pub path: String,
    /// Decoded query pairs in order; `consumerToken`/`employeeToken` values read `<redacted>`.
    pub query: Vec<(String, String)>,
    /// 0 when a `ConnectionReset` fault sent no response at all.
    pub status: u16,
    /// By the injected clock.
    pub at: Timestamp,
    /// `None` when the caller could not be identified (so it is not rate limited).
    pub rate_limit_remaining: Option<u32>,
    /// The company of the employee token the request used, when it is a known one.
    pub company_id: Option<i64>,
}

/// A handle to a simulated Tripletex.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    clock: SharedClock,
    world: Mutex<World>,
    /// Distinguishes request ids of simulators in one process.
    id_prefix: u32,
    requests: AtomicU64,
    deliveries: delivery::Dispatcher,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

impl Simulator {
    /// An empty world with the default rate limit of 100 requests per 10 s.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                world: Mutex::new(World::new(RateLimiter::new(DEFAULT_LIMIT, DEFAULT_PERIOD))),
                id_prefix: fastrand::u32(..),
                requests: AtomicU64::new(0),
                deliveries: delivery::Dispatcher::default(),
            }),
        }
    }

    /// Builds the world `scenario` describes; relative dates count back from today in Oslo. Its
    /// time-line plays from [`Simulator::start`].
    pub fn from_scenario(scenario: Scenario, clock: SharedClock) -> Self {
        let sim = Self::new(clock);
        let today = oslo_date(sim.now());
        if let Some(limit) = &scenario.rate_limit {
            sim.set_rate_limit(limit.requests, limit.period);
        }
        for token in &scenario.consumer_tokens {
            sim.add_consumer_token(token);
            let expires = scenario.consumer_token_expires.map(|d| d.resolve(today));
            sim.set_consumer_token_expiry(token, expires);
        }
        for company in &scenario.companies {
            sim.add_company(company.id, &company.name, company.integrations);
            for employee in &company.employees {
                sim.add_employee_token(&employee.token, company.id, employee.employee_id);
                if employee.revoked {
                    sim.revoke_employee_token(&employee.token);
                }
                for prefix in &employee.denied {
                    sim.deny_access(&employee.token, prefix);
                }
            }
            for series in &company.customers {
                sim.seed_customers(company.id, series.first, series.count, series.inactive);
            }
            for series in &company.invoices {
                let first_date = series.first_date.resolve(today);
                sim.add_invoices(
                    company.id,
                    series.first,
                    series.count,
                    first_date,
                    series.per_day,
                );
            }
            let changes = company.changes.iter().map(|c| (company.id, c.clone()));
            sim.lock().timeline.extend(changes);
        }
        sim
    }

    pub fn set_rate_limit(&self, requests: u32, period: Duration) {
        self.lock().limiter.configure(requests, period);
    }

    pub fn add_consumer_token(&self, token: &str) {
        self.lock().add_consumer(token);
    }

    /// When `token` expires, as `GET /token/consumer/byToken` says (`None`: never).
    pub fn set_consumer_token_expiry(&self, token: &str, expires: Option<Date>) {
        let mut world = self.lock();
        match expires {
            Some(date) => world.consumer_expiry.insert(token.to_owned(), date),
            None => world.consumer_expiry.remove(token),
        };
    }

    pub fn add_company(&self, company_id: i64, name: &str, integrations_enabled: bool) {
        self.lock()
            .add_company(company_id, name, integrations_enabled);
    }

    pub fn set_integrations_enabled(&self, company_id: i64, on: bool) {
        self.lock().company_mut(company_id).integrations_enabled = on;
    }

    pub fn add_employee_token(&self, token: &str, company_id: i64, employee_id: i64) {
        self.lock().add_employee(token, company_id, employee_id);
    }

    /// The token can no longer mint sessions, and its existing sessions stop working.
    pub fn revoke_employee_token(&self, token: &str) {
        if let Some(employee) = self.lock().employees.get_mut(token) {
            employee.revoked = true;
        }
    }

    /// Requests under `path_prefix` (relative to `/v2`, e.g. `/customer`) by sessions of this
    /// employee token get 403 code 9000.
    pub fn deny_access(&self, employee_token: &str, path_prefix: &str) {
        if let Some(employee) = self.lock().employees.get_mut(employee_token) {
            employee.denied.push(path_prefix.to_owned());
        }
    }

    /// Adds one customer changed now; returns its id.
    pub fn add_customer(&self, company_id: i64, number: u32, inactive: bool) -> i64 {
        let now = self.now();
        let mut world = self.lock();
        let id = world.next_id();
        world.company_mut(company_id).customers.insert(
            id,
            state::Customer {
                id,
                version: 0,
                number,
                inactive,
                changed: now,
            },
        );
        self.publish(world, company_id, events::CUSTOMER_CREATE, [id]);
        id
    }

    /// Bumps the customer's version and `changed`, like an edit in Tripletex.
    pub fn set_customer_inactive(&self, company_id: i64, id: i64, inactive: bool) {
        self.edit_customer(company_id, id, |customer| customer.inactive = inactive);
    }

    /// Renumbers the customer, like an edit in Tripletex.
    pub fn set_customer_number(&self, company_id: i64, id: i64, number: u32) {
        self.edit_customer(company_id, id, |customer| customer.number = number);
    }

    fn edit_customer(&self, company_id: i64, id: i64, edit: impl FnOnce(&mut state::Customer)) {
        let now = self.now();
        let mut world = self.lock();
        if let Some(customer) = world.company_mut(company_id).customers.get_mut(&id) {
            edit(customer);
            customer.version += 1;
            customer.changed = now;
            self.publish(world, company_id, events::CUSTOMER_UPDATE, [id]);
        }
    }

    pub fn remove_customer(&self, company_id: i64, id: i64) {
        let mut world = self.lock();
        if world
            .company_mut(company_id)
            .customers
            .remove(&id)
            .is_some()
        {
            self.publish(world, company_id, events::CUSTOMER_DELETE, [id]);
        }
    }

    /// Customers numbered `first .. first + count`, all changed now.
    pub fn add_customers(&self, company_id: i64, first: u32, count: u32, inactive: bool) {
        let now = self.now();
        let mut world = self.lock();
        let first_id = world.add_customers(company_id, first, count, inactive, now);
        let ids = first_id..first_id + i64::from(count);
        self.publish(world, company_id, events::CUSTOMER_CREATE, ids);
    }

    /// Customers numbered `first .. first + count` that have existed for a while: last changed
    /// [`SEEDED_AGE`] ago, so a `changedSince` window of a daemon started now does not see them
    /// (a seeded world looks like production, not like a burst of edits at start-up).
    pub fn seed_customers(&self, company_id: i64, first: u32, count: u32, inactive: bool) {
        let now = self.now();
        let long_ago = now
            .checked_sub(jiff::SignedDuration::from_secs(SEEDED_AGE.as_secs() as i64))
            .unwrap_or(now);
        self.lock()
            .add_customers(company_id, first, count, inactive, long_ago);
    }

    /// Adds one invoice; returns its id.
    pub fn add_invoice(&self, company_id: i64, number: u32, date: Date) -> i64 {
        let mut world = self.lock();
        let id = world.add_invoices(company_id, number, 1, date, 1);
        self.publish(world, company_id, events::INVOICE_CHARGED, [id]);
        id
    }

    /// Invoices numbered `first .. first + count`, `per_day` per day from `first_date`.
    pub fn add_invoices(
        &self,
        company_id: i64,
        first: u32,
        count: u32,
        first_date: Date,
        per_day: u32,
    ) {
        let mut world = self.lock();
        let first_id = world.add_invoices(company_id, first, count, first_date, per_day);
        let ids = first_id..first_id + i64::from(count);
        self.publish(world, company_id, events::INVOICE_CHARGED, ids);
    }

    /// Tripletex has no event for this (invoices are credited, not deleted), so nothing is sent.
    pub fn remove_invoice(&self, company_id: i64, id: i64) {
        self.lock().company_mut(company_id).invoices.remove(&id);
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// The log so far, leaving it empty (long runs count requests without keeping them all).
    pub fn take_request_log(&self) -> Vec<LoggedRequest> {
        std::mem::take(&mut self.lock().log)
    }

    pub fn clear_request_log(&self) {
        self.lock().log.clear();
    }

    /// Sessions minted and not deleted (dead ones included).
    pub fn live_sessions(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Forgets every session token, as if Tripletex had logged everyone out: the next call with
    /// any of them gets 401 (tests of re-minting after a 401).
    pub fn drop_all_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves in the background.
    pub async fn start(&self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        self.start_deliveries();
        self.start_timeline();
        RunningSim::start(self.clone(), addr).await
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// A poisoned lock only means a test panicked mid-request; the data is still usable.
    fn lock(&self) -> MutexGuard<'_, World> {
        self.inner
            .world
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn next_request_id(&self) -> String {
        let n = self.inner.requests.fetch_add(1, Ordering::Relaxed);
        format!("sim-{:08x}-{n:08}", self.inner.id_prefix)
    }

    /// Appends to the request log and traces method, redacted path and status (0 = reset).
    fn record(
        &self,
        request: &api::Request,
        full_path: &str,
        status: Option<u16>,
        remaining: Option<u32>,
        company_id: Option<i64>,
    ) {
        let path = server::loggable_path(full_path);
        let status = status.unwrap_or(0);
        tracing::debug!(method = %request.method, path = %path, status, "sim request");
        let entry = LoggedRequest {
            method: request.method.to_string(),
            path,
            query: server::loggable_query(&request.query),
            status,
            at: self.now(),
            rate_limit_remaining: remaining,
            company_id,
        };
        self.lock().log.push(entry);
    }
}
