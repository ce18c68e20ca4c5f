//! Reading Tripletex's answers: a body within a size limit, counted on the wire and after
//! decompression; an `ApiError` body; a transport error as text without its URL.
//!
//! Invariants: a body is read as a stream with a running count, never with an unbounded
//! `.bytes()`/`.json()`; a `Content-Length` above the limit is refused before any byte is read;
//! gzip is decoded here (reqwest's own decoding is off, so the compressed size stays visible) in
//! slices small enough that one slice cannot inflate far past the limit; an unknown
//! `Content-Encoding` is refused rather than guessed at; a reqwest error loses its URL before it
//! becomes text, since a URL can carry a session token.

use std::io::Write as _;

use flate2::write::MultiGzDecoder;
use reqwest::Response;
use reqwest::header::CONTENT_ENCODING;
use serde::de::DeserializeOwned;

use super::error::TripletexError;
use super::model::ApiError;

/// Compressed input fed to the decoder at once: deflate expands at most ~1032:1, so one slice
/// adds at most ~1 MiB past the limit before it is noticed.
const SLICE: usize = 1024;

/// The whole body of `resp`, decompressed, or [`TripletexError::TooLarge`] once either the bytes
/// on the wire or the decoded bytes pass `limit`.
pub(super) async fn read_limited(
    mut resp: Response,
    limit: usize,
) -> Result<Vec<u8>, TripletexError> {
    let too_large = || TripletexError::TooLarge {
        limit: limit as u64,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut sink = match resp.headers().get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => Sink::Plain(Vec::new()),
        Some(v) if v.eq_ignore_ascii_case(b"identity") => Sink::Plain(Vec::new()),
        Some(v) if v.eq_ignore_ascii_case(b"gzip") => {
            Sink::Gzip(Box::new(MultiGzDecoder::new(Vec::new())))
        }
        Some(other) => {
            return Err(TripletexError::Decode(format!(
                "unsupported Content-Encoding {:?}",
                String::from_utf8_lossy(other)
            )));
        }
    };
    let mut wire = 0usize;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| TripletexError::Unavailable(transport_error(e)))?
    {
        wire = wire.saturating_add(chunk.len());
        if wire > limit {
            return Err(too_large());
        }
        match &mut sink {
            Sink::Plain(out) => out.extend_from_slice(&chunk),
            Sink::Gzip(decoder) => {
                for slice in chunk.chunks(SLICE) {
                    decoder.write_all(slice).map_err(gzip_error)?;
                    if decoder.get_ref().len() > limit {
                        return Err(too_large());
                    }
                }
            }
        }
    }
    let body = match sink {
        Sink::Plain(out) => out,
        Sink::Gzip(decoder) => decoder.finish().map_err(gzip_error)?,
    };
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

enum Sink {
    Plain(Vec<u8>),
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
}

fn gzip_error(e: std::io::Error) -> TripletexError {
    TripletexError::Decode(format!("bad gzip body: {e}"))
}

/// Tripletex's `ApiError` bodies are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The error body, or an empty one when it is missing, unreadable or too large.
pub(super) async fn api_error(resp: Response) -> ApiError {
    read_limited(resp, MAX_ERROR_BODY)
        .await
        .ok()
        .and_then(|body| serde_json::from_slice(&body).ok())
        .unwrap_or_default()
}

/// A single-object answer (`{"value": …}`), within the body limit.
pub(super) async fn read_json<T: DeserializeOwned>(
    resp: Response,
    limit: usize,
) -> Result<T, TripletexError> {
    let bytes = read_limited(resp, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| TripletexError::Decode(e.to_string()))
}

/// A reqwest error as text with its causes (timeout, refused, TLS…), never its URL: a URL can
/// carry a session token (`DELETE /token/session/{token}`).
pub(super) fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: Vec<u8>, headers: &[(&str, &str)]) -> Response {
        let mut builder = hyper::Response::builder().status(200);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        Response::from(builder.body(body).unwrap())
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_plain_or_gzipped() {
        let plain = read_limited(response(b"{}".to_vec(), &[]), 16)
            .await
            .unwrap();
        assert_eq!(plain, b"{}");
        let zipped = gzip(b"{\"values\":[]}");
        let decoded = read_limited(response(zipped, &[("content-encoding", "gzip")]), 64)
            .await
            .unwrap();
        assert_eq!(decoded, b"{\"values\":[]}");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let resp = response(vec![b' '; 100], &[("content-length", "100")]);
        let err = read_limited(resp, 99).await.unwrap_err();
        assert!(
            matches!(err, TripletexError::TooLarge { limit: 99 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_small_gzip_that_inflates_past_the_limit_is_refused() {
        let bomb = gzip(&vec![b' '; 8 << 20]);
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let resp = response(bomb, &[("content-encoding", "gzip")]);
        let err = read_limited(resp, 1 << 20).await.unwrap_err();
        assert!(matches!(err, TripletexError::TooLarge { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Tripletex sent an answer larger than 1 MiB; refused"
        );
    }

    #[tokio::test]
    async fn an_unknown_encoding_is_refused_not_guessed() {
        let resp = response(b"{}".to_vec(), &[("content-encoding", "br")]);
        let err = read_limited(resp, 16).await.unwrap_err();
        assert!(err.to_string().contains("Content-Encoding"), "{err}");
    }
}
