//! Customer numbers: the shop numbers its customers upwards from 1; Tripletex's own customer
//! series (Customer › Settings) must start above the shop's range.

use super::{Advice, CursorKeys, Events, KindSpec, Listing, Reads, Tail};
use crate::checks::{NumberRange, Run};

pub static SPEC: KindSpec = KindSpec {
    key: "customer_numbers",
    noun: "customer numbers",
    defaults: NumberRange {
        shop_start: 1,
        tripletex_start: 100_000,
    },
    list: Listing {
        path: "/customer",
        metrics_label: "customer",
        fields: "id,version,customerNumber,isInactive",
        number_field: "customerNumber",
        // Tripletex lists only active customers unless asked: a full read asks for both.
        reads: Reads::ChangedSince {
            full: &[&[("isInactive", "false")], &[("isInactive", "true")]],
        },
        access: "read customers",
    },
    tail: Tail::Flag("isInactive"),
    mirror: "customers",
    cursor: CursorKeys {
        full: "customers_full",
        since: Some("customers_since"),
        window_from: None,
        digest: None,
        checked: "customer_numbers_checked",
    },
    advice: Advice {
        move_series,
        clashing,
        duplicates,
    },
    events: Events {
        upsert: &["customer.create", "customer.update"],
        delete: Some("customer.delete"),
    },
};

fn move_series(to: u32) -> String {
    format!("In Tripletex: Customer › Settings › set customer number to {to}.")
}

fn clashing(run: Run, _below: bool) -> String {
    format!("Then renumber or deactivate customers {run} so they leave the shop's range.")
}

fn duplicates(word: &str, listed: &str) -> String {
    format!("Renumber or merge the customers sharing {word} {listed}.")
}
