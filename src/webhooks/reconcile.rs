//! Makes one shop's webhook subscriptions what [`Keys::wanted`] says, through its `ShopClient`.
//!
//! Ours are the token's subscriptions whose `authHeaderName` is [`AUTH_HEADER`]; others are
//! never touched. Per wanted event: none of ours → created; one with the right target and
//! fields → kept if `ACTIVE`, re-enabled (`webhooks.reenabled`, WARN) if Tripletex disabled it
//! (`DISABLED_MISUSE` cannot be lifted by a client: it stays, and the shop is degraded); one
//! with a wrong target or fields (e.g. after the secret or `public_url` changed) → updated in
//! place; extras and ours for events no longer wanted → deleted. One listing plus one request per
//! change, so a healthy shop costs one GET.

use std::collections::HashMap;

use super::{AUTH_HEADER, Keys};
use crate::config::ShopConfig;
use crate::tripletex::{ShopClient, Subscription, SubscriptionSpec, TripletexError};

/// What a reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// The shop's subscriptions now (id → event), disabled ones included.
    pub subscriptions: HashMap<i64, &'static str>,
    /// Subscriptions the shop should have, and how many of them are now ACTIVE.
    pub wanted: usize,
    pub active: usize,
    pub created: usize,
    pub reenabled: usize,
    pub replaced: usize,
    pub deleted: usize,
}

impl Reconciled {
    /// Every wanted subscription is active: push can be trusted (the pass interval may stretch).
    pub fn healthy(&self) -> bool {
        self.active == self.wanted
    }
}

const MISUSE: &str = "DISABLED_MISUSE";

/// Reconciles `shop`'s subscriptions.
pub async fn reconcile(
    client: &ShopClient,
    keys: &Keys,
    shop: &ShopConfig,
) -> Result<Reconciled, TripletexError> {
    let wanted = keys.wanted(shop);
    let mut ours: Vec<Subscription> = client
        .subscriptions()
        .await?
        .into_iter()
        .filter(is_ours)
        .collect();
    let mut done = Reconciled {
        wanted: wanted.len(),
        ..Reconciled::default()
    };
    for want in &wanted {
        // The best match first: right target and fields, then ACTIVE.
        ours.sort_by_key(|s| (s.event != want.event, !fits(s, want), s.status != "ACTIVE"));
        if ours.first().is_none_or(|s| s.event != want.event) {
            let id = client.create_subscription(want).await?;
            done.subscriptions.insert(id, want.event);
            done.created += 1;
            done.active += 1;
            continue;
        }
        let have = ours.remove(0);
        done.subscriptions.insert(have.id, want.event);
        if !fits(&have, want) {
            client
                .update_subscription(have.id, have.version, want)
                .await?;
            done.replaced += 1;
            done.active += 1;
        } else if have.status == "ACTIVE" {
            done.active += 1;
        } else if have.status == MISUSE {
            tracing::error!(
                event = "webhooks.misuse",
                shop = %shop.name,
                subscription = have.id,
                webhook = want.event,
                "Tripletex disabled this subscription for misuse; only Tripletex support can lift it"
            );
        } else {
            client
                .update_subscription(have.id, have.version, want)
                .await?;
            tracing::warn!(
                event = "webhooks.reenabled",
                shop = %shop.name,
                subscription = have.id,
                webhook = want.event,
                was = %have.status,
                "re-enabled a webhook subscription Tripletex had disabled"
            );
            done.reenabled += 1;
            done.active += 1;
        }
    }
    for extra in ours {
        client.delete_subscription(extra.id).await?;
        done.deleted += 1;
    }
    Ok(done)
}

/// Deletes every subscription of ours the token has (a removed or disabled shop); how many.
pub async fn remove(client: &ShopClient) -> Result<usize, TripletexError> {
    let ours: Vec<Subscription> = client
        .subscriptions()
        .await?
        .into_iter()
        .filter(is_ours)
        .collect();
    for s in &ours {
        client.delete_subscription(s.id).await?;
    }
    Ok(ours.len())
}

fn is_ours(s: &Subscription) -> bool {
    s.auth_header_name
        .as_deref()
        .is_some_and(|n| n.eq_ignore_ascii_case(AUTH_HEADER))
}

/// Same target and fields (the auth value is write-only: it follows the target, see [`Keys`]).
fn fits(have: &Subscription, want: &SubscriptionSpec) -> bool {
    have.target_url == want.target_url && have.fields.as_deref() == Some(want.fields)
}
