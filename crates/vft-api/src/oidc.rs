//! OpenID Connect sign-in, the relying party's half: discovery of the organisation's provider
//! (Entra ID, ID-porten, Feide, HelseID, …), the authorization-code flow with PKCE, and the
//! verification of what comes back. The protocol work is the `openidconnect` crate's; this
//! module chooses its settings and turns the result into a [`VerifiedIdentity`].
//!
//! The flow: [`OidcClient::begin`] makes the provider's sign-in URL and a [`PendingSignIn`]
//! (state, nonce, PKCE verifier), kept in [`PendingSignIns`] under its state; the callback takes
//! it back by the `state` the provider returns, and [`OidcClient::finish`] exchanges the `code`
//! and verifies the ID token (signature, issuer, audience, expiry, nonce).

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::url::{Host, Url};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthType, AuthorizationCode, ClaimsVerificationError,
    Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdToken, IdTokenFields, IssuerUrl, JsonWebKeySet, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
    TokenUrl, UserInfoClaims, UserInfoError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Longest any one request to the provider may take (connecting included).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The scopes asked for: `openid` always, the others when the provider offers them (a provider
/// may refuse a scope it does not know).
const SCOPES: [&str; 2] = ["email", "profile"];

/// The route OpenID sign-ins are recorded under (the callback of the code flow).
pub(crate) const CALLBACK_ROUTE: &str = "GET /api/auth/oidc/callback";

/// How vft signs people in with the organisation's OpenID provider (`[oidc]` in the
/// configuration, later). The client is registered at the provider as a confidential web
/// client with `redirect_url` as its redirect URI.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer identifier, exactly as its discovery document states it
    /// (e.g. `https://login.microsoftonline.com/<tenant>/v2.0`). https, or http on loopback.
    pub issuer: String,
    pub client_id: String,
    /// Never logged: Debug shows it redacted, and [`OidcSettings::redacted`] masks it.
    pub client_secret: String,
    /// vft's callback, as registered at the provider. https, or http on loopback.
    pub redirect_url: String,
    /// The claim that names the vft user (`email`, `preferred_username`, `upn`, …). An `email`
    /// (or `phone_number`) the provider says is not verified does not count.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// A PEM file of CA certificates to trust for the provider's TLS, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_username_claim() -> String {
    "email".to_owned()
}

impl OidcSettings {
    /// A copy with the client secret masked, for showing the configuration.
    pub fn redacted(&self) -> Self {
        Self {
            client_secret: "[redacted]".to_owned(),
            ..self.clone()
        }
    }
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_url", &self.redirect_url)
            .field("username_claim", &self.username_claim)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why a sign-in (or getting ready for one) failed. No message holds a secret, a code or a
/// token: they name the provider and say what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("OpenID Connect settings: {0}")]
    Settings(String),
    #[error("OpenID provider {issuer}: discovery failed: {reason}")]
    Discovery { issuer: String, reason: String },
    #[error("no sign-in is waiting for this state (unknown, already used or expired)")]
    UnknownSignIn,
    #[error("OpenID provider {issuer}: the authorization code was not accepted: {reason}")]
    TokenExchange { issuer: String, reason: String },
    #[error("OpenID provider {issuer}: the token response holds no ID token")]
    NoIdToken { issuer: String },
    #[error("OpenID provider {issuer}: the ID token was rejected: {reason}")]
    IdToken { issuer: String, reason: String },
    #[error("OpenID provider {issuer}: the userinfo request failed: {reason}")]
    UserInfo { issuer: String, reason: String },
}

/// Who the provider says signed in. `subject` is stable per person and provider; `username`
/// is the configured claim, if the provider gave it (and, for an email, did not call it
/// unverified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub username: Option<String>,
    pub name: Option<String>,
}

/// Everything a provider puts in its tokens beyond the standard claims (`upn`, `pid`, …), so
/// any of them can be the username claim.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type RpIdTokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type RpTokenResponse = StandardTokenResponse<RpIdTokenFields, CoreTokenType>;
type RpIdTokenClaims = openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>;
type RpIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// `openidconnect`'s client with our claims; the type parameters say which endpoints are known.
type Rp<HasAuthUrl = EndpointSet, HasTokenUrl = EndpointSet, HasUserInfoUrl = EndpointMaybeSet> =
    Client<
        OtherClaims,
        CoreAuthDisplay,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJsonWebKey,
        CoreAuthPrompt,
        StandardErrorResponse<CoreErrorResponseType>,
        RpTokenResponse,
        CoreTokenIntrospectionResponse,
        CoreRevocableToken,
        CoreRevocationErrorResponse,
        HasAuthUrl,
        EndpointNotSet,
        EndpointNotSet,
        EndpointNotSet,
        HasTokenUrl,
        HasUserInfoUrl,
    >;

/// A discovered provider, ready to start and finish sign-ins. Cheap to share (`Arc`).
pub struct OidcClient {
    issuer: String,
    settings: OidcSettings,
    http: reqwest::Client,
    metadata: CoreProviderMetadata,
    redirect_url: RedirectUrl,
    token_url: TokenUrl,
    auth_type: AuthType,
    scopes: Vec<String>,
    /// Rebuilt with fresh keys when the provider signs with a key vft has not seen.
    rp: RwLock<Arc<Rp>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.issuer)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OidcClient {
    /// Reads the provider's discovery document and signing keys. Each request is bounded
    /// (10 s); an unreachable or misconfigured provider is an error naming its issuer.
    pub async fn discover(settings: &OidcSettings) -> Result<Self, OidcError> {
        let issuer = settings.issuer.clone();
        let issuer_url = IssuerUrl::new(issuer.clone())
            .map_err(|e| OidcError::Settings(format!("issuer {issuer:?}: {e}")))?;
        require_https("issuer", issuer_url.url()).map_err(OidcError::Settings)?;
        let redirect_url = RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| {
            OidcError::Settings(format!("redirect_url {:?}: {e}", settings.redirect_url))
        })?;
        require_https("redirect_url", redirect_url.url()).map_err(OidcError::Settings)?;
        if settings.client_id.is_empty() || settings.client_secret.is_empty() {
            return Err(OidcError::Settings(
                "client_id and client_secret must not be empty".to_owned(),
            ));
        }
        if settings.username_claim.is_empty() {
            return Err(OidcError::Settings(
                "username_claim must not be empty".to_owned(),
            ));
        }
        let http = http_client(settings)?;
        let discovery = |reason: String| OidcError::Discovery {
            issuer: issuer.clone(),
            reason,
        };

        let metadata = CoreProviderMetadata::discover_async(issuer_url, &http)
            .await
            .map_err(|e| discovery(describe(&e)))?;
        require_https(
            "authorization_endpoint",
            metadata.authorization_endpoint().url(),
        )
        .map_err(discovery)?;
        require_https("jwks_uri", metadata.jwks_uri().url()).map_err(discovery)?;
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| discovery("no token_endpoint".to_owned()))?;
        require_https("token_endpoint", token_url.url()).map_err(discovery)?;
        if let Some(userinfo) = metadata.userinfo_endpoint() {
            require_https("userinfo_endpoint", userinfo.url()).map_err(discovery)?;
        }

        // HTTP Basic is the default every provider must accept (RFC 6749 2.3.1); the form body
        // only for a provider that says it takes that and not Basic.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let scopes = SCOPES
            .iter()
            .filter(|s| {
                metadata
                    .scopes_supported()
                    .is_none_or(|offered| offered.iter().any(|o| o.as_str() == **s))
            })
            .map(|s| (*s).to_owned())
            .collect();

        let rp = build_rp(
            settings,
            &auth_type,
            metadata.clone(),
            redirect_url.clone(),
            token_url.clone(),
        );
        tracing::info!(issuer = %issuer, "OpenID provider discovered");
        Ok(Self {
            issuer,
            settings: settings.clone(),
            http,
            metadata,
            redirect_url,
            token_url,
            auth_type,
            scopes,
            rp: RwLock::new(Arc::new(rp)),
        })
    }

    /// The issuer, as configured (and as the provider's discovery document confirmed).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The provider's sign-in URL to send the browser to, and what the callback needs to
    /// finish: keep it in [`PendingSignIns`] under [`PendingSignIn::state`].
    pub fn begin(&self) -> (String, PendingSignIn) {
        let rp = self.rp();
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = rp.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingSignIn {
            state,
            nonce,
            verifier,
            created: Instant::now(),
        };
        (url.to_string(), pending)
    }

    /// Exchanges the callback's `code` (with the PKCE verifier) at the token endpoint and
    /// verifies the ID token: signature with the provider's keys, issuer, audience, expiry,
    /// the nonce `begin` made and, when present, the access-token hash. Claims the ID token
    /// lacks are asked of the userinfo endpoint, for the same subject.
    pub async fn finish(
        &self,
        pending: PendingSignIn,
        code: &str,
    ) -> Result<VerifiedIdentity, OidcError> {
        let issuer = || self.issuer.clone();
        let rp = self.rp();
        let response = rp
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::TokenExchange {
                issuer: issuer(),
                reason: describe_token_error(&e),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::NoIdToken { issuer: issuer() })?;
        let rejected = |reason: String| OidcError::IdToken {
            issuer: issuer(),
            reason,
        };

        let (rp, verified) = match verify(&rp, id_token, &pending.nonce, response.access_token()) {
            Ok(verified) => (rp, verified),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Signed with a key published after discovery (the provider rotated its keys):
                // fetch the key set once more. Only the token endpoint's own answer, over the
                // back channel, gets here, so this cannot be made to repeat at will.
                let rp = self.refresh_keys().await?;
                let verified = verify(&rp, id_token, &pending.nonce, response.access_token())
                    .map_err(|e| rejected(describe(&e)))?;
                (rp, verified)
            }
            Err(e) => return Err(rejected(describe(&e))),
        };
        let subject = verified.subject().clone();
        let mut claims = as_json_object(verified);

        let username_claim = self.settings.username_claim.as_str();
        let wanted_missing = !claims.contains_key(username_claim) || !claims.contains_key("name");
        if wanted_missing && rp.user_info_url().is_some() {
            let failed = |reason: String| OidcError::UserInfo {
                issuer: issuer(),
                reason,
            };
            let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = rp
                .user_info(response.access_token().clone(), Some(subject.clone()))
                .map_err(|e| failed(describe(&e)))?
                .request_async(&self.http)
                .await
                .map_err(|e| failed(describe_userinfo_error(&e)))?;
            // The ID token's own claims win; userinfo only fills gaps.
            for (k, v) in as_json_object(&info) {
                claims.entry(k).or_insert(v);
            }
        }

        Ok(VerifiedIdentity {
            issuer: self.issuer.clone(),
            subject: subject.as_str().to_owned(),
            username: username_from(&claims, username_claim),
            name: string_claim(&claims, "name"),
        })
    }

    fn rp(&self) -> Arc<Rp> {
        Arc::clone(&self.rp.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Fetches the provider's key set again and rebuilds the client with it.
    async fn refresh_keys(&self) -> Result<Arc<Rp>, OidcError> {
        let jwks = JsonWebKeySet::fetch_async(self.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| OidcError::IdToken {
                issuer: self.issuer.clone(),
                reason: format!(
                    "signed with an unknown key, and fetching the keys again failed: {}",
                    describe(&e)
                ),
            })?;
        let rp = Arc::new(build_rp(
            &self.settings,
            &self.auth_type,
            self.metadata.clone().set_jwks(jwks),
            self.redirect_url.clone(),
            self.token_url.clone(),
        ));
        *self.rp.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&rp);
        tracing::info!(issuer = %self.issuer, "OpenID provider's signing keys fetched again");
        Ok(rp)
    }
}

fn build_rp(
    settings: &OidcSettings,
    auth_type: &AuthType,
    metadata: CoreProviderMetadata,
    redirect_url: RedirectUrl,
    token_url: TokenUrl,
) -> Rp {
    Rp::<EndpointSet, EndpointMaybeSet, EndpointMaybeSet>::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect_url)
    .set_token_uri(token_url)
    .set_auth_type(auth_type.clone())
}

/// The ID token's signature, issuer, audience, expiry and nonce, then its `at_hash` (when
/// there is one) against the access token that came with it.
fn verify<'t>(
    rp: &Rp,
    id_token: &'t RpIdToken,
    nonce: &Nonce,
    access_token: &openidconnect::AccessToken,
) -> Result<&'t RpIdTokenClaims, ClaimsVerificationError> {
    let verifier = rp.id_token_verifier();
    let claims = id_token.claims(&verifier, nonce)?;
    if let Some(expected) = claims.access_token_hash() {
        let actual = AccessTokenHash::from_token(
            access_token,
            id_token
                .signing_alg()
                .map_err(ClaimsVerificationError::SignatureVerification)?,
            id_token
                .signing_key(&verifier)
                .map_err(ClaimsVerificationError::SignatureVerification)?,
        )
        .map_err(|e| ClaimsVerificationError::Other(format!("at_hash: {e}")))?;
        if actual != *expected {
            return Err(ClaimsVerificationError::Other(
                "the access token does not match the ID token's at_hash".to_owned(),
            ));
        }
    }
    Ok(claims)
}

/// What `begin` made and `finish` needs: the state (the key to find it again), the nonce and
/// the PKCE verifier. Secret until the sign-in is over; Debug shows none of it.
pub struct PendingSignIn {
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    created: Instant,
}

impl PendingSignIn {
    /// The `state` parameter the provider will send back to the callback.
    pub fn state(&self) -> &str {
        self.state.secret()
    }

    pub fn created(&self) -> Instant {
        self.created
    }
}

// By hand: the crate's secret types are not Clone (on purpose). A copy lets a caller (or a
// test) try the same sign-in twice, which the provider must refuse.
impl Clone for PendingSignIn {
    fn clone(&self) -> Self {
        Self {
            state: CsrfToken::new(self.state.secret().clone()),
            nonce: Nonce::new(self.nonce.secret().clone()),
            verifier: PkceCodeVerifier::new(self.verifier.secret().clone()),
            created: self.created,
        }
    }
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Sign-ins begun and not yet finished, by state: bounded (the oldest goes when full, so a
/// flood of `begin`s costs memory only up to the bound) and expiring (a sign-in left
/// unfinished for longer than the time to live cannot be finished). In memory: a callback must
/// reach the vft process that began the sign-in.
pub struct PendingSignIns {
    inner: Mutex<Waiting>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Default)]
struct Waiting {
    by_state: HashMap<String, PendingSignIn>,
    /// Creation order; entries already taken stay until they reach the front.
    order: VecDeque<(Instant, String)>,
}

impl Default for PendingSignIns {
    fn default() -> Self {
        Self::new()
    }
}

impl PendingSignIns {
    pub const DEFAULT_CAPACITY: usize = 10_000;
    pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

    pub fn new() -> Self {
        Self::with_limits(Self::DEFAULT_CAPACITY, Self::DEFAULT_TTL)
    }

    pub fn with_limits(capacity: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Waiting::default()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    pub fn insert(&self, pending: PendingSignIn) {
        self.insert_at(pending, Instant::now());
    }

    /// Takes the sign-in `state` names, once: a second callback with the same state, an unknown
    /// state or an expired sign-in is [`OidcError::UnknownSignIn`].
    pub fn take(&self, state: &str) -> Result<PendingSignIn, OidcError> {
        self.take_at(state, Instant::now())
    }

    /// Sign-ins waiting (expired ones included until the next insert drops them).
    pub fn len(&self) -> usize {
        self.lock().by_state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert_at(&self, pending: PendingSignIn, now: Instant) {
        let mut w = self.lock();
        let Waiting { by_state, order } = &mut *w;
        // Expired (and already taken) entries at the front go first; then the oldest, while full.
        while let Some((created, state)) = order.front() {
            let expired = now.saturating_duration_since(*created) >= self.ttl;
            if !(expired || !by_state.contains_key(state) || by_state.len() >= self.capacity) {
                break;
            }
            if by_state.get(state).is_some_and(|p| p.created == *created) {
                by_state.remove(state);
            }
            order.pop_front();
        }
        // Taken entries in the middle would let `order` grow past the bound: drop them.
        if order.len() >= 2 * self.capacity {
            order.retain(|(_, state)| by_state.contains_key(state));
        }
        order.push_back((pending.created, pending.state().to_owned()));
        by_state.insert(pending.state().to_owned(), pending);
    }

    fn take_at(&self, state: &str, now: Instant) -> Result<PendingSignIn, OidcError> {
        let pending = self
            .lock()
            .by_state
            .remove(state)
            .ok_or(OidcError::UnknownSignIn)?;
        if now.saturating_duration_since(pending.created) >= self.ttl {
            return Err(OidcError::UnknownSignIn);
        }
        Ok(pending)
    }
}

/// reqwest for the provider: bounded, no redirects (the crate's advice against SSRF: discovery
/// and token requests must reach exactly the URLs the provider published), rustls.
fn http_client(settings: &OidcSettings) -> Result<reqwest::Client, OidcError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("vft/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| OidcError::Settings(format!("ca_file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            OidcError::Settings(format!("ca_file {}: {}", path.display(), describe(&e)))
        })?;
        if certs.is_empty() {
            return Err(OidcError::Settings(format!(
                "ca_file {}: no PEM certificate in it",
                path.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| OidcError::Settings(format!("HTTP client: {}", describe(&e))))
}

/// https, or plain http to this machine only (development and the tests' provider).
fn require_https(what: &str, url: &Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{what} {url} must use https (plain http only on loopback)"
        )),
    }
}

fn as_json_object<T: Serialize>(claims: &T) -> Map<String, Value> {
    match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    let value = claims.get(name)?.as_str()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The username claim; an address the provider says it has not verified could be anyone's,
/// so it names no one (absent `*_verified` counts as verified, as several providers omit it).
fn username_from(claims: &Map<String, Value>, claim: &str) -> Option<String> {
    let flag = match claim {
        "email" => Some("email_verified"),
        "phone_number" => Some("phone_number_verified"),
        _ => None,
    };
    if flag.is_some_and(|f| claims.get(f) == Some(&Value::Bool(false))) {
        return None;
    }
    string_claim(claims, claim)
}

/// An error and its sources, one after another.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// Parse errors are named by where they happened only: serde's message may quote the value,
/// and in a token response that value may be a token.
fn describe_token_error<E: std::error::Error + 'static>(
    error: &RequestTokenError<E, StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match error {
        RequestTokenError::Parse(e, _) => {
            format!("unreadable token response (at {})", e.path())
        }
        other => describe(other),
    }
}

fn describe_userinfo_error<E: std::error::Error + 'static>(error: &UserInfoError<E>) -> String {
    match error {
        UserInfoError::Parse(e) => format!("unreadable userinfo response (at {})", e.path()),
        UserInfoError::Response(status, _, _) => format!("HTTP status {status}"),
        other => describe(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(state: &str, created: Instant) -> PendingSignIn {
        PendingSignIn {
            state: CsrfToken::new(state.to_owned()),
            nonce: Nonce::new_random(),
            verifier: PkceCodeVerifier::new("v".repeat(43)),
            created,
        }
    }

    #[test]
    fn a_pending_sign_in_is_taken_once() {
        let map = PendingSignIns::new();
        let t0 = Instant::now();
        map.insert_at(pending("a", t0), t0);
        assert!(map.take_at("b", t0).is_err());
        assert_eq!(map.take_at("a", t0).expect("waiting").state(), "a");
        assert!(matches!(
            map.take_at("a", t0),
            Err(OidcError::UnknownSignIn)
        ));
    }

    #[test]
    fn a_pending_sign_in_expires() {
        let ttl = Duration::from_secs(600);
        let map = PendingSignIns::with_limits(10, ttl);
        let t0 = Instant::now();
        map.insert_at(pending("old", t0), t0);
        map.insert_at(pending("young", t0 + ttl / 2), t0 + ttl / 2);
        assert!(map.take_at("old", t0 + ttl).is_err(), "expired");
        assert!(map.take_at("young", t0 + ttl).is_ok());
        // An insert drops what has expired.
        map.insert_at(pending("x", t0), t0);
        map.insert_at(pending("y", t0 + 2 * ttl), t0 + 2 * ttl);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn the_oldest_goes_when_full() {
        let map = PendingSignIns::with_limits(3, Duration::from_secs(600));
        let t0 = Instant::now();
        for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
            let t = t0 + Duration::from_secs(i as u64);
            map.insert_at(pending(s, t), t);
        }
        assert_eq!(map.len(), 3);
        let t = t0 + Duration::from_secs(5);
        assert!(map.take_at("a", t).is_err());
        for s in ["b", "c", "d"] {
            assert!(map.take_at(s, t).is_ok(), "{s}");
        }
    }

    #[test]
    fn taken_entries_do_not_grow_the_order_past_its_bound() {
        let map = PendingSignIns::with_limits(4, Duration::from_secs(600));
        let t0 = Instant::now();
        for i in 0..1000u64 {
            let t = t0 + Duration::from_millis(i);
            let state = format!("s{i}");
            map.insert_at(pending(&state, t), t);
            if i % 2 == 0 {
                map.take_at(&state, t).expect("waiting");
            }
        }
        assert!(map.lock().order.len() <= 8);
        assert!(map.len() <= 4);
    }

    #[test]
    fn an_unverified_email_names_no_one() {
        let claims = |v: Value| v.as_object().cloned().expect("object");
        let verified = claims(serde_json::json!({"email": "a@x.no", "email_verified": true}));
        let unverified = claims(serde_json::json!({"email": "a@x.no", "email_verified": false}));
        let silent = claims(serde_json::json!({"email": "a@x.no", "upn": "a@x.onmicrosoft"}));
        assert_eq!(username_from(&verified, "email").as_deref(), Some("a@x.no"));
        assert_eq!(username_from(&unverified, "email"), None);
        assert_eq!(username_from(&silent, "email").as_deref(), Some("a@x.no"));
        assert_eq!(
            username_from(&silent, "upn").as_deref(),
            Some("a@x.onmicrosoft")
        );
        assert_eq!(username_from(&silent, "preferred_username"), None);
    }

    #[test]
    fn settings_hide_the_secret_and_refuse_unknown_keys() {
        let toml_like = serde_json::json!({
            "issuer": "https://login.example/tenant/v2.0",
            "client_id": "vft",
            "client_secret": "s3cret-value",
            "redirect_url": "https://vft.example/api/auth/oidc/callback",
        });
        let settings: OidcSettings = serde_json::from_value(toml_like.clone()).expect("settings");
        assert_eq!(settings.username_claim, "email");
        assert_eq!(settings.ca_file, None);
        assert!(!format!("{settings:?}").contains("s3cret"));
        assert!(!format!("{:?}", settings.redacted()).contains("s3cret"));
        assert_eq!(settings.redacted().client_secret, "[redacted]");
        let mut unknown = toml_like;
        unknown["scopes"] = serde_json::json!(["openid"]);
        assert!(serde_json::from_value::<OidcSettings>(unknown).is_err());
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let ok = |u: &str| require_https("x", &Url::parse(u).expect("url"));
        assert!(ok("https://login.example/").is_ok());
        assert!(ok("http://127.0.0.1:4000").is_ok());
        assert!(ok("http://[::1]:4000").is_ok());
        assert!(ok("http://localhost:4000").is_ok());
        assert!(ok("http://login.example/").is_err());
        assert!(ok("http://10.0.0.1/").is_err());
    }
}
