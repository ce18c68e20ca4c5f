//! Where each record lives in the database: the key layout since schema 5.
//!
//! Every record of a shop is under `shop/{name}/` (shop names cannot contain `/`, so a prefix is
//! one shop): `cursor`, `history/{kind}` (since schema 8; before it, `history/{kind}/{ms}`, a key
//! per point), `mirror/{spec.mirror}`, `result/{kind}`,
//! `session` (and, until its kind's next check, a `result/{kind}/checked` of schemas 3 to 5). Why: sled splits a leaf at 16 keys and reads a whole leaf
//! on a cache miss, so one pass, which reads and writes most of one shop's ten-odd records, touches
//! one or two leaves of its own. Before schema 5 the type came first (`result/{shop}/{kind}`,
//! ...): a pass touched five leaves, each holding the same type of 16 other shops (a mirror leaf
//! ~15 KiB), and at 10 000 shops most of them were cache misses. The move from that layout is
//! [`from_type_first`]; the store's other keys (`meta/`, `outbox/`) are not per shop.

use crate::checks::{CheckKind, KindSpec};

/// Record types that schema 4 and older put first in their keys, each followed by `/{shop}`.
pub(super) const TYPE_FIRST: [&str; 5] = ["cursor/", "history/", "mirror/", "result/", "session/"];

pub(super) fn session(shop: &str) -> String {
    format!("shop/{shop}/session")
}

pub(super) fn cursor(shop: &str) -> String {
    format!("shop/{shop}/cursor")
}

pub(super) fn result(shop: &str, kind: CheckKind) -> String {
    format!("shop/{shop}/result/{}", kind.as_str())
}

/// A check's time in schemas 3 to 5 (since 6 it is in the cursor), right after its result's key.
pub(super) fn checked(shop: &str, kind: CheckKind) -> String {
    format!("{}/checked", result(shop, kind))
}

pub(super) fn mirror(shop: &str, spec: &KindSpec) -> String {
    format!("shop/{shop}/mirror/{}", spec.mirror)
}

/// Where every shop's records begin.
pub(super) const SHOPS: &str = "shop/";

/// The kind whose mirror `key` is (`shop/{name}/mirror/{spec.mirror}`), if it is one.
pub(super) fn mirror_kind(key: &[u8]) -> Option<CheckKind> {
    let rest = key.strip_prefix(SHOPS.as_bytes())?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let kind = rest[slash..].strip_prefix(b"/mirror/")?;
    CheckKind::ALL
        .iter()
        .copied()
        .find(|k| k.spec().mirror.as_bytes() == kind)
}

/// The kind whose result `key` is (`shop/{name}/result/{kind}`, not its `/checked`), if it is one.
pub(super) fn result_kind(key: &[u8]) -> Option<CheckKind> {
    let rest = key.strip_prefix(SHOPS.as_bytes())?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let kind = rest[slash..].strip_prefix(b"/result/")?;
    CheckKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str().as_bytes() == kind)
}

/// Whether `key` is a shop's session (`shop/{name}/session`).
pub(super) fn is_session(key: &[u8]) -> bool {
    key.strip_prefix(SHOPS.as_bytes())
        .and_then(|rest| rest.iter().position(|&b| b == b'/').map(|i| &rest[i..]))
        .is_some_and(|rest| rest == b"/session")
}

/// A check's history: one packed value since schema 8 (see `history_value`).
pub(super) fn history(shop: &str, kind: CheckKind) -> String {
    format!("shop/{shop}/history/{}", kind.as_str())
}

/// One history point's key in schemas 5 to 7: the history's key, `/`, then big-endian
/// milliseconds, so keys sort by time (what the moves to 5 and to 8 read).
#[cfg(test)]
pub(super) fn history_point(shop: &str, kind: CheckKind, at: jiff::Timestamp) -> Vec<u8> {
    let mut key = format!("{}/", history(shop, kind)).into_bytes();
    let millis = u64::try_from(at.as_millisecond()).unwrap_or(0);
    key.extend_from_slice(&millis.to_be_bytes());
    key
}

/// The history a point key of schemas 5 to 7 belongs to (its key, as [`history`] makes it), if
/// `key` is one.
pub(super) fn history_of_point(key: &[u8]) -> Option<&[u8]> {
    let (history, millis) = key.split_at_checked(key.len().checked_sub(9)?)?;
    let rest = history.strip_prefix(SHOPS.as_bytes())?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let kind = rest[slash..].strip_prefix(b"/history/")?;
    let known = CheckKind::ALL.iter().any(|k| k.as_str().as_bytes() == kind);
    (known && millis[0] == b'/').then_some(history)
}

/// The schema 5 key of a schema 4 key `{type}/{shop}[/{rest}]`: `shop/{shop}/{type}[/{rest}]`
/// (`rest` may hold any bytes: a history key ends in a timestamp). `None` for a key of another
/// kind, or one without a shop.
pub(super) fn from_type_first(key: &[u8]) -> Option<Vec<u8>> {
    let prefix = TYPE_FIRST.iter().find(|p| key.starts_with(p.as_bytes()))?;
    let record_type = &prefix.as_bytes()[..prefix.len() - 1];
    let after = &key[prefix.len()..];
    let shop_end = after.iter().position(|&b| b == b'/').unwrap_or(after.len());
    let (shop, rest) = after.split_at(shop_end);
    if shop.is_empty() {
        return None;
    }
    let mut moved = Vec::with_capacity(key.len() + 6);
    moved.extend_from_slice(b"shop/");
    moved.extend_from_slice(shop);
    moved.push(b'/');
    moved.extend_from_slice(record_type);
    moved.extend_from_slice(rest);
    Some(moved)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    #[test]
    fn a_point_key_of_schema_7_names_its_history_and_no_other_key_does() {
        let at: Timestamp = "2027-01-15T08:00:00Z".parse().unwrap();
        for kind in CheckKind::ALL {
            let point = history_point("acme", kind, at);
            assert_eq!(
                history_of_point(&point),
                Some(history("acme", kind).as_bytes())
            );
        }
        let kind = CheckKind::InvoiceNumbers;
        for other in [
            history("acme", kind).into_bytes(),
            cursor("acme").into_bytes(),
            b"shop/acme/history/refunds/12345678".to_vec(),
            b"shop/acme/mirror/invoices/12345678".to_vec(),
            b"history/acme/invoice_numbers/12345678".to_vec(),
        ] {
            assert_eq!(
                history_of_point(&other),
                None,
                "{}",
                String::from_utf8_lossy(&other)
            );
        }
    }

    #[test]
    fn a_mirrors_key_names_its_kind_and_no_other_key_does() {
        for kind in CheckKind::ALL {
            assert_eq!(
                mirror_kind(mirror("acme", kind.spec()).as_bytes()),
                Some(kind)
            );
        }
        for other in [
            cursor("acme").into_bytes(),
            b"shop/acme/mirror/customers/1".to_vec(),
            b"shop/mirror/customers".to_vec(),
            b"mirror/acme/customers".to_vec(),
        ] {
            assert_eq!(
                mirror_kind(&other),
                None,
                "{}",
                String::from_utf8_lossy(&other)
            );
        }
    }

    #[test]
    fn type_first_keys_move_under_their_shop() {
        let moved = |k: &[u8]| from_type_first(k).map(|k| String::from_utf8_lossy(&k).into_owned());
        assert_eq!(moved(b"session/acme").as_deref(), Some("shop/acme/session"));
        assert_eq!(moved(b"cursor/acme").as_deref(), Some("shop/acme/cursor"));
        assert_eq!(
            moved(b"result/acme/customer_numbers/checked").as_deref(),
            Some("shop/acme/result/customer_numbers/checked")
        );
        assert_eq!(
            moved(b"mirror/acme/invoices").as_deref(),
            Some("shop/acme/mirror/invoices")
        );
        let old = [
            b"history/acme/invoice_numbers/".as_slice(),
            &[0, 0, 1, b'/', 0xff, 0, 0, 7],
        ]
        .concat();
        let mut new = b"shop/acme/history/invoice_numbers/".to_vec();
        new.extend_from_slice(&[0, 0, 1, b'/', 0xff, 0, 0, 7]);
        assert_eq!(from_type_first(&old), Some(new));
        assert_eq!(moved(b"outbox/pending/x"), None);
        assert_eq!(moved(b"meta/schema_version"), None);
        assert_eq!(moved(b"session/"), None);
        assert_eq!(moved(b"shop/acme/session"), None);
    }

    #[test]
    fn what_moves_is_where_this_build_looks() {
        let kind = CheckKind::InvoiceNumbers;
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let shop = "acme";
        for (old, new) in [
            (
                format!("session/{shop}").into_bytes(),
                session(shop).into_bytes(),
            ),
            (
                format!("cursor/{shop}").into_bytes(),
                cursor(shop).into_bytes(),
            ),
            (
                format!("result/{shop}/{}", kind.as_str()).into_bytes(),
                result(shop, kind).into_bytes(),
            ),
            (
                format!("result/{shop}/{}/checked", kind.as_str()).into_bytes(),
                checked(shop, kind).into_bytes(),
            ),
            (
                format!("mirror/{shop}/{}", kind.spec().mirror).into_bytes(),
                mirror(shop, kind.spec()).into_bytes(),
            ),
        ] {
            assert_eq!(from_type_first(&old), Some(new));
        }
        let mut old = format!("history/{shop}/{}/", kind.as_str()).into_bytes();
        old.extend_from_slice(&1_800_000_000_000u64.to_be_bytes());
        assert_eq!(from_type_first(&old), Some(history_point(shop, kind, at)));
    }
}
