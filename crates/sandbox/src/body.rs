//! Response bodies that hold something (a connection slot, an in-flight count) until the last
//! byte has been handed to the server, and bodies that arrive late, are cut short or are huge.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// A body that drops `guard` as soon as its last frame has been produced (or it fails or is
/// dropped), which is before the client can have read its end: a peer that sees the answer
/// complete always finds the guard released.
struct Held<G> {
    inner: Body,
    guard: Option<G>,
}

impl<G: Send + Unpin + 'static> http_body::Body for Held<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.guard = None,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.guard = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `response` with `guard` held until its body has been sent whole.
pub(crate) fn hold_until_sent<G: Send + Unpin + 'static>(response: Response, guard: G) -> Response {
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Held {
            inner: body,
            guard: Some(guard),
        }),
    )
}

/// `response` whose body starts `delay` after its headers (as a large answer over a slow link).
pub(crate) async fn delay_body(response: Response, delay: Duration) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let stream = futures::stream::once(async move {
        tokio::time::sleep(delay).await;
        Ok::<_, Infallible>(bytes)
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// A body that sends `prefix` and then breaks the connection (a reset mid-answer).
pub(crate) fn cut_short(prefix: &'static str) -> Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(prefix.as_bytes())),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        )),
    ];
    Body::from_stream(futures::stream::iter(chunks))
}

/// A JSON-looking body of `bytes` bytes, streamed in chunks (never held whole in memory).
pub(crate) fn huge(bytes: u64) -> Body {
    const CHUNK: usize = 64 * 1024;
    let head = Bytes::from_static(b"{\"data\": [");
    let filler = Bytes::from(vec![b' '; CHUNK]);
    let mut left = bytes.saturating_sub(head.len() as u64);
    let mut chunks = vec![head];
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        chunks.push(filler.slice(..n));
        left -= n as u64;
    }
    Body::from_stream(futures::stream::iter(
        chunks.into_iter().map(Ok::<_, Infallible>),
    ))
}
