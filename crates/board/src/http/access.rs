//! The request log: one `INFO` line per request (method, path, status,
//! latency), a page-cache hit included.
//!
//! The path is logged without its query (a sign-in callback's carries the
//! provider's one-time code and state) and cut to [`MAX_LOGGED_PATH`]
//! bytes: the client chooses it, and lines wait in a queue bounded in
//! lines, not bytes (see [`crate::telemetry`]).
//!
//! A plain event rather than `tower_http`'s request span around the whole
//! stack: a span is created, formatted, entered on every poll and closed
//! for each request, which at the default log level cost a cached page
//! more than the page cache itself. The span still wraps the routes (see
//! [`super::app`]), so what a view logs carries its request; only a hit,
//! which logs nothing else, goes without one.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Method, Request, Response, Uri};
use pin_project_lite::pin_project;

/// The request log's target, for `RUST_LOG` (`board::access=warn` turns
/// it off and keeps the rest).
pub(super) const TARGET: &str = "board::access";

/// Longest path, in bytes, a log line carries.
pub(super) const MAX_LOGGED_PATH: usize = 256;

/// `uri`'s path as log lines show it: no query, at most
/// [`MAX_LOGGED_PATH`] bytes (then `…`).
pub(super) fn logged_path(uri: &Uri) -> Cow<'_, str> {
    let path = uri.path();
    if path.len() <= MAX_LOGGED_PATH {
        return Cow::Borrowed(path);
    }
    let mut end = MAX_LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &path[..end]))
}

/// Logs each request when its response head is ready.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct AccessLogLayer;

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
}

/// What the line needs from the request.
#[derive(Debug)]
struct Pending {
    method: Method,
    uri: Uri,
    start: Instant,
}

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for AccessLog<S>
where
    S: tower::Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AccessFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let pending = tracing::enabled!(target: TARGET, tracing::Level::INFO).then(|| Pending {
            method: request.method().clone(),
            uri: request.uri().clone(),
            start: Instant::now(),
        });
        AccessFuture {
            inner: self.inner.call(request),
            pending,
        }
    }
}

pin_project! {
    /// The future of [`AccessLog`].
    pub struct AccessFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, ResB, E> Future for AccessFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Some(Pending { method, uri, start }) = this.pending.take() {
            match &output {
                Ok(response) => tracing::info!(
                    target: TARGET,
                    %method,
                    path = %logged_path(&uri),
                    status = response.status().as_u16(),
                    latency_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "request"
                ),
                Err(_) => tracing::info!(
                    target: TARGET,
                    %method,
                    path = %logged_path(&uri),
                    "request failed"
                ),
            }
        }
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use parking_lot::Mutex;
    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    /// A log writer tests can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn logged(filter: &str, uri: &str) -> (Option<String>, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let inner = tower::service_fn(|request: Request<String>| async move {
            let mut response = Response::new(request.into_body());
            *response.status_mut() = axum::http::StatusCode::CREATED;
            Ok::<_, Infallible>(response)
        });
        let request = Request::post(uri)
            .body("body".to_string())
            .expect("request");
        let response = AccessLogLayer.layer(inner).oneshot(request).await;
        let body = response.map(Response::into_body).ok();
        let log = String::from_utf8_lossy(&captured.0.lock()).into_owned();
        (body, log)
    }

    #[tokio::test]
    async fn each_request_gets_one_line_and_its_response_is_untouched() {
        let (body, log) = logged("info", "/post?x=1").await;
        assert_eq!(body.as_deref(), Some("body"));
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(
            log.contains("request method=POST path=/post status=201 latency_ms="),
            "{log}"
        );
    }

    #[tokio::test]
    async fn a_query_is_never_logged_and_a_long_path_is_cut() {
        let (_, log) = logged("info", "/auth/oidc/x/callback?code=SECRET&state=S").await;
        assert!(log.contains("path=/auth/oidc/x/callback "), "{log}");
        assert!(!log.contains("SECRET"), "{log}");
        let long = format!("/{}", "a".repeat(60_000));
        let (_, log) = logged("info", &long).await;
        assert_eq!(log.lines().count(), 1);
        assert!(log.len() < MAX_LOGGED_PATH + 200, "{} bytes", log.len());
        assert!(log.contains(&format!("path=/{}… ", "a".repeat(MAX_LOGGED_PATH - 1))));
    }

    #[tokio::test]
    async fn the_line_follows_rust_log() {
        let (body, log) = logged("info,board::access=warn", "/post?x=1").await;
        assert_eq!(body.as_deref(), Some("body"));
        assert_eq!(log, "");
    }
}
