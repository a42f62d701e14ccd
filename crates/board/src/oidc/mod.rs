//! Sign in with Google (or any OpenID Connect provider): the Authorization
//! Code flow with PKCE, `state` and `nonce`, through the `openidconnect`
//! crate (no JWT or signature code here).
//!
//! One job: turn a provider's answer into a verified identity (issuer and
//! `sub`). Which board user that identity is, and the account writes, are
//! the data layer's (`data::oidc`); the routes are `http::oidc`.
//!
//! # The flow
//!
//! 1. `GET /auth/oidc/{provider}/login` ([`begin`]): the provider's
//!    metadata comes from the `oidc_discovery` and `oidc_jwks` memos (see
//!    [`crate::data`]), never fetched per login; a fresh `state`, `nonce`
//!    and PKCE verifier go into a signed, short-lived cookie
//!    ([`LoginState`]), and the browser is sent to the provider.
//! 2. The provider sends the browser back to
//!    `/auth/oidc/{provider}/callback` ([`finish`]), on whichever instance
//!    of a fleet: everything needed is in the cookie. `state` must equal
//!    the cookie's (constant time), the code is exchanged with the PKCE
//!    verifier and the client secret, and the ID token is checked by the
//!    crate: signature (against the memoized JWKS; on an unknown `kid` the
//!    JWKS is fetched again, once, so key rotation needs no restart),
//!    issuer, audience, expiry and nonce.
//! 3. The account is the provider's `sub` (with its issuer), never the
//!    e-mail: the data layer maps it to a board user, making one on first
//!    sign-in.
//!
//! # Bounds
//!
//! Every call to a provider has a 10 s timeout, follows no redirects and
//! reads at most [`MAX_RESPONSE`] bytes. The login cookie is at most
//! [`MAX_STATE_COOKIE`] bytes and lives [`STATE_LIFETIME`]. A failure at
//! any step changes nothing: no user, identity or session is written.

mod state;

use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
};
use secrecy::{ExposeSecret, SecretString};

pub use state::{LoginState, MAX_STATE_COOKIE, STATE_COOKIE, STATE_LIFETIME, StateKey};

/// Largest response read from a provider (discovery, JWKS, token), bytes.
pub const MAX_RESPONSE: usize = 256 * 1024;
/// Timeout of one call to a provider.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One configured provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The URL segment: the display name in lower case, letters and digits
    /// only (`Google` → `google`).
    pub slug: String,
    /// What the button says: "Sign in with {display}".
    pub display: String,
    /// The issuer, e.g. `https://accounts.google.com`.
    pub issuer: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: SecretString,
    /// The redirect URL registered at the provider; when absent, the
    /// request's own origin + `/auth/oidc/{slug}/callback`.
    pub redirect_url: Option<String>,
}

impl Provider {
    /// The slug of a display name: ASCII letters and digits, lower case.
    ///
    /// ```
    /// assert_eq!(board::oidc::Provider::slug_of("Google"), "google");
    /// assert_eq!(board::oidc::Provider::slug_of("My IdP!"), "myidp");
    /// ```
    pub fn slug_of(display: &str) -> String {
        display
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// The configured providers, the HTTP client and the cookie key.
pub struct Oidc {
    providers: Vec<Provider>,
    http: reqwest::Client,
    key: StateKey,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// Providers from the `--oidc-*` flags, position by position.
    ///
    /// # Errors
    /// A message when the lists differ in length, a slug repeats or is
    /// empty, or a URL is malformed.
    pub fn new(providers: Vec<Provider>, secret: &SecretString) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        for p in &providers {
            if p.slug.is_empty() || !seen.insert(p.slug.clone()) {
                return Err(format!(
                    "--oidc-name `{}` must be unique and contain a letter or digit",
                    p.display
                ));
            }
            IssuerUrl::new(p.issuer.clone())
                .map_err(|e| format!("--oidc-issuer `{}`: {e}", p.issuer))?;
            if let Some(url) = &p.redirect_url {
                RedirectUrl::new(url.clone())
                    .map_err(|e| format!("--oidc-redirect-url `{url}`: {e}"))?;
            }
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            providers,
            http,
            key: StateKey::new(secret),
        })
    }

    /// The providers, in flag order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The provider whose slug is `slug`.
    pub fn provider(&self, slug: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.slug == slug)
    }

    /// The login cookie's key.
    pub fn key(&self) -> &StateKey {
        &self.key
    }

    /// `GET url`, at most [`MAX_RESPONSE`] bytes, with the lifetime its
    /// `Cache-Control: max-age` gives (clamped, see [`lifetime`]).
    ///
    /// # Errors
    /// [`OidcError::ProviderDown`] when the provider cannot be reached,
    /// answers other than 200, or sends too much.
    pub async fn get_document(&self, url: &str) -> Result<(String, Duration), OidcError> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| OidcError::ProviderDown(format!("{url}: {e}")))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(OidcError::ProviderDown(format!(
                "{url}: HTTP {}",
                response.status()
            )));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = read_bounded(response)
            .await
            .map_err(|e| OidcError::ProviderDown(format!("{url}: {e}")))?;
        let body = String::from_utf8(body)
            .map_err(|_| OidcError::ProviderDown(format!("{url}: not UTF-8")))?;
        Ok((body, lifetime(max_age)))
    }

    /// One call of the token exchange, bounded like every other.
    async fn exchange(
        &self,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, HttpFailure> {
        let request =
            reqwest::Request::try_from(request).map_err(|e| HttpFailure(e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| HttpFailure(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_bounded(response).await.map_err(HttpFailure)?;
        let mut out = openidconnect::HttpResponse::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// The token exchange's HTTP client: [`Oidc`]'s, bounded.
struct Exchange<'a>(&'a Oidc);

impl<'c> openidconnect::AsyncHttpClient<'c> for Exchange<'_> {
    type Error = HttpFailure;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpFailure>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.0.exchange(request))
    }
}

/// A failed HTTP call during the token exchange.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpFailure(String);

/// Reads a body of at most [`MAX_RESPONSE`] bytes.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE as u64)
    {
        return Err(format!("response larger than {MAX_RESPONSE} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(format!("response larger than {MAX_RESPONSE} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `max-age` of a `Cache-Control` value, if it has one (and no
/// `no-store` or `no-cache`, which count as 0).
///
/// ```
/// use board::oidc::max_age;
/// assert_eq!(max_age("public, max-age=3600, must-revalidate"), Some(3600));
/// assert_eq!(max_age("no-store"), Some(0));
/// assert_eq!(max_age("private"), None);
/// ```
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut found = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(value) = lower.strip_prefix("max-age=") {
            found = value.trim_matches('"').parse().ok();
        }
    }
    found
}

/// Shortest time a discovery or JWKS document is kept, whatever the
/// provider says: a provider sending `no-store` must not be asked on
/// every login.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest time one is kept (and the lifetime without `max-age`).
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Lifetime when the provider gives none.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The lifetime of a document whose `max-age` is `max_age` seconds.
///
/// ```
/// use std::time::Duration;
/// use board::oidc::lifetime;
/// assert_eq!(lifetime(Some(300)), Duration::from_secs(300));
/// assert_eq!(lifetime(Some(0)), Duration::from_secs(60));
/// assert_eq!(lifetime(None), Duration::from_secs(3600));
/// ```
pub fn lifetime(max_age: Option<u64>) -> Duration {
    max_age
        .map_or(DEFAULT_LIFETIME, Duration::from_secs)
        .clamp(MIN_LIFETIME, MAX_LIFETIME)
}

/// Why a sign-in did not happen; each has its own page.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// No provider has this slug.
    #[error("no such sign-in provider")]
    UnknownProvider,
    /// The provider could not be reached or answered nonsense.
    #[error("the sign-in provider could not be reached: {0}")]
    ProviderDown(String),
    /// The user said no at the provider (`error=access_denied`).
    #[error("sign-in was cancelled")]
    Cancelled,
    /// The provider reported another error on the redirect.
    #[error("the provider refused the sign-in: {0}")]
    ProviderRefused(String),
    /// No login cookie, or a forged, expired or foreign one.
    #[error("the sign-in was not started here or took too long")]
    NoLoginState,
    /// `state` differs from the cookie's.
    #[error("the sign-in answer does not belong to this browser's sign-in")]
    StateMismatch,
    /// The token endpoint refused the code (replayed, expired, wrong PKCE).
    #[error("the provider refused the sign-in code: {0}")]
    CodeRefused(String),
    /// The ID token failed a check (signature, issuer, audience, expiry,
    /// nonce) or was missing.
    #[error("the provider's identity token was rejected: {0}")]
    BadToken(String),
}

/// What [`begin`] hands the handler: where to send the browser and the
/// cookie to set.
#[derive(Debug)]
pub struct Redirect {
    /// The provider's authorization URL.
    pub url: String,
    /// The sealed [`LoginState`].
    pub cookie: String,
}

/// A checked sign-in: who the provider says this is.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The provider's issuer.
    pub issuer: String,
    /// The provider's stable subject id.
    pub subject: String,
    /// A name to derive a user name from (preferred username, name or the
    /// e-mail's local part), if any.
    pub name_hint: Option<String>,
    /// The login state that led here (return-to, link-to).
    pub state: LoginState,
}

/// A client made from discovery: authorization URL set, token and
/// userinfo endpoints as the document says.
type ProviderClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Which provider document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcDocument {
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// The key set at the discovery document's `jwks_uri`.
    Jwks,
}

/// Where the sign-in flow gets a provider's documents: the data layer's
/// memos (single-flight, fleet-wide, kept for the documents' lifetimes),
/// fetched with [`Oidc::get_document`] on a miss.
pub trait Documents: Sync {
    /// The document `kind` at `url`.
    fn document(
        &self,
        oidc: &Oidc,
        kind: OidcDocument,
        url: &str,
        now_ms: i64,
    ) -> impl std::future::Future<Output = Result<String, OidcError>> + Send;

    /// Forgets the key set at `jwks_uri` (an ID token named a key it does
    /// not have: the provider may have rotated its keys).
    fn forget_keys(&self, jwks_uri: &str) -> impl std::future::Future<Output = ()> + Send;
}

/// The provider's client with its metadata and keys from `data`.
async fn provider_client(
    oidc: &Oidc,
    data: &impl Documents,
    provider: &Provider,
    now_ms: i64,
    refresh_keys: bool,
) -> Result<(ProviderClient, CoreProviderMetadata), OidcError> {
    let discovery = data
        .document(
            oidc,
            OidcDocument::Discovery,
            &provider.discovery_url(),
            now_ms,
        )
        .await?;
    let metadata: CoreProviderMetadata = serde_json::from_str(&discovery)
        .map_err(|e| OidcError::ProviderDown(format!("discovery document: {e}")))?;
    if metadata.issuer().as_str().trim_end_matches('/') != provider.issuer.trim_end_matches('/') {
        return Err(OidcError::ProviderDown(format!(
            "discovery names issuer {}, not {}",
            metadata.issuer().as_str(),
            provider.issuer
        )));
    }
    let jwks_uri = metadata.jwks_uri().url().to_string();
    if refresh_keys {
        data.forget_keys(&jwks_uri).await;
    }
    let jwks = data
        .document(oidc, OidcDocument::Jwks, &jwks_uri, now_ms)
        .await?;
    let jwks: CoreJsonWebKeySet =
        serde_json::from_str(&jwks).map_err(|e| OidcError::ProviderDown(format!("JWKS: {e}")))?;
    let metadata = metadata.set_jwks(jwks);
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(
            provider.client_secret.expose_secret().to_owned(),
        )),
    );
    Ok((client, metadata))
}

/// Starts a sign-in at `provider`: the authorization URL and the sealed
/// login state. `redirect_url` is where the provider sends the browser
/// back; `link_user` is set when a signed-in user links this provider.
///
/// # Errors
/// [`OidcError::ProviderDown`] when the metadata cannot be had.
pub async fn begin(
    oidc: &Oidc,
    data: &impl Documents,
    provider: &Provider,
    redirect_url: String,
    return_to: String,
    link_user: Option<String>,
    now_ms: i64,
) -> Result<Redirect, OidcError> {
    let (client, _) = provider_client(oidc, data, provider, now_ms, false).await?;
    let redirect = RedirectUrl::new(redirect_url.clone())
        .map_err(|e| OidcError::ProviderDown(format!("redirect URL: {e}")))?;
    let client = client.set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let state = LoginState {
        provider: provider.slug.clone(),
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        redirect_url,
        return_to,
        link_user,
        issued_at_ms: now_ms,
    };
    Ok(Redirect {
        url: url.to_string(),
        cookie: oidc.key.seal(&state),
    })
}

/// What the provider's redirect carried.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    #[serde(default)]
    pub code: Option<String>,
    /// The `state` echoed back.
    #[serde(default)]
    pub state: Option<String>,
    /// An error instead of a code (`access_denied` when cancelled).
    #[serde(default)]
    pub error: Option<String>,
}

/// Longest `code` or `state` accepted from the redirect.
const MAX_PARAM: usize = 2048;

/// Finishes a sign-in at `provider` from the callback's parameters and the
/// login cookie: checks `state`, exchanges the code, verifies the ID
/// token. Writes nothing.
///
/// # Errors
/// One [`OidcError`] per way it can fail (see there).
pub async fn finish(
    oidc: &Oidc,
    data: &impl Documents,
    provider: &Provider,
    cookie: Option<&str>,
    params: CallbackParams,
    now_ms: i64,
) -> Result<Verified, OidcError> {
    let state = cookie
        .and_then(|c| oidc.key.open(c, now_ms))
        .filter(|s| s.provider == provider.slug)
        .ok_or(OidcError::NoLoginState)?;
    let given = params.state.unwrap_or_default();
    if given.len() > MAX_PARAM || !state.state_matches(&given) {
        return Err(OidcError::StateMismatch);
    }
    if let Some(error) = params.error {
        return Err(if error == "access_denied" {
            OidcError::Cancelled
        } else {
            OidcError::ProviderRefused(error.chars().take(100).collect())
        });
    }
    let code = params
        .code
        .filter(|c| !c.is_empty() && c.len() <= MAX_PARAM)
        .ok_or_else(|| OidcError::CodeRefused("no code".into()))?;
    let (client, _) = provider_client(oidc, data, provider, now_ms, false).await?;
    let redirect = RedirectUrl::new(state.redirect_url.clone())
        .map_err(|e| OidcError::BadToken(format!("redirect URL: {e}")))?;
    let client = client.set_redirect_uri(redirect);
    let http = Exchange(oidc);
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| OidcError::ProviderDown(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(state.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| match e {
            openidconnect::RequestTokenError::ServerResponse(r) => {
                OidcError::CodeRefused(r.error().to_string())
            }
            openidconnect::RequestTokenError::Request(e) => OidcError::ProviderDown(e.to_string()),
            other => OidcError::BadToken(other.to_string()),
        })?;
    let id_token = openidconnect::TokenResponse::id_token(&token)
        .ok_or_else(|| OidcError::BadToken("no ID token".into()))?;
    let nonce = Nonce::new(state.nonce.clone());
    let claims: CoreIdTokenClaims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(claims) => claims.clone(),
        Err(openidconnect::ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            // An unknown `kid`: the provider may have rotated its keys.
            // Fetch the JWKS again, once, and check again.
            let (fresh, _) = provider_client(oidc, data, provider, now_ms, true).await?;
            id_token
                .claims(&fresh.id_token_verifier(), &nonce)
                .map_err(|e| OidcError::BadToken(e.to_string()))?
                .clone()
        }
        Err(e) => return Err(OidcError::BadToken(e.to_string())),
    };
    let name_hint = claims
        .preferred_username()
        .map(|u| u.as_str().to_owned())
        .or_else(|| {
            claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned())
        })
        .or_else(|| {
            claims
                .email()
                .and_then(|e| e.as_str().split('@').next().map(str::to_owned))
        });
    Ok(Verified {
        issuer: provider.issuer.clone(),
        subject: claims.subject().as_str().to_owned(),
        name_hint,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_clamped() {
        assert_eq!(lifetime(Some(10)), MIN_LIFETIME);
        assert_eq!(lifetime(Some(10_000_000)), MAX_LIFETIME);
        assert_eq!(max_age("public, max-age=\"60\""), Some(60));
        assert_eq!(max_age("max-age=x"), None);
    }

    #[test]
    fn providers_need_unique_slugs_and_urls() {
        let secret = SecretString::from("k".repeat(40));
        let p = |display: &str, issuer: &str| Provider {
            slug: Provider::slug_of(display),
            display: display.into(),
            issuer: issuer.into(),
            client_id: "id".into(),
            client_secret: SecretString::from("s"),
            redirect_url: None,
        };
        assert!(Oidc::new(vec![p("Google", "https://accounts.google.com")], &secret).is_ok());
        let twice = vec![p("A", "https://a.example"), p("a", "https://b.example")];
        assert!(Oidc::new(twice, &secret).is_err());
        assert!(Oidc::new(vec![p("!!", "https://a.example")], &secret).is_err());
        assert!(Oidc::new(vec![p("A", "not a url")], &secret).is_err());
    }
}
