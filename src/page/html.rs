//! HTML for the status page: escaping, links, the page shell (one inline stylesheet, allowed by
//! its hash in the `Content-Security-Policy`) and the small pieces both pages share.
//!
//! Invariants: every text that comes from outside (shop names come from file names, summaries
//! and fixes from Tripletex data, the search query from the request) goes into the page through
//! [`text`] or [`url_component`], never raw; the page loads nothing (no scripts, no outside
//! assets, no cookies), and its only style is [`STYLE`], whose hash [`csp`] allows.

use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;

use crate::checks::Verdict;
use crate::status::Attention;

/// The page's only stylesheet. Changing it changes its hash in the CSP, nothing else to do.
const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;padding:.5rem 1rem;max-width:70rem;color:#222}\
h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;vertical-align:top;padding:.3rem .4rem;border-bottom:1px solid #ddd}\
.v{display:inline-block;min-width:4.5rem;padding:0 .3rem;border-radius:.2rem;font-weight:600;text-align:center}\
.conflict,.key-rejected{background:#c62828;color:#fff}.error{background:#6a1b9a;color:#fff}\
.warn,.stale{background:#f9a825}.ok{background:#2e7d32;color:#fff}.unknown,.disabled{background:#bbb}\
.fix{background:#fff3e0;padding:.2rem .4rem;margin:.2rem 0}.muted{color:#666}.alert{background:#ffebee;padding:.5rem}\
.counts span{margin-right:1rem;white-space:nowrap}form{margin:1rem 0}input{font-size:1rem;max-width:60%}\
svg{max-width:100%;height:auto;background:#fafafa;border:1px solid #ddd}\
@media(max-width:40rem){td,th{display:block;border:0}tr{display:block;border-bottom:1px solid #ddd}}";

/// The page's `Content-Security-Policy`: nothing loads, no script runs, only [`STYLE`] applies;
/// the search form submits to the page itself; no other site may frame it.
pub fn csp() -> &'static str {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, STYLE.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; form-action 'self'; \
             base-uri 'none'; frame-ancestors 'none'"
        )
    });
    &CSP
}

/// A whole page: `title` (escaped here) and `body` (already HTML).
pub fn shell(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + STYLE.len() + 400);
    out.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    // An empty icon: else the browser asks for /favicon.ico (a 404 in its console).
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\"><link rel=\"icon\" href=\"data:,\"><title>");
    text(&mut out, title);
    out.push_str("</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n");
    out.push_str(body);
    out.push_str("\n</body></html>\n");
    out
}

/// Appends `s` escaped for HTML text and attribute values.
pub fn text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Appends `s` percent-encoded for a path segment or query value (only unreserved characters
/// stay), which is also safe inside an HTML attribute.
pub fn url_component(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decodes `%XX` (and `+` as a space, as forms send it); `None` when a `%` is not followed
/// by two hex digits or the result is not UTF-8.
pub fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A moment as people read it: to the second, in UTC ("2026-12-06 10:00:00 UTC").
pub fn time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A verdict badge.
pub fn verdict(out: &mut String, v: Verdict) {
    let _ = write!(out, "<span class=\"v {0}\">{0}</span>", v.as_str());
}

/// A badge for what a shop or check needs.
pub fn attention(out: &mut String, a: Attention) {
    let class = a.label().replace(' ', "-");
    let _ = write!(out, "<span class=\"v {class}\">{}</span>", a.label());
}

/// A link to a shop's page, its name as the text.
pub fn shop_link(out: &mut String, name: &str) {
    out.push_str("<a href=\"/shop/");
    url_component(out, name);
    out.push_str("\">");
    text(out, name);
    out.push_str("</a>");
}
