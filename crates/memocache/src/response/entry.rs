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
    /// The encodings that may be made (enabled, the body big enough and of
    /// a compressible type).
    codings: Codings,
    /// Made on the first request that takes gzip, once per stored version
    /// (`None` if it came out no smaller): a version nobody asks gzip of,
    /// such as a page rendered for one flight's requests while the
    /// in-process tier is not trusted, is never compressed.
    gzip: OnceLock<Option<Variant>>,
    /// The same for brotli.
    br: OnceLock<Option<Variant>>,
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

/// Compresses a body; `None` if it cannot.
type Compressor = fn(&[u8]) -> Option<Bytes>;

/// Brotli at quality 6: close to quality 11's size on HTML, at a small
/// fraction of its time (compressed once per stored version, on a request).
fn brotli(body: &[u8]) -> Option<Bytes> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 6,
        lgwin: 22,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(body.len() / 4);
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
    Some(Bytes::from(out))
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// Adds `Accept-Encoding` to the response's `Vary`: to its one `Vary`
/// line when it has one (one header less on every answer), else as a new
/// line.
fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::VARY).iter();
    let merged = match (values.next(), values.next()) {
        (Some(one), None) => one
            .to_str()
            .ok()
            .and_then(|v| HeaderValue::from_str(&format!("{v}, Accept-Encoding")).ok()),
        _ => None,
    };
    match merged {
        Some(value) => {
            headers.insert(header::VARY, value);
        }
        None => {
            headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
    }
}

/// Copies the headers a 304 must repeat (RFC 9110, 15.4.5): not
/// `Last-Modified`, which a 304 should not repeat when it has an `ETag`,
/// and every stored answer has one.
fn not_modified_headers(full: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in [
        header::ETAG,
        header::VARY,
        header::CACHE_CONTROL,
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

/// What a header map holds, roughly: names, values, and 32 bytes of
/// bookkeeping per header.
fn headers_weight(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().len() + value.len() + 32) as u64)
        .sum()
}

/// What goes into building an entry.
pub(super) struct Parts<'a> {
    pub(super) response: &'a http::response::Parts,
    pub(super) request: &'a HeaderMap,
    pub(super) body: Bytes,
    pub(super) deps: Deps,
    pub(super) fresh_until: u64,
    pub(super) codings: Codings,
}

/// The content codings a layer may store next to the plain body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Codings {
    pub(super) gzip: bool,
    pub(super) br: bool,
}

impl Codings {
    pub(super) const NONE: Self = Self {
        gzip: false,
        br: false,
    };

    fn any(self) -> bool {
        self.gzip || self.br
    }
}

/// A content coding a client may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Coding {
    Gzip,
    Br,
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
        if parts.codings.any()
            && !vary_names(&base).any(|n| n.eq_ignore_ascii_case("accept-encoding"))
        {
            add_vary_accept_encoding(&mut base);
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
        let worth = parts.body.len() >= MIN_GZIP && compressible(&base);
        let codings = if worth { parts.codings } else { Codings::NONE };
        Self {
            status: parts.response.status,
            identity: variant(&base, parts.body, &format!("\"{hash:032x}\""), None),
            codings,
            gzip: OnceLock::new(),
            br: OnceLock::new(),
            hash,
            deps: parts.deps,
            fresh_until: parts.fresh_until,
            vary,
            last_modified,
        }
    }

    /// What this response weighs in a byte-bounded layer: its headers
    /// (twice: a 304's are kept apart) and body, and for each coding it
    /// may store later one more body's length and headers (a coding is
    /// kept only when smaller), so the weight it was stored with holds
    /// whatever is made afterwards.
    pub(super) fn weight(&self) -> u64 {
        let headers = headers_weight(&self.identity.headers);
        let one = 2 * headers + self.identity.body.len() as u64;
        let codings = u64::from(self.codings.gzip) + u64::from(self.codings.br);
        let vary: u64 = self
            .vary
            .iter()
            .map(|(name, value)| {
                (name.as_str().len() + value.as_ref().map_or(0, HeaderValue::len)) as u64
            })
            .sum();
        one * (1 + codings) + vary + std::mem::size_of::<Self>() as u64
    }

    /// The `coding` variant, made the first time it is asked for (`None`
    /// if it would be no smaller than the plain body).
    fn encoded(&self, coding: Coding) -> Option<&Variant> {
        let (cell, compress, name, suffix): (_, Compressor, _, _) = match coding {
            Coding::Gzip => (&self.gzip, gzip, "gzip", "gz"),
            Coding::Br => (&self.br, brotli, "br", "br"),
        };
        cell.get_or_init(|| {
            let identity = &self.identity;
            compress(&identity.body)
                .filter(|c| c.len() < identity.body.len())
                .map(|c| {
                    let etag = format!("\"{:032x}-{suffix}\"", self.hash);
                    variant(&identity.headers, c, &etag, Some(name))
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
        let variant = preferred(headers, self.codings)
            .and_then(|coding| self.encoded(coding))
            .unwrap_or(&self.identity);
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

/// The coding to send a client with `headers`, among those `offered`: the
/// one it gives the highest weight (`q`), brotli on a tie (smaller); none
/// if it takes neither (absent, or `q=0`). `*` stands for any coding not
/// named.
pub(super) fn preferred(headers: &HeaderMap, offered: Codings) -> Option<Coding> {
    if !offered.any() {
        return None;
    }
    let (mut gzip, mut br, mut any) = (None::<f32>, None::<f32>, None::<f32>);
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .find_map(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let slot = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if name.eq_ignore_ascii_case("br") {
            &mut br
        } else if name == "*" {
            &mut any
        } else {
            continue;
        };
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    let weight = |named: Option<f32>, on: bool| {
        if on {
            named.or(any).unwrap_or(0.0)
        } else {
            0.0
        }
    };
    let (gzip, br) = (weight(gzip, offered.gzip), weight(br, offered.br));
    if br > 0.0 && br >= gzip {
        Some(Coding::Br)
    } else if gzip > 0.0 {
        Some(Coding::Gzip)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
