//! [`ResponseCache`]: the tower service the layer wraps around a view, and
//! the `Layer` glue. What it does with each request is the layer's request
//! path (`request.rs`).

use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::entry::Served;
use super::future::ResponseFuture;
use super::layer::ResponseCacheLayer;
use super::request::Plan;
use super::stats::Counter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service [`ResponseCacheLayer`] wraps around a route or router.
///
/// ```
/// use axum::{body::Body, http::Request};
/// use tower::Layer;
/// use memocache::{Cache, response::{ResponseCache, ResponseCacheLayer}};
///
/// let cache = Cache::memory();
/// let view = tower::service_fn(|_req: Request<Body>| async {
///     Ok::<_, std::convert::Infallible>(axum::http::Response::new(Body::from("hi")))
/// });
/// let service: ResponseCache<_> = ResponseCacheLayer::new(&cache).layer(view);
/// # drop(service);
/// ```
#[derive(Clone, Debug)]
pub struct ResponseCache<S> {
    inner: S,
    layer: ResponseCacheLayer,
}

impl<S> ResponseCache<S> {
    pub(super) fn new(inner: S, layer: ResponseCacheLayer) -> Self {
        Self { inner, layer }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ResponseCache<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let plan = self.layer.plan(&parts);
        if let Plan::Cache { key, forced: false } | Plan::Head { key } = plan {
            if let Some(entry) = self.layer.valid(key, &parts.headers) {
                if self.layer.fresh(&entry) {
                    let mut response = self.layer.answer(&entry, &parts.headers, Served::Hit);
                    if matches!(plan, Plan::Head { .. }) {
                        // The GET's headers (its length too), no body.
                        *response.body_mut() = Body::empty();
                    }
                    return ResponseFuture::ready(response);
                }
            }
        }
        // The ready service goes into the future; a clone stays for the
        // next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let request = Request::from_parts(parts, body);
        match plan {
            Plan::Bypass | Plan::Head { .. } => {
                self.layer.state.counters.bump(Counter::Bypass);
                ResponseFuture::running(Box::pin(async move {
                    let mut inner = inner;
                    let response = inner.call(request).await?;
                    Ok(response.map(Body::new))
                }))
            }
            Plan::Cache { key, forced } => {
                let layer = self.layer.clone();
                ResponseFuture::running(Box::pin(async move {
                    layer.miss(inner, request, key, forced).await
                }))
            }
        }
    }
}

impl<S> tower::Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCache::new(inner, self.clone())
    }
}
