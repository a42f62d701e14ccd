//! The ceiling for the home page benchmark: a minimal axum server that
//! answers every request with one fixed HTML body of the given size, so
//! `board`'s `GET /` can be compared with "axum doing nothing".
//!
//! ```text
//! cargo run --release -p board --example ceiling -- 87000 127.0.0.1:0 [FILE [HEADERS]]
//! ```
//! With `FILE`, the body is that file's contents (the board's own home
//! page, so compressed sizes match too). With `HEADERS` (a response head
//! as `curl -D` writes it), every response also carries those headers
//! (but `content-length`, `date`, `content-type` and `content-encoding`,
//! which the ceiling sets itself), so the same bytes go on the wire as
//! from the board: the ceiling for the response cache's own cost rather
//! than for the board's choice of security headers. `/gz` answers with the body
//! gzipped once at start (`Content-Encoding: gzip`), the ceiling for a
//! stored gzip variant; `/304` answers `304 Not Modified` with the same
//! extra headers and no body, the ceiling for a revalidation. Prints `listening on ADDRESS` once bound.

use std::io::Write as _;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;

const HTML: &str = "text/html; charset=utf-8";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(87_000);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let body = match args.next() {
        Some(file) => Bytes::from(std::fs::read(file)?),
        None => Bytes::from(
            "<!doctype html><p>ceiling</p>"
                .bytes()
                .chain(std::iter::repeat(b'x'))
                .take(size)
                .collect::<Vec<u8>>(),
        ),
    };
    let mut extra = HeaderMap::new();
    if let Some(file) = args.next() {
        for line in std::fs::read_to_string(file)?.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            if ["content-length", "date", "content-type", "content-encoding"].contains(&&*name) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.trim()),
            ) {
                extra.append(name, value);
            }
        }
    }
    let plain_extra = extra.clone();
    let not_modified_extra = extra.clone();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&body)?;
    let gzip = Bytes::from(encoder.finish()?);
    let app = Router::new()
        .route(
            "/",
            get(move || {
                let body = body.clone();
                let extra = plain_extra.clone();
                async move { ([(header::CONTENT_TYPE, HTML)], extra, body).into_response() }
            }),
        )
        .route(
            "/gz",
            get(move || {
                let gzip = gzip.clone();
                let extra = extra.clone();
                async move {
                    let headers = [
                        (header::CONTENT_TYPE, HTML),
                        (header::CONTENT_ENCODING, "gzip"),
                    ];
                    (headers, extra, gzip).into_response()
                }
            }),
        )
        .route(
            "/304",
            get(move || {
                let extra = not_modified_extra.clone();
                async move { (axum::http::StatusCode::NOT_MODIFIED, extra).into_response() }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
