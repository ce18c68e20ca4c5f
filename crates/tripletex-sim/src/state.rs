//! The simulated world: consumer tokens, companies with their customers and invoices, employee
//! tokens, sessions, webhook subscriptions, plus the limiter, faults, request log and webhook
//! delivery book that share its lock.
//!
//! Invariants: ids come from one counter and are never reused; customers and invoices live in
//! per-company `BTreeMap`s keyed by id, so the natural order is id order and bulk inserts of
//! 100 000 stay O(n log n); a session remembers the employee token it came from, so revoking
//! that token kills the session too; nothing here is ever written to a log.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;

use super::LoggedRequest;
use super::delivery::DeliveryBook;
use super::faults::Faults;
use super::ratelimit::RateLimiter;
use super::subscriptions::Subscriptions;
use super::timeline::ChangeSpec;

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub(crate) id: i64,
    pub(crate) version: i32,
    pub(crate) number: u32,
    pub(crate) inactive: bool,
    pub(crate) changed: Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) struct Invoice {
    pub(crate) id: i64,
    pub(crate) version: i32,
    pub(crate) number: u32,
    pub(crate) date: Date,
    pub(crate) customer_id: i64,
}

#[derive(Debug)]
pub(crate) struct Company {
    pub(crate) name: String,
    pub(crate) integrations_enabled: bool,
    pub(crate) customers: BTreeMap<i64, Customer>,
    pub(crate) invoices: BTreeMap<i64, Invoice>,
}

#[derive(Debug)]
pub(crate) struct EmployeeToken {
    pub(crate) id: i64,
    pub(crate) company_id: i64,
    pub(crate) employee_id: i64,
    pub(crate) revoked: bool,
    /// Path prefixes (relative to `/v2`) this token's user has no access to.
    pub(crate) denied: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) consumer_token: String,
    pub(crate) employee_token: String,
    pub(crate) company_id: i64,
    /// Dead from 00:00 Europe/Oslo at the start of this date.
    pub(crate) expiration: Date,
}

#[derive(Debug)]
pub(crate) struct World {
    next_id: i64,
    /// Consumer token → its id.
    pub(crate) consumers: HashMap<String, i64>,
    /// Consumer token → the date it expires (none: it does not).
    pub(crate) consumer_expiry: HashMap<String, Date>,
    pub(crate) companies: BTreeMap<i64, Company>,
    pub(crate) employees: HashMap<String, EmployeeToken>,
    /// Session token → session.
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) limiter: RateLimiter,
    pub(crate) faults: Faults,
    pub(crate) log: Vec<LoggedRequest>,
    /// Webhook subscriptions of every company and employee token.
    pub(crate) subscriptions: Subscriptions,
    /// Delivery outcomes and the test knobs that shape deliveries.
    pub(crate) deliveries: DeliveryBook,
    /// Scenario changes (company id, change) waiting for `Simulator::start`.
    pub(crate) timeline: Vec<(i64, ChangeSpec)>,
}

impl World {
    pub(crate) fn new(limiter: RateLimiter) -> Self {
        Self {
            next_id: 1,
            consumers: HashMap::new(),
            consumer_expiry: HashMap::new(),
            companies: BTreeMap::new(),
            employees: HashMap::new(),
            sessions: HashMap::new(),
            limiter,
            faults: Faults::default(),
            log: Vec::new(),
            subscriptions: Subscriptions::default(),
            deliveries: DeliveryBook::default(),
            timeline: Vec::new(),
        }
    }

    pub(crate) fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn add_consumer(&mut self, token: &str) {
        if !self.consumers.contains_key(token) {
            let id = self.next_id();
            self.consumers.insert(token.to_owned(), id);
        }
    }

    pub(crate) fn add_company(&mut self, company_id: i64, name: &str, integrations_enabled: bool) {
        let company = self.companies.entry(company_id).or_insert_with(|| Company {
            name: String::new(),
            integrations_enabled,
            customers: BTreeMap::new(),
            invoices: BTreeMap::new(),
        });
        company.name = name.to_owned();
        company.integrations_enabled = integrations_enabled;
    }

    /// Company `id`, created with a placeholder name when a test skipped `add_company`.
    pub(crate) fn company_mut(&mut self, id: i64) -> &mut Company {
        self.companies.entry(id).or_insert_with(|| Company {
            name: format!("Company {id}"),
            integrations_enabled: true,
            customers: BTreeMap::new(),
            invoices: BTreeMap::new(),
        })
    }

    pub(crate) fn add_employee(&mut self, token: &str, company_id: i64, employee_id: i64) {
        self.company_mut(company_id);
        let id = self.next_id();
        self.employees.insert(
            token.to_owned(),
            EmployeeToken {
                id,
                company_id,
                employee_id,
                revoked: false,
                denied: Vec::new(),
            },
        );
    }

    pub(crate) fn add_customers(
        &mut self,
        company_id: i64,
        first: u32,
        count: u32,
        inactive: bool,
        now: Timestamp,
    ) -> i64 {
        let first_id = self.next_id;
        self.next_id += i64::from(count);
        let company = self.company_mut(company_id);
        for (offset, number) in (first..first.saturating_add(count)).enumerate() {
            let id = first_id + offset as i64;
            company.customers.insert(
                id,
                Customer {
                    id,
                    version: 0,
                    number,
                    inactive,
                    changed: now,
                },
            );
        }
        first_id
    }

    /// Adds `count` invoices from number `first`, `per_day` of them on each day from `first_date`;
    /// returns the first new id.
    pub(crate) fn add_invoices(
        &mut self,
        company_id: i64,
        first: u32,
        count: u32,
        first_date: Date,
        per_day: u32,
    ) -> i64 {
        let first_id = self.next_id;
        self.next_id += i64::from(count);
        let per_day = per_day.max(1);
        let company = self.company_mut(company_id);
        // Invoices need some customer; the lowest id is as plausible as any.
        let customer_id = company.customers.keys().next().copied().unwrap_or(0);
        for (offset, number) in (first..first.saturating_add(count)).enumerate() {
            let id = first_id + offset as i64;
            let days = i64::try_from(offset).unwrap_or(i64::MAX) / i64::from(per_day);
            let date = jiff::Span::new()
                .try_days(days)
                .and_then(|span| first_date.checked_add(span))
                .unwrap_or(first_date);
            company.invoices.insert(
                id,
                Invoice {
                    id,
                    version: 0,
                    number,
                    date,
                    customer_id,
                },
            );
        }
        first_id
    }
}
