//! A tiny loopback HTTP receiver for webhook callbacks: records every request's headers and JSON
//! body and answers with a status the test can change.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One callback as received.
#[derive(Debug, Clone)]
pub struct Callback {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body as sent, for checking signatures.
    pub raw: Bytes,
}

pub struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Callback>>>,
    status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let task = tokio::spawn(serve(listener, received.clone(), status.clone()));
        Receiver {
            addr,
            received,
            status,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What every later callback is answered with.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Callback> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs until the receiver is dropped (the task is aborted then).
async fn serve(listener: TcpListener, received: Arc<Mutex<Vec<Callback>>>, status: Arc<AtomicU16>) {
    while let Ok((stream, _)) = listener.accept().await {
        let received = received.clone();
        let status = status.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let received = received.clone();
                let status = status.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let bytes = body.collect().await?.to_bytes();
                    received.lock().unwrap().push(Callback {
                        path: parts.uri.path().to_owned(),
                        headers: parts.headers,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                        raw: bytes,
                    });
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() =
                        StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                    Ok::<_, hyper::Error>(response)
                }
            });
            // A client hanging up mid-request is not the receiver's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
