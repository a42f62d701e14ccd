//! Who the client is and how it reached us: [`ClientIp`] for rate limits,
//! HSTS for requests that came over HTTPS.
//!
//! The layer runs on every request, a page-cache hit included, so it is a
//! plain tower service rather than `axum::middleware::from_fn` (which
//! boxes the rest of the stack and its future on every call).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::FutureExt as _;
use futures_util::future::{Either, Map};

use crate::net::TrustedProxies;

/// The client's address, for rate limits: the TCP peer, or what a trusted
/// proxy forwarded (see [`crate::net`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let resolved = parts.extensions.get::<ClientIp>().copied();
        Ok(resolved.unwrap_or_else(|| {
            Self(
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip().to_canonical()),
            )
        }))
    }
}

/// Resolves the client's address once per request (for [`ClientIp`]) and
/// sends HSTS when the board is served over HTTPS: always with
/// `--secure-cookies`, else when a trusted proxy says the request came
/// over HTTPS (as Talisman did by default).
#[derive(Clone)]
pub(super) struct ClientLayer {
    pub(super) proxies: Arc<TrustedProxies>,
    pub(super) hsts_always: bool,
}

impl<S> tower::Layer<S> for ClientLayer {
    type Service = Client<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Client {
            inner,
            edge: self.clone(),
        }
    }
}

/// The service of [`ClientLayer`].
#[derive(Clone)]
pub struct Client<S> {
    inner: S,
    edge: ClientLayer,
}

type Answer = Result<Response, Infallible>;

fn with_hsts(answer: Answer) -> Answer {
    answer.map(|mut response| {
        response
            .headers_mut()
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static(
                "max-age=31536000; includeSubDomains",
            ));
        response
    })
}

impl<S> tower::Service<Request> for Client<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Map<S::Future, fn(Answer) -> Answer>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let edge = &self.edge;
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let https = edge.hsts_always
            || peer.is_some_and(|peer| edge.proxies.forwarded_https(peer, request.headers()));
        if let Some(peer) = peer {
            let client = edge.proxies.client_ip(peer, request.headers());
            request.extensions_mut().insert(ClientIp(client));
        }
        let answer = self.inner.call(request);
        if https {
            Either::Right(answer.map(with_hsts as fn(Answer) -> Answer))
        } else {
            Either::Left(answer)
        }
    }
}
