//! Scenario time-lines: changes a scenario schedules for after the simulator starts
//! (`[[company.change]]`), so `sim` and `demo` can show webhooks firing without a test driving
//! them.
//!
//! Invariants: changes run in `after` order (ties in file order), each through the same
//! [`Simulator`] method a test would call, so they deliver webhooks like any other change; a
//! change naming a customer number that does not exist is skipped with a debug line; `after`
//! counts tokio time from [`Simulator::start`] (a test can pause it); the player holds only a
//! weak handle, so it ends when done or when the last `Simulator` is dropped.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::Simulator;
use super::scenario::ScenarioDate;
use oslo_clock::oslo_date;

/// One scheduled change to a company's data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeSpec {
    AddCustomer {
        #[serde(with = "humantime_serde")]
        after: Duration,
        number: u32,
        #[serde(default)]
        inactive: bool,
    },
    /// The lowest-id customer with `number`.
    SetCustomerInactive {
        #[serde(with = "humantime_serde")]
        after: Duration,
        number: u32,
        inactive: bool,
    },
    RenumberCustomer {
        #[serde(with = "humantime_serde")]
        after: Duration,
        number: u32,
        to: u32,
    },
    RemoveCustomer {
        #[serde(with = "humantime_serde")]
        after: Duration,
        number: u32,
    },
    AddInvoice {
        #[serde(with = "humantime_serde")]
        after: Duration,
        number: u32,
        /// `"YYYY-MM-DD"` or `"-Nd"`, resolved when the change runs.
        date: ScenarioDate,
    },
}

impl ChangeSpec {
    pub fn after(&self) -> Duration {
        match self {
            Self::AddCustomer { after, .. }
            | Self::SetCustomerInactive { after, .. }
            | Self::RenumberCustomer { after, .. }
            | Self::RemoveCustomer { after, .. }
            | Self::AddInvoice { after, .. } => *after,
        }
    }
}

impl Simulator {
    /// Plays the changes scheduled by `from_scenario`, once; needs a tokio runtime.
    pub(crate) fn start_timeline(&self) {
        let mut planned = std::mem::take(&mut self.lock().timeline);
        if planned.is_empty() {
            return;
        }
        planned.sort_by_key(|(_, change)| change.after());
        let handle = Arc::downgrade(&self.inner);
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            for (company_id, change) in planned {
                tokio::time::sleep_until(started + change.after()).await;
                let Some(inner) = handle.upgrade() else {
                    return;
                };
                Simulator { inner }.apply(company_id, &change);
            }
        });
    }

    fn apply(&self, company_id: i64, change: &ChangeSpec) {
        let customer = |number: u32| {
            let id = self.customer_with_number(company_id, number);
            if id.is_none() {
                tracing::debug!(company_id, number, "sim time-line: no such customer");
            }
            id
        };
        match *change {
            ChangeSpec::AddCustomer {
                number, inactive, ..
            } => {
                self.add_customer(company_id, number, inactive);
            }
            ChangeSpec::SetCustomerInactive {
                number, inactive, ..
            } => {
                if let Some(id) = customer(number) {
                    self.set_customer_inactive(company_id, id, inactive);
                }
            }
            ChangeSpec::RenumberCustomer { number, to, .. } => {
                if let Some(id) = customer(number) {
                    self.set_customer_number(company_id, id, to);
                }
            }
            ChangeSpec::RemoveCustomer { number, .. } => {
                if let Some(id) = customer(number) {
                    self.remove_customer(company_id, id);
                }
            }
            ChangeSpec::AddInvoice { number, date, .. } => {
                let date = date.resolve(oslo_date(self.now()));
                self.add_invoice(company_id, number, date);
            }
        }
    }

    fn customer_with_number(&self, company_id: i64, number: u32) -> Option<i64> {
        let world = self.lock();
        let company = world.companies.get(&company_id)?;
        company
            .customers
            .values()
            .find(|customer| customer.number == number)
            .map(|customer| customer.id)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::Scenario;
    use oslo_clock::ManualClock;

    const WORLD: &str = r#"
        [[company]]
        id = 1
        name = "A"
        customers = [{ first = 1, count = 3 }]

        [[company.change]]
        after = "2s"
        action = "remove_customer"
        number = 2

        [[company.change]]
        after = "1s"
        action = "renumber_customer"
        number = 3
        to = 30

        [[company.change]]
        after = "3s"
        action = "add_invoice"
        number = 500
        date = "-1d"

        [[company.change]]
        after = "3s"
        action = "remove_customer"
        number = 99
    "#;

    fn numbers(sim: &Simulator) -> Vec<u32> {
        let world = sim.lock();
        world.companies[&1]
            .customers
            .values()
            .map(|c| c.number)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn changes_run_in_time_order_after_start() {
        let scenario = Scenario::from_toml_str(WORLD).unwrap();
        let clock = ManualClock::new("2026-03-10T11:00:00Z".parse().unwrap());
        let sim = Simulator::from_scenario(scenario, clock);
        let running = sim.start(SocketAddr::from(([127, 0, 0, 1], 0))).await;
        let _running = running.unwrap();
        assert_eq!(numbers(&sim), [1, 2, 3], "nothing happens before its time");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(numbers(&sim), [1, 2, 30]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(numbers(&sim), [1, 30]);
        let world = sim.lock();
        let invoice = world.companies[&1].invoices.values().next().unwrap();
        assert_eq!(
            (invoice.number, invoice.date.to_string().as_str()),
            (500, "2026-03-09")
        );
    }

    #[test]
    fn unknown_actions_and_keys_are_refused() {
        for bad in [
            "action = \"explode\"\nafter = \"1s\"",
            "action = \"add_customer\"\nafter = \"1s\"\nnumber = 1\ncolour = \"red\"",
            "action = \"add_customer\"\nnumber = 1",
        ] {
            let text = format!("[[company]]\nid = 1\nname = \"A\"\n[[company.change]]\n{bad}\n");
            assert!(Scenario::from_toml_str(&text).is_err(), "{bad}");
        }
    }
}
