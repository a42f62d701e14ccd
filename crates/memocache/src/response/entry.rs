//! A stored response: its encodings, built once, and how a request is
//! answered from it (negotiation, 304).

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use xxhash_rust::xxh3::xxh3_128;

use crate::deps::Deps;

/// Smallest body worth compressing.
const MIN_GZIP: usize = 256;

/// One stored encoding of a body, with every header prebuilt.
pub(super) struct Variant {
    headers: HeaderMap,
    /// Headers of a `304 Not Modified` for this variant.
    not_modified: HeaderMap,
    body: Bytes,
    etag: HeaderValue,
}

/// A cached response.
pub(super) struct Entry {
    status: StatusCode,
    identity: Variant,
    /// Whether a gzip variant may be made (enabled, big enough, a
    /// compressible type).
    gzip_eligible: bool,
    /// Made on the first request that takes gzip, once per stored version
    /// (`None` if it came out no smaller): a version nobody asks gzip of,
    /// such as a page rendered for one flight's requests while the
    /// in-process tier is not trusted, is never compressed.
    gzip: OnceLock<Option<Variant>>,
    /// The identity body's hash, which names both variants' ETags.
    hash: u128,
    pub(super) deps: Deps,
    /// Clock readings (ms): served as fresh until, kept for stale-if-error
    /// until.
    pub(super) fresh_until: u64,
    /// Request headers the response varies on, with the values it was
    /// made for.
    vary: Box<[(HeaderName, Option<HeaderValue>)]>,
    /// Seconds since the epoch, for `If-Modified-Since`.
    last_modified: u64,
}

/// How an answer was made, for the hit header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Served {
    Hit,
    Miss,
    Stale,
}

impl Served {
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
        })
    }
}

/// The `x-cache` header name.
pub(super) static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// What a response says about being stored, whatever the filter says.
pub(super) fn storable(parts: &http::response::Parts) -> bool {
    let headers = &parts.headers;
    if headers.contains_key(header::SET_COOKIE) {
        return false;
    }
    let private = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|d| {
            d.eq_ignore_ascii_case("private")
                || d.eq_ignore_ascii_case("no-store")
                || d.len() >= 8 && d[..8].eq_ignore_ascii_case("private=")
        });
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity");
    let vary_all = vary_names(headers).any(|n| n == "*");
    !private && !encoded && !vary_all
}

fn vary_names(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

fn compressible(headers: &HeaderMap) -> bool {
    let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let kind = kind.to_ascii_lowercase();
    kind.starts_with("text/")
        || ["json", "javascript", "xml", "svg"]
            .iter()
            .any(|k| kind.contains(k))
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// Copies the headers a 304 must repeat.
fn not_modified_headers(full: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in [
        header::ETAG,
        header::VARY,
        header::CACHE_CONTROL,
        header::LAST_MODIFIED,
        header::EXPIRES,
        header::CONTENT_LOCATION,
        header::DATE,
    ] {
        for value in full.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

fn variant(base: &HeaderMap, body: Bytes, etag: &str, encoding: Option<&'static str>) -> Variant {
    let mut headers = base.clone();
    let etag = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"0\""));
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    Variant {
        not_modified: not_modified_headers(&headers),
        headers,
        body,
        etag,
    }
}

/// What goes into building an entry.
pub(super) struct Parts<'a> {
    pub(super) response: &'a http::response::Parts,
    pub(super) request: &'a HeaderMap,
    pub(super) body: Bytes,
    pub(super) deps: Deps,
    pub(super) fresh_until: u64,
    pub(super) gzip: bool,
}

impl Entry {
    pub(super) fn build(parts: Parts<'_>) -> Self {
        let mut base = parts.response.headers.clone();
        for name in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::ETAG,
            header::CONTENT_ENCODING,
        ] {
            base.remove(name);
        }
        let vary: Box<[(HeaderName, Option<HeaderValue>)]> = vary_names(&base)
            .filter(|n| !n.eq_ignore_ascii_case("accept-encoding"))
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .map(|n| {
                let value = parts.request.get(&n).cloned();
                (n, value)
            })
            .collect();
        if parts.gzip && !vary_names(&base).any(|n| n.eq_ignore_ascii_case("accept-encoding")) {
            base.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        let now = SystemTime::now();
        let last_modified = match base
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        {
            Some(at) => at,
            None => {
                if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
                    base.insert(header::LAST_MODIFIED, value);
                }
                now
            }
        };
        let last_modified = last_modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let hash = xxh3_128(&parts.body);
        let gzip_eligible = parts.gzip && parts.body.len() >= MIN_GZIP && compressible(&base);
        Self {
            status: parts.response.status,
            identity: variant(&base, parts.body, &format!("\"{hash:032x}\""), None),
            gzip_eligible,
            gzip: OnceLock::new(),
            hash,
            deps: parts.deps,
            fresh_until: parts.fresh_until,
            vary,
            last_modified,
        }
    }

    /// The gzip variant, made the first time it is asked for.
    fn gzip_variant(&self) -> Option<&Variant> {
        if !self.gzip_eligible {
            return None;
        }
        self.gzip
            .get_or_init(|| {
                let identity = &self.identity;
                gzip(&identity.body)
                    .filter(|g| g.len() < identity.body.len())
                    .map(|g| {
                        let etag = format!("\"{:032x}-gz\"", self.hash);
                        variant(&identity.headers, g, &etag, Some("gzip"))
                    })
            })
            .as_ref()
    }

    /// Whether a request with `headers` gets this response.
    pub(super) fn vary_matches(&self, headers: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| headers.get(name) == value.as_ref())
    }

    /// The answer to a request with `headers`: the encoding it takes, or
    /// a 304 if it already has it.
    pub(super) fn respond(&self, headers: &HeaderMap, served: Option<Served>) -> Response<Body> {
        let variant = if self.gzip_eligible && accepts_gzip(headers) {
            self.gzip_variant().unwrap_or(&self.identity)
        } else {
            &self.identity
        };
        let (status, mut map, body) = if self.not_modified(variant, headers) {
            (
                StatusCode::NOT_MODIFIED,
                variant.not_modified.clone(),
                Body::empty(),
            )
        } else {
            (
                self.status,
                variant.headers.clone(),
                Body::from(variant.body.clone()),
            )
        };
        if let Some(served) = served {
            map.insert(X_CACHE.clone(), served.value());
        }
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = map;
        response
    }

    fn not_modified(&self, variant: &Variant, headers: &HeaderMap) -> bool {
        if self.status != StatusCode::OK {
            return false;
        }
        let mut tags = headers.get_all(header::IF_NONE_MATCH).iter().peekable();
        if tags.peek().is_some() {
            let ours = variant.etag.as_bytes();
            return tags
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == ours);
        }
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .is_some_and(|since| self.last_modified <= since.as_secs())
    }
}

/// True if the client takes gzip (`Accept-Encoding: gzip`, not `q=0`).
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_acceptance() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&headers)
        };
        assert!(with("gzip"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(with("*"));
        assert!(!with("br"));
        assert!(!with("gzip;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn gzip_is_made_once_and_only_when_asked_for() {
        let mut response = Response::new(());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        let (response, ()) = response.into_parts();
        let entry = Entry::build(Parts {
            response: &response,
            request: &HeaderMap::new(),
            body: Bytes::from("<p>hello</p>".repeat(100)),
            deps: Deps::default(),
            fresh_until: u64::MAX,
            gzip: true,
        });
        let identity = entry.respond(&HeaderMap::new(), None);
        assert!(identity.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(identity.headers()[header::VARY], "Accept-Encoding");
        assert!(entry.gzip.get().is_none(), "nobody asked for gzip yet");
        let mut takes_gzip = HeaderMap::new();
        takes_gzip.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let first = entry.respond(&takes_gzip, None);
        assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
        let made = entry
            .gzip
            .get()
            .and_then(Option::as_ref)
            .map(|v| v.body.as_ptr());
        let second = entry.respond(&takes_gzip, None);
        assert_eq!(
            second.headers()[header::ETAG],
            first.headers()[header::ETAG]
        );
        let again = entry
            .gzip
            .get()
            .and_then(Option::as_ref)
            .map(|v| v.body.as_ptr());
        assert_eq!(made, again, "compressed once, served from then on");
    }

    #[test]
    fn private_cookies_and_encoded_bodies_are_not_storable() {
        let parts = |name: HeaderName, value: &'static str| {
            let mut response = Response::new(());
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
            response.into_parts().0
        };
        assert!(!storable(&parts(header::SET_COOKIE, "a=b")));
        assert!(!storable(&parts(
            header::CACHE_CONTROL,
            "private, max-age=5"
        )));
        assert!(!storable(&parts(header::CACHE_CONTROL, "no-store")));
        assert!(!storable(&parts(header::CONTENT_ENCODING, "br")));
        assert!(!storable(&parts(header::VARY, "*")));
        assert!(storable(&parts(header::CACHE_CONTROL, "no-cache")));
    }
}
