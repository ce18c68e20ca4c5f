//! Scenario files: a TOML description of a simulated Tripletex world (rate limit, consumer
//! tokens, companies with employee tokens, customer and invoice number series, and a time-line of
//! changes to play once the simulator starts).
//!
//! Invariants: parsing is strict (`deny_unknown_fields` everywhere, so a typo fails loudly rather
//! than silently simulating something else); a parsed scenario is validated (unique company ids
//! and employee tokens, positive limits), so `Simulator::from_scenario` cannot fail; relative
//! dates (`"-400d"`) are resolved against the simulator's clock when the world is built.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::Date;
use serde::Deserialize;

use super::timeline::ChangeSpec;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario is not valid TOML for the simulator: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("scenario is inconsistent: {0}")]
    Invalid(String),
}

/// A whole simulated world.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Consumer tokens the simulator accepts.
    #[serde(default)]
    pub consumer_tokens: Vec<String>,
    /// When they expire (`GET /token/consumer/byToken`'s `expirationDate`): a date, "-Nd" or
    /// "+Nd" (days from the simulator's today); none by default.
    #[serde(default)]
    pub consumer_token_expires: Option<ScenarioDate>,
    /// Defaults to 100 requests per 10 s.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default, rename = "company")]
    pub companies: Vec<CompanySpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub requests: u32,
    /// A humantime duration: `"10s"`, `"1m"`.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanySpec {
    pub id: i64,
    pub name: String,
    /// The web shop this company belongs to; documentation only, the simulator ignores it.
    #[serde(default)]
    pub shop: Option<String>,
    /// Whether the Integrations add-on is on; without it every API call fails with 403.
    #[serde(default = "enabled")]
    pub integrations: bool,
    #[serde(default, rename = "employee")]
    pub employees: Vec<EmployeeSpec>,
    #[serde(default)]
    pub customers: Vec<CustomerSeries>,
    #[serde(default)]
    pub invoices: Vec<InvoiceSeries>,
    /// Changes made after the simulator starts (see `timeline.rs`).
    #[serde(default, rename = "change")]
    pub changes: Vec<ChangeSpec>,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmployeeSpec {
    pub token: String,
    pub employee_id: i64,
    #[serde(default)]
    pub revoked: bool,
    /// Path prefixes relative to `/v2` (e.g. `"/invoice"`) this user may not read: 403 code 9000.
    #[serde(default)]
    pub denied: Vec<String>,
}

/// Customers numbered `first .. first + count`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSeries {
    pub first: u32,
    pub count: u32,
    #[serde(default)]
    pub inactive: bool,
}

/// Invoices numbered `first .. first + count`, `per_day` of them per day from `first_date`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceSeries {
    pub first: u32,
    pub count: u32,
    pub first_date: ScenarioDate,
    #[serde(default = "one_per_day")]
    pub per_day: u32,
}

fn one_per_day() -> u32 {
    1
}

/// `"2026-01-05"`, `"-400d"` (400 days before today in Oslo by the simulator's clock) or
/// `"+30d"` (30 days after).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ScenarioDate {
    On(Date),
    DaysAgo(u32),
    DaysAhead(u32),
}

impl TryFrom<String> for ScenarioDate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        if let Some(days) = text.strip_prefix('-').and_then(|t| t.strip_suffix('d')) {
            return days
                .parse()
                .map(ScenarioDate::DaysAgo)
                .map_err(|_| format!("bad relative date {text:?}: expected like \"-400d\""));
        }
        if let Some(days) = text.strip_prefix('+').and_then(|t| t.strip_suffix('d')) {
            return days
                .parse()
                .map(ScenarioDate::DaysAhead)
                .map_err(|_| format!("bad relative date {text:?}: expected like \"+30d\""));
        }
        text.parse().map(ScenarioDate::On).map_err(|_| {
            format!("bad date {text:?}: expected YYYY-MM-DD, or like \"-400d\" or \"+30d\"")
        })
    }
}

impl ScenarioDate {
    pub fn resolve(self, today: Date) -> Date {
        match self {
            ScenarioDate::On(date) => date,
            ScenarioDate::DaysAgo(days) => today
                .checked_sub(jiff::Span::new().days(i64::from(days)))
                .unwrap_or(Date::MIN),
            ScenarioDate::DaysAhead(days) => today
                .checked_add(jiff::Span::new().days(i64::from(days)))
                .unwrap_or(Date::MAX),
        }
    }
}

impl Scenario {
    pub fn from_toml_str(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |message: String| Err(ScenarioError::Invalid(message));
        if let Some(limit) = &self.rate_limit
            && (limit.requests == 0 || limit.period.is_zero())
        {
            return invalid("rate_limit needs requests > 0 and a non-zero period".into());
        }
        let mut ids = HashSet::new();
        let mut tokens = HashSet::new();
        for company in &self.companies {
            if !ids.insert(company.id) {
                return invalid(format!("company id {} appears twice", company.id));
            }
            for employee in &company.employees {
                if employee.token.is_empty() {
                    return invalid(format!(
                        "company {} has an empty employee token",
                        company.id
                    ));
                }
                // The token itself is a secret, even a demo one: name the company instead.
                if !tokens.insert(employee.token.as_str()) {
                    return invalid(format!(
                        "an employee token of company {} is used twice",
                        company.id
                    ));
                }
            }
            if company.invoices.iter().any(|series| series.per_day == 0) {
                return invalid(format!(
                    "company {}: per_day must be at least 1",
                    company.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_dates() {
        let today = Date::constant(2026, 3, 10);
        let rel = ScenarioDate::try_from("-9d".to_owned()).unwrap();
        assert_eq!(rel.resolve(today), Date::constant(2026, 3, 1));
        let abs = ScenarioDate::try_from("2026-01-05".to_owned()).unwrap();
        assert_eq!(abs.resolve(today), Date::constant(2026, 1, 5));
        assert!(ScenarioDate::try_from("yesterday".to_owned()).is_err());
    }

    #[test]
    fn typos_and_duplicates_are_rejected() {
        let typo = "consumer_token = [\"x\"]";
        assert!(matches!(
            Scenario::from_toml_str(typo),
            Err(ScenarioError::Parse(_))
        ));
        let twice = "[[company]]\nid = 1\nname = \"a\"\n[[company]]\nid = 1\nname = \"b\"\n";
        assert!(matches!(
            Scenario::from_toml_str(twice),
            Err(ScenarioError::Invalid(_))
        ));
    }
}
