//! The read-only status page, served beside `/metrics` and `/healthz` on `[metrics] listen`:
//! `/` (counts, the shops that need attention first, search, paging: [`index`]), `/shop/NAME`
//! (checks, session, push, headroom charts, verdict changes: [`shop`]) and `/status.json` (the
//! document `status --json` prints).
//!
//! Invariants: rendered from a [`Board`], the daemon's in-memory view that its passes update;
//! a request never reads the store. Every page is server-rendered HTML that needs no
//! JavaScript, loads nothing from outside, sets no cookie, escapes every outside text
//! (`html`), and is sent with a strict `Content-Security-Policy`, `nosniff`, `no-referrer` and
//! `no-store`. Nothing on it is a token or a URL with credentials: a board holds shop statuses,
//! which have no token, and the configuration refuses a base URL with credentials. The page has no authentication of its own: it is for the operator's
//! loopback or private port (docs/operating.md: an SSH tunnel or a reverse proxy with auth).

mod board;
mod chart;
mod html;
mod index;
mod shop;
#[cfg(test)]
mod tests;
mod trail;

pub use board::{Board, CheckGlance, Document, Glance, Tile};
pub use index::{PAGE, Query};
pub use trail::{CHANGES, Change, POINTS, Point, Trail};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Response, StatusCode, Uri};

use crate::status::View;

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// A page to send. `/status.json` is serialised only by [`Reply::into_response`], so a caller
/// that holds the board behind a lock lets it go first (at 100 000 shops the document is
/// ~100 MB).
pub struct Reply(Ready);

enum Ready {
    Page(Response<Full<Bytes>>),
    Document(Document),
}

impl Reply {
    pub fn into_response(self) -> Response<Full<Bytes>> {
        match self.0 {
            Ready::Page(response) => response,
            Ready::Document(document) => {
                let mut body = Vec::new();
                document.write_to(&mut body).expect("writing to memory");
                reply(StatusCode::OK, JSON, body.into())
            }
        }
    }
}

/// The page for `uri`, or `None` when the path is not one of the page's (`/metrics` and
/// `/healthz` are the endpoint's own). `board` is `None` until the daemon has read the store
/// once; `view` says when the page is rendered and when a check counts as stale.
pub fn respond(board: Option<&Board>, view: &View, uri: &Uri) -> Option<Reply> {
    let path = uri.path();
    let shop = path.strip_prefix("/shop/");
    if !matches!(path, "/" | "/status.json") && shop.is_none() {
        return None;
    }
    let Some(board) = board else {
        let body = html::shell(
            "tripletex-sync: starting",
            "<h1>tripletex-sync</h1><p>The daemon has not read its state yet; reload in a moment.</p>",
        );
        let starting = reply(StatusCode::SERVICE_UNAVAILABLE, HTML, body.into());
        return Some(Reply(Ready::Page(starting)));
    };
    let page = match (path, shop) {
        ("/status.json", _) => return Some(Reply(Ready::Document(board.document(view.now)))),
        (_, Some(name)) => {
            let found = html::url_decode(name).and_then(|name| board.find(&name));
            match found {
                Some(tile) => {
                    let body = shop::render(tile, view);
                    let title = format!("{}: tripletex-sync", tile.name());
                    reply(StatusCode::OK, HTML, html::shell(&title, &body).into())
                }
                None => {
                    let mut body = String::from(
                        "<p><a href=\"/\">← all shops</a></p><h1>No such shop</h1><p>No configured shop is called “",
                    );
                    html::text(&mut body, &html::url_decode(name).unwrap_or_default());
                    body.push_str("”.</p>");
                    let page = html::shell("No such shop: tripletex-sync", &body);
                    reply(StatusCode::NOT_FOUND, HTML, page.into())
                }
            }
        }
        _ => {
            let body = index::render(board, view, &Query::parse(uri.query()));
            reply(
                StatusCode::OK,
                HTML,
                html::shell("tripletex-sync", &body).into(),
            )
        }
    };
    Some(Reply(Ready::Page(page)))
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(html::csp()),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // What it shows changes with every pass, and nobody should keep it.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
