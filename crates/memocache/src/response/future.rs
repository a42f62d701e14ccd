//! [`ResponseFuture`]: a hit is ready at once; anything else runs boxed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use http::Response;

type Boxed<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

/// The future of [`ResponseCache`](super::ResponseCache). A hit is answered
/// without a boxed future (the response is the only allocation); a miss or
/// a bypass runs the view.
///
/// ```
/// use axum::{body::Body, http::Request};
/// use tower::{Layer, Service, ServiceExt};
/// use memocache::{Cache, response::{ResponseCacheLayer, ResponseFuture}};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::memory();
/// let view = tower::service_fn(|_req: Request<Body>| async {
///     Ok::<_, std::convert::Infallible>(axum::http::Response::new(Body::from("hi")))
/// });
/// let mut service = ResponseCacheLayer::new(&cache).layer(view);
/// let future: ResponseFuture<std::convert::Infallible> =
///     service.ready().await.unwrap().call(Request::new(Body::empty()));
/// assert_eq!(future.await.unwrap().status(), 200);
/// # }
/// ```
pub struct ResponseFuture<E> {
    state: State<E>,
}

enum State<E> {
    Ready(Option<Response<Body>>),
    Running(Boxed<E>),
}

impl<E> ResponseFuture<E> {
    pub(super) fn ready(response: Response<Body>) -> Self {
        Self {
            state: State::Ready(Some(response)),
        }
    }

    pub(super) fn running(future: Boxed<E>) -> Self {
        Self {
            state: State::Running(future),
        }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both states are Unpin (an Option and a Box).
        let this = self.get_mut();
        match &mut this.state {
            State::Ready(response) => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            State::Running(future) => future.as_mut().poll(cx),
        }
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Running(_) => "running",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
