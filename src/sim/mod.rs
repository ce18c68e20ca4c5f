//! A Tripletex API v2 simulator for tests, `demo` and the `sim` command: session tokens with
//! Oslo-midnight expiry, Basic auth, `>whoAmI`, customers and invoices with `fields`, `sorting`,
//! paging and `versionDigest`/`If-None-Match`, per-(consumer, employee) rate limiting and
//! injectable faults (statuses, delays, resets, broken JSON, mutated list answers, endless or
//! repeating paging, huge bodies), over real HTTP.
//!
//! Invariants: a [`Simulator`] is a cheap handle to one shared world (clones see the same data);
//! time-based decisions (token expiry, `changed`) use the injected clock, while rate-limit windows
//! and injected delays use real monotonic time; tokens are never logged (see `server.rs`).
//! Production code never imports this module.

mod answers;
mod api;
mod error;
mod faults;
mod fields;
mod ratelimit;
mod rawpath;
mod records;
mod scenario;
mod server;
mod session;
mod state;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;

pub use faults::{Fault, FaultKind, Mutation};
pub use scenario::{
    CompanySpec, CustomerSeries, EmployeeSpec, InvoiceSeries, RateLimitSpec, Scenario,
    ScenarioDate, ScenarioError,
};
pub use server::RunningSim;

use crate::clock::{SharedClock, oslo_date};
use ratelimit::RateLimiter;
use state::World;

/// The annotated demo world: three shops, one healthy, one with colliding customer numbers, one
/// with a revoked key.
pub const DEMO_SCENARIO: &str = include_str!("../../config/sim/demo.toml");

/// What objects' `url` fields start with; not resolvable on purpose.
const URL_BASE: &str = "tripletex-sim.invalid/v2";

const DEFAULT_LIMIT: u32 = 100;
const DEFAULT_PERIOD: Duration = Duration::from_secs(10);

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
            }),
        }
    }

    /// Builds the world `scenario` describes; relative dates count back from today in Oslo.
    pub fn from_scenario(scenario: Scenario, clock: SharedClock) -> Self {
        let sim = Self::new(clock);
        let today = oslo_date(sim.now());
        if let Some(limit) = &scenario.rate_limit {
            sim.set_rate_limit(limit.requests, limit.period);
        }
        for token in &scenario.consumer_tokens {
            sim.add_consumer_token(token);
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
                sim.add_customers(company.id, series.first, series.count, series.inactive);
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
        }
        sim
    }

    pub fn set_rate_limit(&self, requests: u32, period: Duration) {
        self.lock().limiter.configure(requests, period);
    }

    pub fn add_consumer_token(&self, token: &str) {
        self.lock().add_consumer(token);
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
        id
    }

    /// Bumps the customer's version and `changed`, like an edit in Tripletex.
    pub fn set_customer_inactive(&self, company_id: i64, id: i64, inactive: bool) {
        let now = self.now();
        let mut world = self.lock();
        if let Some(customer) = world.company_mut(company_id).customers.get_mut(&id) {
            customer.inactive = inactive;
            customer.version += 1;
            customer.changed = now;
        }
    }

    pub fn remove_customer(&self, company_id: i64, id: i64) {
        self.lock().company_mut(company_id).customers.remove(&id);
    }

    /// Customers numbered `first .. first + count`, all changed now.
    pub fn add_customers(&self, company_id: i64, first: u32, count: u32, inactive: bool) {
        let now = self.now();
        self.lock()
            .add_customers(company_id, first, count, inactive, now);
    }

    /// Adds one invoice; returns its id.
    pub fn add_invoice(&self, company_id: i64, number: u32, date: Date) -> i64 {
        self.lock().add_invoices(company_id, number, 1, date, 1)
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
        self.lock()
            .add_invoices(company_id, first, count, first_date, per_day);
    }

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
