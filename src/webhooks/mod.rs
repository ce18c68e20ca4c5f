//! Tripletex webhooks: per-shop subscriptions ([`reconcile`]), the callback receiver
//! ([`receiver`]) and applying a callback to the shop's mirror and verdict ([`apply`]).
//!
//! Each shop gets a callback path (`{public_url}/{token}`) and an auth header value, both HMACs
//! of the shop's name under the configured secret ([`Keys`]): the path reveals nothing (not the
//! shop, not the secret), the header proves a call comes from a subscription we made; nothing
//! secret is stored in sled, and changing the secret changes every path, so the next reconcile
//! replaces every subscription. Invariants: a callback reaches the channel only after its path,
//! auth header (compared in constant time), size and envelope all passed; applying one never
//! sends a Tripletex request. Subscriptions we manage carry [`AUTH_HEADER`] as their
//! `authHeaderName`; others of the same token are left alone.
//!
//! Wiring (the daemon's): [`Receiver::start`] once on `webhooks.listen` with a `watch` of
//! [`Routes`] (rebuilt on reload) and an `mpsc` of [`Callback`]s; each callback handed to its
//! shop's task, which runs [`apply::apply`] between passes (never beside one: both rewrite the
//! mirror); [`reconcile::reconcile`] every pass, [`reconcile::remove`] for a removed or disabled
//! shop.

pub mod apply;
mod envelope;
pub mod receiver;
pub mod reconcile;
mod replays;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use url::Url;

use crate::checks::{CheckKind, PerKind};
use crate::config::ShopConfig;
use crate::secrets::{self, SecretString};
use crate::tripletex::SubscriptionSpec;
use crate::tripletex::model::Record;
pub use receiver::Receiver;

/// The header Tripletex sends with every callback of our subscriptions, and how we recognise
/// ours among a token's subscriptions.
pub const AUTH_HEADER: &str = "x-tripletex-sync-auth";
/// Hex characters of a shop's callback path token (128 bits).
const PATH_TOKEN_LEN: usize = 32;

/// One authenticated, well-formed callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub shop: String,
    pub news: News,
}

/// What a callback tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum News {
    /// A record of a kind the shop checks, as it now is, or its deletion.
    Changed(CheckKind, Change),
    /// Ours and well-formed, but nothing the mirror can take: an event of a kind the shop does
    /// not check, a record without a number, or without a field we ask for (a subscription made
    /// before we asked for it). Answered 200, so Tripletex counts no failed delivery and never
    /// disables the subscription; the shop's next pass comes soon and reads what it said.
    Unusable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The record as it now is (created, changed, charged).
    Upsert(Record),
    /// The record with this id is gone.
    Delete(i64),
}

/// Derives each shop's callback URL and auth header value from the secret.
#[derive(Debug, Clone)]
pub struct Keys {
    secret: SecretString,
    /// Without a trailing slash.
    public_url: String,
}

impl Keys {
    pub fn new(public_url: &Url, secret: SecretString) -> Self {
        Self {
            secret,
            public_url: public_url.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// The last path segment of the shop's callback URL.
    fn path_token(&self, shop: &str) -> String {
        let mut token = secrets::derive_public(&self.secret, &format!("webhook-path\0{shop}"));
        token.truncate(PATH_TOKEN_LEN);
        token
    }

    /// What Tripletex calls for this shop.
    pub fn target_url(&self, shop: &str) -> String {
        format!("{}/{}", self.public_url, self.path_token(shop))
    }

    /// The auth header value of the shop's subscriptions.
    pub fn auth_value(&self, shop: &str) -> SecretString {
        secrets::derive(&self.secret, &format!("webhook-auth\0{shop}"))
    }

    /// The `hmacSharedSecret` of the shop's subscriptions: Tripletex signs callbacks with it.
    pub fn hmac_secret(&self, shop: &str) -> SecretString {
        secrets::derive(&self.secret, &format!("webhook-hmac\0{shop}"))
    }

    /// The subscriptions `shop` should have: each event of each enabled kind, asking for the
    /// kind's listing `fields` (so a callback's `value` is a row the mirror takes as it is).
    pub fn wanted(&self, shop: &ShopConfig) -> Vec<SubscriptionSpec> {
        let target_url = self.target_url(&shop.name);
        let auth = self.auth_value(&shop.name);
        let hmac = self.hmac_secret(&shop.name);
        shop.checks
            .iter()
            .filter(|(_, range)| range.is_some())
            .flat_map(|(kind, _)| {
                let spec = kind.spec();
                spec.events
                    .all()
                    .map(move |event| (event, spec.list.fields))
            })
            .map(|(event, fields)| SubscriptionSpec {
                event,
                target_url: target_url.clone(),
                fields,
                auth_header_name: AUTH_HEADER,
                auth_header_value: auth.clone(),
                hmac_shared_secret: hmac.clone(),
            })
            .collect()
    }

    /// The receiver's routes for the enabled shops.
    pub fn routes(&self, shops: &[Arc<ShopConfig>]) -> Routes {
        let prefix = Url::parse(&self.public_url)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let by_token = shops
            .iter()
            .filter(|s| s.enabled)
            .map(|s| {
                let route = Route {
                    shop: s.name.clone(),
                    auth: self.auth_value(&s.name),
                    hmac: self.hmac_secret(&s.name),
                    kinds: PerKind::from_fn(|k| s.checks[k].is_some()),
                };
                (self.path_token(&s.name), route)
            })
            .collect();
        Routes { prefix, by_token }
    }
}

/// Each shop's subscriptions (id → event) as its last reconcile left them: written by the shop
/// tasks, read by the receiver to refuse a callback of a subscription that is not the shop's, or
/// of an event that is not the subscription's. A shop not reconciled since start is unknown, and
/// its callbacks pass on the auth header alone. Cheap to clone (one shared map).
#[derive(Debug, Clone, Default)]
pub struct Subscribed(Arc<RwLock<HashMap<String, HashMap<i64, &'static str>>>>);

/// What [`Subscribed`] says of one subscription id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// The shop has not been reconciled since start: nothing to check against.
    Unknown,
    /// Not one of the shop's.
    NotOurs,
    /// The shop's, for this event.
    For(&'static str),
}

impl Subscribed {
    /// Records what the shop's reconcile left.
    pub fn set(&self, shop: &str, subscriptions: HashMap<i64, &'static str>) {
        self.write().insert(shop.to_owned(), subscriptions);
    }

    /// Forgets a shop that is gone (its next task starts unknown).
    pub fn forget(&self, shop: &str) {
        self.write().remove(shop);
    }

    pub fn of(&self, shop: &str, id: i64) -> Subscription {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        match map.get(shop) {
            None => Subscription::Unknown,
            Some(ids) => ids
                .get(&id)
                .map_or(Subscription::NotOurs, |e| Subscription::For(e)),
        }
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, HashMap<i64, &'static str>>> {
        // Only plain maps live here: a panic while writing leaves them usable.
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Which path belongs to which shop, and what its callbacks must carry.
#[derive(Debug, Default)]
pub struct Routes {
    /// `public_url`'s path: a proxy may pass it on or strip it.
    prefix: String,
    by_token: HashMap<String, Route>,
}

#[derive(Debug)]
struct Route {
    shop: String,
    auth: SecretString,
    /// Verifies `x-request-signature` when Tripletex sends one.
    hmac: SecretString,
    /// The kinds the shop checks; callbacks of others are refused.
    kinds: PerKind<bool>,
}

impl Routes {
    /// The route of a request path: `/{token}`, or `{prefix}/{token}` when the proxy keeps the
    /// public path.
    fn find(&self, path: &str) -> Option<&Route> {
        let rest = path
            .strip_prefix(self.prefix.as_str())
            .filter(|r| !self.prefix.is_empty() && r.starts_with('/'))
            .unwrap_or(path);
        let token = rest.strip_prefix('/')?;
        if token.len() != PATH_TOKEN_LEN {
            return None;
        }
        self.by_token.get(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> Keys {
        let url = Url::parse("https://sync.example.com/tripletex").unwrap();
        Keys::new(&url, SecretString::from(secret.to_owned()))
    }

    #[test]
    fn paths_reveal_neither_shop_nor_secret_and_follow_the_secret() {
        let k = keys("a-long-random-webhook-secret-0123456789");
        let url = k.target_url("acme");
        let token = url
            .strip_prefix("https://sync.example.com/tripletex/")
            .unwrap();
        assert_eq!(token.len(), PATH_TOKEN_LEN);
        assert!(!url.contains("acme") && !url.contains("secret"));
        assert_ne!(url, k.target_url("acme2"));
        assert_ne!(url, keys("another-secret").target_url("acme"));
    }

    #[test]
    fn routes_match_with_or_without_the_public_path() {
        let k = keys("s");
        let shop = ShopConfig {
            name: "acme".into(),
            source: "acme.toml".into(),
            employee_token: crate::config::TokenConfig::from_keys(
                crate::secrets::TokenRole::Employee,
                std::path::Path::new("acme.toml"),
                std::path::Path::new("."),
                "employee_token_file",
                Some("t"),
                "employee_token_credential",
                None,
            )
            .unwrap(),
            company_id: 0,
            enabled: true,
            checks: PerKind::from_fn(|k| Some(k.spec().defaults)),
        };
        let routes = k.routes(&[Arc::new(shop.clone())]);
        let token = k.path_token("acme");
        assert_eq!(routes.find(&format!("/{token}")).unwrap().shop, "acme");
        assert_eq!(
            routes.find(&format!("/tripletex/{token}")).unwrap().shop,
            "acme"
        );
        for bad in [
            "/",
            "/tripletex",
            &format!("/{token}/x"),
            &format!("/x/{token}"),
        ] {
            assert!(routes.find(bad).is_none(), "{bad}");
        }
        assert_eq!(k.wanted(&shop).len(), 4);
    }
}
