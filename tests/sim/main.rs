//! The simulator over real HTTP: sessions, auth, expiry at Oslo midnight, customers, invoices,
//! fields/sorting/paging, digests, rate limiting, access problems, injected faults (including
//! the answer-shaping ones: mutated envelopes, endless paging, huge bodies) and webhooks. Every
//! test ends by checking its requests against the real OpenAPI spec.

mod faults;
mod lists;
mod sessions;
mod subscriptions;
mod webhooks;

use serde_json::Value;

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

pub async fn values(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["count"].as_u64(),
        body["values"].as_array().map(|v| v.len() as u64)
    );
    body["values"].as_array().unwrap().clone()
}

pub fn numbers(values: &[Value], key: &str) -> Vec<u64> {
    values.iter().map(|v| v[key].as_u64().unwrap()).collect()
}
