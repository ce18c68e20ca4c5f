//! The one HTTP/1 accept loop of the workspace: the daemon's metrics endpoint, its webhook
//! receiver and the simulator all serve through it.
//!
//! Invariants: the loop and every connection it started end with the caller's cancellation token
//! (a connection in flight is shut down gracefully: the answer being written is finished, then it
//! closes); at most [`Limits::max_connections`] connections are served at once, more wait in the
//! kernel's listen backlog; a client that has not sent its headers within
//! [`Limits::header_timeout`] is dropped, so an idle socket cannot hold a slot for long; a failed
//! `accept` (usually out of file descriptors) is logged as `http.accept_failed` and backed off,
//! never spun on. Nothing a client sends is logged here.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long to wait after a failed `accept` before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What one endpoint allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The endpoint's name in log lines (`metrics`, `webhooks`, `sim`).
    pub name: &'static str,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also between keep-alive requests);
    /// `None` waits for ever (the simulator, whose clients are tests).
    pub header_timeout: Option<Duration>,
}

/// Accepts connections on `listener` until `cancel` fires, each served by `serve` (typically
/// [`serve_http1`] over a service) in a task of its own.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limits: Limits,
    cancel: CancellationToken,
    mut serve: F,
) where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = tokio::select! {
            () = cancel.cancelled() => return,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                // The semaphore is never closed.
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(event = "http.accept_failed", endpoint = limits.name, %error,
                        "cannot accept a connection; retrying shortly");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let connection = serve(stream);
        tokio::spawn(async move {
            let _slot = slot;
            connection.await;
        });
    }
}

/// Serves one HTTP/1 connection (keep-alive) until the client closes it or `cancel` fires, then
/// shuts it down gracefully. Errors are clients hanging up or timing out: nothing to act on.
pub async fn serve_http1<I, S>(
    io: I,
    service: S,
    header_timeout: Option<Duration>,
    cancel: &CancellationToken,
) where
    I: Read + Write + Unpin + 'static,
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    if let Some(timeout) = header_timeout {
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(timeout);
    }
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;

    use super::*;

    async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
    }

    async fn start(limits: Limits, cancel: &CancellationToken) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = cancel.clone();
        let task = tokio::spawn(accept_loop(
            listener,
            limits,
            cancel.clone(),
            move |stream| {
                let cancel = connections.clone();
                async move {
                    let io = TokioIo::new(stream);
                    serve_http1(io, service_fn(hello), limits.header_timeout, &cancel).await;
                }
            },
        ));
        (addr, task)
    }

    /// Sends one request on `stream` and reads until the body arrives (or the peer closes).
    async fn ask(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0; 512];
        while !answer.ends_with(b"hello") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(answer).unwrap()
    }

    const OPEN: Limits = Limits {
        name: "test",
        max_connections: 8,
        header_timeout: None,
    };

    #[tokio::test]
    async fn serves_keep_alive_requests_and_ends_with_the_token() {
        let cancel = CancellationToken::new();
        let (addr, task) = start(OPEN, &cancel).await;
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        assert!(ask(&mut stream).await.starts_with("HTTP/1.1 200"));
        assert!(ask(&mut stream).await.starts_with("HTTP/1.1 200"));
        cancel.cancel();
        task.await.unwrap();
        // The idle keep-alive connection was closed too.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_over_the_cap_waits_for_a_slot() {
        let cancel = CancellationToken::new();
        let one = Limits {
            max_connections: 1,
            ..OPEN
        };
        let (addr, _task) = start(one, &cancel).await;
        let mut first = TcpStream::connect(&addr).await.unwrap();
        assert!(ask(&mut first).await.starts_with("HTTP/1.1 200"));
        let mut second = TcpStream::connect(&addr).await.unwrap();
        let waiting = tokio::spawn(async move { ask(&mut second).await });
        // Paused time moves only once nothing else can: the second is not served meanwhile.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert!(waiting.await.unwrap().starts_with("HTTP/1.1 200"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_no_headers_is_dropped() {
        let cancel = CancellationToken::new();
        let strict = Limits {
            header_timeout: Some(Duration::from_secs(2)),
            ..OPEN
        };
        let (addr, _task) = start(strict, &cancel).await;
        let mut idle = TcpStream::connect(&addr).await.unwrap();
        let mut rest = Vec::new();
        // Ends (hyper answers 408 or just closes) instead of holding the slot for ever.
        idle.read_to_end(&mut rest).await.unwrap();
        let text = String::from_utf8_lossy(&rest);
        assert!(
            rest.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
}
