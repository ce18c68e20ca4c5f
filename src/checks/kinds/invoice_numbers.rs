//! Invoice numbers: the shop numbers its invoices upwards from 6000; Tripletex's own invoice
//! series (Accounting › Accounting settings › Voucher types/number sequences) must start above
//! the shop's range. Issued invoices cannot be renumbered, so the fixes say so.

use super::{Advice, CursorKeys, Events, KindSpec, Listing, Reads, Tail};
use crate::checks::{NumberRange, Run};

pub static SPEC: KindSpec = KindSpec {
    key: "invoice_numbers",
    noun: "invoice numbers",
    defaults: NumberRange {
        shop_start: 6000,
        tripletex_start: 50_000,
    },
    list: Listing {
        path: "/invoice",
        metrics_label: "invoice",
        fields: "id,version,invoiceNumber,invoiceDate",
        number_field: "invoiceNumber",
        // Tripletex requires both dates on every invoice listing.
        reads: Reads::DateWindow {
            from: "invoiceDateFrom",
            to: "invoiceDateTo",
        },
        access: "read invoices",
    },
    tail: Tail::Date("invoiceDate"),
    mirror: "invoices",
    cursor: CursorKeys {
        full: "invoices_full",
        since: None,
        window_from: Some("invoice_window_from"),
        digest: Some("invoice_digest"),
        checked: "invoice_numbers_checked",
    },
    advice: Advice {
        move_series,
        clashing,
        duplicates,
    },
    // An invoice gets its number when it is charged; Tripletex has no invoice delete event.
    events: Events {
        upsert: &["invoice.charged"],
        delete: None,
    },
};

fn move_series(to: u32) -> String {
    format!(
        "In Tripletex: Accounting › Accounting settings › Voucher types/number sequences › \
         start the invoice series at {to}."
    )
}

fn clashing(run: Run, below: bool) -> String {
    if below {
        format!("Invoices {run} may keep their numbers; only new invoices need the new series.")
    } else {
        format!(
            "Invoices {run} sit where the shop's series is heading; agree with the accountant how \
             to handle them (issued invoices cannot just be renumbered)."
        )
    }
}

fn duplicates(word: &str, listed: &str) -> String {
    format!(
        "Find the invoices sharing {word} {listed} and agree with the accountant how to correct \
         them."
    )
}
