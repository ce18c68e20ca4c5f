//! Accepting a raw `>` in the request target (`GET /v2/token/session/>whoAmI`), which Tripletex
//! paths contain but hyper's URI parser (the `http` crate) rejects with 400 before any service
//! sees the request.
//!
//! Invariants: only bytes of a request line are touched (`>` becomes `%3E`, which the router
//! decodes again); header and body bytes pass unchanged. Request boundaries on a keep-alive
//! connection are found by `Content-Length`; after a chunked body the rest of the connection is
//! passed through untouched rather than guessed at.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Enough of a header line to read `content-length` and `transfer-encoding`.
const KEPT_HEADER_BYTES: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    RequestLine,
    Headers { content_length: u64, chunked: bool },
    Body(u64),
    Passthrough,
}

/// A connection whose inbound request lines get `>` escaped.
#[derive(Debug)]
pub(crate) struct RawPathFix<S> {
    inner: S,
    state: State,
    header_line: Vec<u8>,
    pending: Vec<u8>,
    pending_from: usize,
}

impl<S> RawPathFix<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            state: State::RequestLine,
            header_line: Vec::new(),
            pending: Vec::new(),
            pending_from: 0,
        }
    }

    fn rewrite(&mut self, input: &[u8]) {
        for &byte in input {
            match self.state {
                State::RequestLine => {
                    if byte == b'>' {
                        self.pending.extend_from_slice(b"%3E");
                        continue;
                    }
                    if byte == b'\n' {
                        self.header_line.clear();
                        self.state = State::Headers {
                            content_length: 0,
                            chunked: false,
                        };
                    }
                }
                State::Headers {
                    content_length,
                    chunked,
                } if byte == b'\n' => self.state = self.end_header_line(content_length, chunked),
                State::Headers { .. } => {
                    if self.header_line.len() < KEPT_HEADER_BYTES {
                        self.header_line.push(byte);
                    }
                }
                State::Body(left) => {
                    self.state = if left <= 1 {
                        State::RequestLine
                    } else {
                        State::Body(left - 1)
                    };
                }
                State::Passthrough => {}
            }
            self.pending.push(byte);
        }
    }

    fn end_header_line(&mut self, content_length: u64, chunked: bool) -> State {
        let line = String::from_utf8_lossy(&self.header_line)
            .trim()
            .to_ascii_lowercase();
        self.header_line.clear();
        if line.is_empty() {
            return match (chunked, content_length) {
                (true, _) => State::Passthrough,
                (false, 0) => State::RequestLine,
                (false, length) => State::Body(length),
            };
        }
        let (name, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
        match name.trim() {
            "content-length" => State::Headers {
                content_length: value.trim().parse().unwrap_or(0),
                chunked,
            },
            "transfer-encoding" => State::Headers {
                content_length,
                chunked: value.contains("chunked"),
            },
            _ => State::Headers {
                content_length,
                chunked,
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RawPathFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending_from == this.pending.len() {
            this.pending.clear();
            this.pending_from = 0;
            let mut raw = [0u8; 8192];
            let mut raw_buf = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut raw_buf) {
                Poll::Ready(Ok(())) => this.rewrite(raw_buf.filled()),
                other => return other,
            }
        }
        let available = &this.pending[this.pending_from..];
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        this.pending_from += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RawPathFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(input: &str) -> String {
        let mut fix = RawPathFix::new(());
        fix.rewrite(input.as_bytes());
        String::from_utf8(fix.pending).unwrap()
    }

    #[test]
    fn escapes_only_request_lines_across_keep_alive() {
        let input = "POST /a>b HTTP/1.1\r\nContent-Length: 3\r\nX: >\r\n\r\n>>>GET /v2/x/>whoAmI HTTP/1.1\r\n\r\n";
        let expected = "POST /a%3Eb HTTP/1.1\r\nContent-Length: 3\r\nX: >\r\n\r\n>>>GET /v2/x/%3EwhoAmI HTTP/1.1\r\n\r\n";
        assert_eq!(rewritten(input), expected);
    }

    #[test]
    fn gives_up_after_a_chunked_body() {
        let input = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n>\r\n0\r\n\r\nGET /> HTTP/1.1\r\n";
        assert_eq!(rewritten(input), input);
    }
}
