//! Shared test fixtures: a simulator on 127.0.0.1:0 with a manual clock and one company, session
//! helpers, the spec conformance checker (`spec.rs`) and a loopback webhook receiver
//! (`receiver.rs`).

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code, unused_imports)]

pub mod receiver;
pub mod spec;

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::{Client, Response};
use serde_json::{Value, json};
use tripletex_sim::{RunningSim, Simulator};
use tripletex_sync::clock::ManualClock;

pub use spec::{assert_conforms, assert_conforms_allowing_deprecated};

pub const CONSUMER: &str = "test-consumer-token-c4n4ry";
pub const EMPLOYEE: &str = "test-employee-token-c4n4ry";
pub const COMPANY: i64 = 4711;
pub const EMPLOYEE_ID: i64 = 7;
/// Noon in Oslo on a Tuesday in winter.
pub const START: &str = "2026-03-10T11:00:00Z";

pub struct Ctx {
    pub sim: Simulator,
    pub clock: Arc<ManualClock>,
    pub running: RunningSim,
    pub http: Client,
}

impl Ctx {
    pub async fn new() -> Ctx {
        let clock = ManualClock::new(START.parse().expect("start time"));
        let sim = Simulator::new(clock.clone());
        sim.add_consumer_token(CONSUMER);
        sim.add_company(COMPANY, "Testfirma AS", true);
        sim.add_employee_token(EMPLOYEE, COMPANY, EMPLOYEE_ID);
        let running = sim
            .start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind 127.0.0.1:0");
        Ctx {
            sim,
            clock,
            running,
            http: Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    /// `POST /token/session/:create`.
    pub async fn mint(&self, consumer: &str, employee: &str, date: &str) -> Response {
        self.http
            .post(self.url("/token/session/:create"))
            .json(&json!({"consumerToken": consumer, "employeeToken": employee, "expirationDate": date}))
            .send()
            .await
            .expect("mint request")
    }

    /// A live session token for the test employee, valid until 2026-03-20.
    pub async fn session(&self) -> String {
        let response = self.mint(CONSUMER, EMPLOYEE, "2026-03-20").await;
        assert_eq!(response.status(), 201);
        token_of(response).await
    }

    /// An authenticated GET with Basic `0:<token>`.
    pub async fn get(&self, token: &str, path_and_query: &str) -> Response {
        self.http
            .get(self.url(path_and_query))
            .basic_auth("0", Some(token))
            .send()
            .await
            .expect("GET request")
    }
}

pub async fn token_of(response: Response) -> String {
    let body: Value = response.json().await.expect("JSON body");
    body["value"]["token"]
        .as_str()
        .expect("value.token is a string")
        .to_owned()
}

/// Asserts an ApiError body with this status and code whose `requestId` equals the header.
pub async fn assert_api_error(response: Response, status: u16, code: u64) -> Value {
    assert_eq!(response.status(), status);
    let header = response
        .headers()
        .get("x-tlx-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-tlx-request-id");
    let body: Value = response.json().await.expect("ApiError JSON");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["requestId"], header.as_str());
    body
}
