//! OpenID Connect sign-in against a real provider: oidc-provider (OpenID Certified), started by
//! `vft_testkit::oidc` from tests/oidc. vft's relying party (`vft_api::oidc`) discovers it,
//! begins a sign-in, and a scripted browser (reqwest with cookies) goes through the provider's
//! login and consent pages to the redirect, whose `code` and `state` `finish` then turns into a
//! verified identity. Then what must fail: an unknown or replayed state, a reused code, a code
//! from another sign-in, a changed nonce, an unreachable or mismatched issuer.
//!
//! Then the same end to end: the real `vft serve` with `[oidc]` naming the provider, and the
//! scripted browser going /api/auth/oidc/start → the provider's pages → /api/auth/oidc/callback.
//! A person with an account gets a session (also later, by the bound subject, after their
//! address changed at the provider); a person without one, or with an unverified address, or
//! with a disabled account, is sent back with `?sign_in_error=` and no session; a callback
//! in a browser that did not begin the sign-in, or a cancelled one, opens nothing; the audit
//! log records each; the routes exist only when configured; the client secret is never shown;
//! vft starts while the provider is down and signs people in once it is up.
//!
//! Needs Node.js and `npm ci` in tests/oidc (`.ci/run` does both); without them the tests are
//! skipped loudly on a workstation and fail in CI.

mod support;

use std::collections::HashMap;
use std::time::Duration;
use vft_api::oidc::{OidcClient, OidcError, OidcSettings, PendingSignIns, VerifiedIdentity};
use vft_testkit::oidc::{OidcProvider, OidcProviderConfig};

const CLIENT_ID: &str = "vft-dashboard";
const CLIENT_SECRET: &str = "test-only-client-secret-7f3a";
// Nothing listens here: the scripted browser stops at the redirect and reads its query.
const REDIRECT_URL: &str = "http://127.0.0.1:8080/api/auth/oidc/callback";

/// The most pages one sign-in may take (login, consent and the provider's own redirects).
const MAX_STEPS: usize = 12;

fn config(claims_in_id_token: bool) -> OidcProviderConfig {
    OidcProviderConfig {
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        redirect_uri: REDIRECT_URL.to_owned(),
        accounts: None,
        claims_in_id_token,
    }
}

/// The provider, or `None` (skipped loudly) when Node.js or its packages are missing outside
/// CI; in CI `OidcProvider::start` panics instead.
fn start_provider(claims_in_id_token: bool) -> Option<OidcProvider> {
    match OidcProvider::start(&config(claims_in_id_token)) {
        Ok(p) => Some(p),
        Err(why) => {
            eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
            None
        }
    }
}

fn settings(issuer: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.to_owned(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        redirect_url: REDIRECT_URL.to_owned(),
        username_claim: "email".to_owned(),
        ca_file: None,
    }
}

/// What the provider sent the browser back to vft with.
#[derive(Debug)]
struct Callback {
    code: String,
    state: String,
    iss: Option<String>,
}

/// A scripted browser: a fresh cookie jar, no automatic redirects (each one is looked at, and
/// the last, to vft's redirect URL, is not followed).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("browser")
}

/// Follows `authorize_url` through the provider's pages as `account` would and returns what the
/// provider sent the browser back to [`REDIRECT_URL`] with.
async fn sign_in_at_provider(
    browser: &reqwest::Client,
    authorize_url: &str,
    account: &str,
) -> Callback {
    let back = through_provider(
        browser,
        authorize_url,
        AtProvider::SignInAs(account),
        REDIRECT_URL,
    )
    .await;
    let query: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert!(
        !query.contains_key("error"),
        "the provider refused the sign-in: {query:?}"
    );
    Callback {
        code: query.get("code").expect("code").clone(),
        state: query.get("state").expect("state").clone(),
        iss: query.get("iss").cloned(),
    }
}

/// What the person does on the provider's pages.
#[derive(Clone, Copy)]
enum AtProvider<'a> {
    /// Signs in as this account (the login form's account id; the password field is ignored by
    /// the development login), then consents.
    SignInAs(&'a str),
    /// Follows the page's cancel link instead.
    Cancel,
}

/// Follows `authorize_url` through the provider's pages (login form, consent form, the
/// provider's own redirects) until the provider redirects the browser to `redirect_url`, and
/// returns that redirect, unfollowed (its query has `code` and `state`, or `error`).
async fn through_provider(
    browser: &reqwest::Client,
    authorize_url: &str,
    what: AtProvider<'_>,
    redirect_url: &str,
) -> reqwest::Url {
    let mut url = reqwest::Url::parse(authorize_url).expect("authorize URL");
    let mut form: Option<Vec<(String, String)>> = None;
    for _ in 0..MAX_STEPS {
        let request = match form.take() {
            Some(fields) => browser.post(url.clone()).form(&fields),
            None => browser.get(url.clone()),
        };
        let response = request.send().await.expect("provider page");
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("Location");
            let next = url.join(location).expect("redirect target");
            if next.as_str().starts_with(redirect_url) {
                return next;
            }
            url = next;
            continue;
        }
        let body = response.text().await.expect("page");
        assert!(status.is_success(), "provider page {url}: {status}\n{body}");
        let account = match what {
            AtProvider::SignInAs(account) => account,
            AtProvider::Cancel => {
                let abort = abort_link(&body).unwrap_or_else(|| {
                    panic!("no cancel link on the provider page {url}:\n{body}")
                });
                url = url.join(&abort).expect("cancel link");
                continue;
            }
        };
        let page = HtmlForm::first_in(&body)
            .unwrap_or_else(|| panic!("no form on the provider page {url}:\n{body}"));
        let fields = page
            .inputs
            .iter()
            .map(|input| {
                let value = match (input.name.as_str(), input.kind.as_str()) {
                    ("login", _) => account.to_owned(),
                    (_, "password") => "not-checked".to_owned(),
                    _ => input.value.clone(),
                };
                (input.name.clone(), value)
            })
            .collect();
        url = url.join(&page.action).expect("form action");
        form = Some(fields);
    }
    panic!("no redirect to {redirect_url} within {MAX_STEPS} pages");
}

/// The provider's "cancel" link (`…/interaction/<uid>/abort`) on its login or consent page.
fn abort_link(html: &str) -> Option<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(unescape)
        .find(|href| href.ends_with("/abort"))
}

/// The first `<form>` of a page and its named inputs: enough for oidc-provider's development
/// pages, whose markup is fixed (no HTML parser needed for two forms).
struct HtmlForm {
    action: String,
    inputs: Vec<Input>,
}

struct Input {
    name: String,
    kind: String,
    value: String,
}

impl HtmlForm {
    fn first_in(html: &str) -> Option<Self> {
        let start = html.find("<form")?;
        let end = start + html[start..].find("</form>")?;
        let form = &html[start..end];
        let tag_end = form.find('>')?;
        let action = attribute(&form[..tag_end], "action")?;
        let inputs = form
            .match_indices("<input")
            .filter_map(|(i, _)| {
                let tag = &form[i..i + form[i..].find('>')?];
                Some(Input {
                    name: attribute(tag, "name")?,
                    kind: attribute(tag, "type").unwrap_or_else(|| "text".to_owned()),
                    value: attribute(tag, "value").unwrap_or_default(),
                })
            })
            .collect();
        Some(Self { action, inputs })
    }
}

/// A double-quoted attribute of one tag, HTML entities undone.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

/// HTML entities undone (the few oidc-provider's templates produce).
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Begins a sign-in as the dashboard will: the pending half kept by state.
fn begin(client: &OidcClient, pending: &PendingSignIns) -> String {
    let (url, sign_in) = client.begin();
    pending.insert(sign_in);
    url
}

/// Asserts that nothing secret made it into an error's message.
fn assert_discreet(error: &OidcError, code: &str) {
    let text = format!("{error} {error:?}");
    assert!(!text.contains(CLIENT_SECRET), "secret in {text}");
    assert!(code.is_empty() || !text.contains(code), "code in {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_the_real_provider() {
    // The provider's default: email and name only from its userinfo endpoint.
    let Some(provider) = start_provider(false) else {
        return;
    };
    let client = OidcClient::discover(&settings(provider.issuer()))
        .await
        .expect("discover");
    assert_eq!(client.issuer(), provider.issuer());
    let pending = PendingSignIns::new();

    let authorize_url = begin(&client, &pending);
    for part in [
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "scope=openid",
    ] {
        assert!(authorize_url.contains(part), "{part} in {authorize_url}");
    }
    let callback = sign_in_at_provider(&browser(), &authorize_url, "alice").await;
    // RFC 9207: the provider names itself in the redirect.
    assert_eq!(callback.iss.as_deref(), Some(provider.issuer()));

    let sign_in = pending.take(&callback.state).expect("the sign-in begun");
    let again = sign_in.clone();
    let identity = client
        .finish(sign_in, &callback.code)
        .await
        .unwrap_or_else(|e| panic!("finish: {e}\nprovider log:\n{}", provider.log()));
    assert_eq!(
        identity,
        VerifiedIdentity {
            issuer: provider.issuer().to_owned(),
            subject: "alice".to_owned(),
            username: Some("alice@kommune.example".to_owned()),
            name: Some("Alice Aasen".to_owned()),
        }
    );

    // The same callback again: its state was used up.
    assert!(matches!(
        pending.take(&callback.state),
        Err(OidcError::UnknownSignIn)
    ));
    // The same code again, even with everything that went with it: the provider refuses it.
    let reused = client
        .finish(again, &callback.code)
        .await
        .expect_err("a code is good once");
    assert!(
        matches!(reused, OidcError::TokenExchange { .. }),
        "{reused}"
    );
    assert!(reused.to_string().contains(provider.issuer()), "{reused}");
    assert_discreet(&reused, &callback.code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_in_the_id_token_and_unverified_or_missing_emails() {
    // Like several real providers: email and name in the ID token itself.
    let Some(provider) = start_provider(true) else {
        return;
    };
    let client = OidcClient::discover(&settings(provider.issuer()))
        .await
        .expect("discover");
    let pending = PendingSignIns::new();
    let mut identities = Vec::new();
    for account in ["alice", "bob", "carol"] {
        let url = begin(&client, &pending);
        let callback = sign_in_at_provider(&browser(), &url, account).await;
        let sign_in = pending.take(&callback.state).expect("the sign-in begun");
        let identity = client
            .finish(sign_in, &callback.code)
            .await
            .unwrap_or_else(|e| panic!("finish {account}: {e}\n{}", provider.log()));
        identities.push((identity.subject, identity.username, identity.name));
    }
    assert_eq!(
        identities,
        [
            (
                "alice".to_owned(),
                Some("alice@kommune.example".to_owned()),
                Some("Alice Aasen".to_owned())
            ),
            // email_verified: false: the address names no one.
            ("bob".to_owned(), None, Some("Bob Berg".to_owned())),
            // No email at all.
            ("carol".to_owned(), None, Some("Carol Dahl".to_owned())),
        ]
    );
    assert!(pending.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_mixed_up_callbacks_are_refused() {
    let Some(provider) = start_provider(false) else {
        return;
    };
    let client = OidcClient::discover(&settings(provider.issuer()))
        .await
        .expect("discover");
    let pending = PendingSignIns::new();

    // A state vft never made.
    assert!(matches!(
        pending.take("not-a-state-vft-made"),
        Err(OidcError::UnknownSignIn)
    ));

    // A code that the provider never issued.
    let url = begin(&client, &pending);
    let state = state_of(&url);
    let sign_in = pending.take(&state).expect("begun");
    let made_up = client
        .finish(sign_in, "made-up-code")
        .await
        .expect_err("made-up code");
    assert!(
        matches!(made_up, OidcError::TokenExchange { .. }),
        "{made_up}"
    );
    assert_discreet(&made_up, "");

    // A code issued for one sign-in, finished with another's PKCE verifier and nonce (an
    // attacker's code injected into a victim's callback): the provider refuses it.
    let url_a = begin(&client, &pending);
    let url_b = begin(&client, &pending);
    let callback_a = sign_in_at_provider(&browser(), &url_a, "alice").await;
    let sign_in_b = pending.take(&state_of(&url_b)).expect("begun");
    let swapped = client
        .finish(sign_in_b, &callback_a.code)
        .await
        .expect_err("another sign-in's code");
    assert!(
        matches!(swapped, OidcError::TokenExchange { .. }),
        "{swapped}"
    );
    assert_discreet(&swapped, &callback_a.code);

    // The authorization request changed on its way through the browser: another nonce. The
    // provider signs it into the ID token, and vft refuses the token.
    let url = begin(&client, &pending);
    let tampered = replace_query_value(&url, "nonce", "a-nonce-vft-never-made");
    let callback = sign_in_at_provider(&browser(), &tampered, "alice").await;
    let sign_in = pending.take(&callback.state).expect("begun");
    let wrong_nonce = client
        .finish(sign_in, &callback.code)
        .await
        .expect_err("changed nonce");
    assert!(
        matches!(&wrong_nonce, OidcError::IdToken { reason, .. } if reason.contains("nonce")),
        "{wrong_nonce}"
    );
    assert_discreet(&wrong_nonce, &callback.code);

    // The issuer as configured must be the issuer the provider states, to the character.
    let other_name = provider.issuer().replace("127.0.0.1", "localhost");
    let mismatch = OidcClient::discover(&settings(&other_name))
        .await
        .expect_err("issuer mismatch");
    assert!(
        matches!(mismatch, OidcError::Discovery { .. }),
        "{mismatch}"
    );
    assert!(mismatch.to_string().contains(&other_name), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_plain_http_issuer_is_an_error_naming_it() {
    // Nothing listens on a port just freed: connection refused, well within the bound.
    let issuer = format!("http://127.0.0.1:{}", vft_testkit::free_port());
    let started = std::time::Instant::now();
    let error = OidcClient::discover(&settings(&issuer))
        .await
        .expect_err("unreachable");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(matches!(error, OidcError::Discovery { .. }), "{error}");
    assert!(error.to_string().contains(&issuer), "{error}");
    assert_discreet(&error, "");

    // Plain http to another machine is refused before any request is made.
    let error = OidcClient::discover(&settings("http://login.example/tenant"))
        .await
        .expect_err("plain http");
    assert!(matches!(error, OidcError::Settings(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_signing_keys_at_the_provider_are_fetched() {
    let Some(mut provider) = start_provider(false) else {
        return;
    };
    let client = OidcClient::discover(&settings(provider.issuer()))
        .await
        .expect("discover");
    // Same issuer, a new signing key: the keys vft fetched at discovery no longer fit.
    provider.restart();
    let pending = PendingSignIns::new();
    let url = begin(&client, &pending);
    let callback = sign_in_at_provider(&browser(), &url, "alice").await;
    let sign_in = pending.take(&callback.state).expect("begun");
    let identity = client
        .finish(sign_in, &callback.code)
        .await
        .unwrap_or_else(|e| panic!("finish after key rotation: {e}\n{}", provider.log()));
    assert_eq!(identity.subject, "alice");
}

fn state_of(authorize_url: &str) -> String {
    reqwest::Url::parse(authorize_url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state")
}

fn replace_query_value(url: &str, key: &str, value: &str) -> String {
    let mut parsed = reqwest::Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

// ---------------------------------------------------------------------------------------------
// The real `vft serve`, configured with `[oidc]`, against the real provider: a scripted browser
// goes /api/auth/oidc/start → the provider's pages → /api/auth/oidc/callback, and what vft
// answers (redirects, cookies, the session, the audit log) is what is checked.
// ---------------------------------------------------------------------------------------------

/// The provider's people in the end-to-end tests (tests/oidc/accounts.json's alice, bob and
/// carol, and a few more).
fn provider_accounts() -> serde_json::Value {
    serde_json::json!([
        { "sub": "alice", "email": "alice@kommune.example", "email_verified": true, "name": "Alice Aasen" },
        // Says bob's address, but the provider has not verified it: it names no one.
        { "sub": "bob", "email": "bob@kommune.example", "email_verified": false, "name": "Bob Berg" },
        { "sub": "carol", "name": "Carol Dahl" },
        { "sub": "dina", "email": "dina@kommune.example", "email_verified": true, "name": "Dina Dal" },
        // Has no vft account.
        { "sub": "erik", "email": "Erik.Eng@Kommune.Example", "email_verified": true, "name": "Erik Eng" },
        // Her account was made in lower case; the provider writes her address as she typed it.
        { "sub": "frida", "email": "Frida.Fjell@Kommune.Example", "email_verified": true, "name": "Frida Fjell" },
    ])
}

/// vft's own redirect URL on `port`.
fn vft_redirect_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/api/auth/oidc/callback")
}

/// `vft serve` with `[oidc]` naming a real provider that knows vft as its client, a fresh
/// SQLite database and a coordinator token (to read the audit log).
struct Site {
    vft: support::VftProcess,
    provider: OidcProvider,
    coordinator: String,
    db: String,
    accounts_file: std::path::PathBuf,
    dir: tempfile::TempDir,
}

#[derive(Default)]
struct SiteOptions {
    /// The client secret from `VFT_OIDC__CLIENT_SECRET` rather than the file.
    secret_in_env: bool,
    /// The provider is down when vft starts (and stays down until the test restarts it).
    provider_down: bool,
}

impl Site {
    /// `None` (skipped loudly) when Node.js or the provider's packages are missing outside CI.
    async fn start(options: SiteOptions) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts_file = dir.path().join("accounts.json");
        write_accounts(&accounts_file, &provider_accounts());
        // The provider must know vft's redirect URL before vft starts, so vft's port is chosen
        // here.
        let http_port = support::free_port();
        let redirect_url = vft_redirect_url(http_port);
        let mut provider = match OidcProvider::start(&OidcProviderConfig {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uri: redirect_url.clone(),
            accounts: Some(accounts_file.clone()),
            claims_in_id_token: false,
        }) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
                return None;
            }
        };
        if options.provider_down {
            provider.stop();
        }
        let secret_line = if options.secret_in_env {
            String::new()
        } else {
            format!("client_secret = {CLIENT_SECRET:?}\n")
        };
        let config = dir.path().join("vft.toml");
        std::fs::write(
            &config,
            format!(
                "[oidc]\nissuer = {:?}\nclient_id = {CLIENT_ID:?}\n{secret_line}redirect_url = {redirect_url:?}\n",
                provider.issuer()
            ),
        )
        .expect("write config");
        let db = format!("sqlite://{}", dir.path().join("vft.db").display());
        let http_addr = format!("127.0.0.1:{http_port}");
        let mqtt_addr = format!("127.0.0.1:{}", support::free_port());
        let config_arg = config.display().to_string();
        let env: Vec<(&str, &str)> = if options.secret_in_env {
            vec![("VFT_OIDC__CLIENT_SECRET", CLIENT_SECRET)]
        } else {
            Vec::new()
        };
        let vft = support::VftProcess::spawn_with_env(
            &[
                "serve",
                "--config",
                &config_arg,
                "--http-addr",
                &http_addr,
                "--database-url",
                &db,
                "--mqtt-addr",
                &mqtt_addr,
            ],
            dir.path(),
            &env,
        );
        assert_eq!(vft.api, format!("http://{http_addr}"));
        support::wait_ready(&vft.api).await;
        let coordinator = support::create_token(&db, dir.path(), &["--role", "coordinator"]);
        Some(Self {
            vft,
            provider,
            coordinator,
            db,
            accounts_file,
            dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.vft.api)
    }

    fn redirect_url(&self) -> String {
        self.url("/api/auth/oidc/callback")
    }

    /// `vft ARGS --database-url …`, which must succeed.
    fn cli(&self, args: &[&str]) {
        let mut all = args.to_vec();
        all.extend(["--database-url", &self.db]);
        if let Err(e) = support::vft_cli(&all, self.dir.path()) {
            panic!("vft {args:?} failed: {e}");
        }
    }

    /// A personal account with no password: it signs in with OpenID Connect only.
    fn account(&self, username: &str, role_args: &[&str]) {
        let mut args = vec!["user", "create", username];
        args.extend_from_slice(role_args);
        self.cli(&args);
    }

    /// `GET /api/auth/oidc`'s JSON (asserting 200).
    async fn oidc_status(&self) -> serde_json::Value {
        let response = reqwest::get(self.url("/api/auth/oidc"))
            .await
            .expect("GET /api/auth/oidc");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json().await.expect("JSON")
    }

    /// `GET /api/auth/oidc/start` in `browser`: checks the redirect to the provider and the
    /// state cookie, and returns the provider's authorization URL.
    async fn start_sign_in(&self, browser: &reqwest::Client) -> String {
        let response = browser
            .get(self.url("/api/auth/oidc/start"))
            .send()
            .await
            .expect("GET /api/auth/oidc/start");
        let landing = Landing::of(response);
        assert_eq!(
            landing.status,
            reqwest::StatusCode::SEE_OTHER,
            "{landing:?}"
        );
        let authorize = landing.location.clone();
        assert!(
            authorize.starts_with(&format!("{}/", self.provider.issuer())),
            "{authorize}"
        );
        let query: HashMap<String, String> = reqwest::Url::parse(&authorize)
            .expect("authorize URL")
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(query.get("client_id").map(String::as_str), Some(CLIENT_ID));
        assert_eq!(query.get("redirect_uri"), Some(&self.redirect_url()));
        assert_eq!(query.get("response_type").map(String::as_str), Some("code"));
        // The state goes to the provider and, as a cookie, to this browser only.
        let cookie = landing
            .cookie(STATE_COOKIE)
            .unwrap_or_else(|| panic!("no state cookie: {landing:?}"));
        assert_eq!(
            Some(cookie_value(cookie)),
            query.get("state").map(String::as_str),
            "{cookie}"
        );
        for attribute in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/api/auth/oidc/",
            "Max-Age=600",
        ] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        // Plain HTTP on loopback: a Secure cookie would not come back.
        assert!(!cookie.contains("Secure"), "{cookie}");
        authorize
    }

    /// The whole sign-in in `browser`, as `account` at the provider; vft's answer to the
    /// callback.
    async fn sign_in(&self, browser: &reqwest::Client, account: &str) -> Landing {
        self.sign_in_doing(browser, AtProvider::SignInAs(account))
            .await
    }

    async fn sign_in_doing(&self, browser: &reqwest::Client, what: AtProvider<'_>) -> Landing {
        let authorize = self.start_sign_in(browser).await;
        let back = through_provider(browser, &authorize, what, &self.redirect_url()).await;
        self.callback(browser, back.as_str()).await
    }

    /// `GET` vft's callback URL (as the provider redirected to it) in `browser`.
    async fn callback(&self, browser: &reqwest::Client, url: &str) -> Landing {
        Landing::of(browser.get(url).send().await.expect("GET the callback"))
    }

    /// `GET /api/v1/session` with `browser`'s cookies: the session's JSON, or `None` when
    /// vft says 401 (no session).
    async fn session(&self, browser: &reqwest::Client) -> Option<serde_json::Value> {
        let response = browser
            .get(self.url("/api/v1/session"))
            .send()
            .await
            .expect("GET /api/v1/session");
        match response.status() {
            reqwest::StatusCode::OK => Some(response.json().await.expect("session JSON")),
            reqwest::StatusCode::UNAUTHORIZED => None,
            other => panic!("GET /api/v1/session: {other}"),
        }
    }

    /// The audit log's `action` records of `actor` whose subjects include `subject`, once
    /// there are `count` of them (records are written by group commit, a moment later).
    async fn audited(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        count: usize,
    ) -> Vec<serde_json::Value> {
        let timeout = Duration::from_secs(30);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let matching: Vec<_> = self
                .audit(Some(actor), action)
                .await
                .into_iter()
                .filter(|r| {
                    r["subjects"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|v| v == subject))
                })
                .collect();
            if matching.len() >= count {
                assert_eq!(matching.len(), count, "{matching:#?}");
                return matching;
            }
            if std::time::Instant::now() >= deadline {
                let everyone = self.audit(None, action).await;
                panic!(
                    "no {count} {action} record(s) of {actor} with {subject} within {timeout:?}; \
                     the {action} records are: {everyone:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /api/v1/audit?[actor=…&]action=…` as the coordinator.
    async fn audit(&self, actor: Option<&str>, action: &str) -> Vec<serde_json::Value> {
        let mut query = vec![("action", action)];
        query.extend(actor.map(|a| ("actor", a)));
        let response = reqwest::Client::new()
            .get(self.url("/api/v1/audit"))
            .query(&query)
            .bearer_auth(&self.coordinator)
            .send()
            .await
            .expect("GET /api/v1/audit");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let page: serde_json::Value = response.json().await.expect("audit JSON");
        page["records"].as_array().cloned().unwrap_or_default()
    }
}

fn write_accounts(path: &std::path::Path, accounts: &serde_json::Value) {
    std::fs::write(path, accounts.to_string()).expect("write the provider's accounts");
}

const SESSION_COOKIE: &str = "vft_session";
const STATE_COOKIE: &str = "vft_oidc_state";

/// What vft answered: status, `Location` and every `Set-Cookie`.
#[derive(Debug)]
struct Landing {
    status: reqwest::StatusCode,
    location: String,
    cookies: Vec<String>,
}

impl Landing {
    fn of(response: reqwest::Response) -> Self {
        let headers = response.headers();
        Self {
            status: response.status(),
            location: headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            cookies: headers
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The `Set-Cookie` line of cookie `name`.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }

    /// Back on the dashboard with a session: 303 to `/`, the session cookie set, the state
    /// cookie cleared. Returns the session cookie's value.
    fn assert_signed_in(&self) -> String {
        assert_eq!(self.status, reqwest::StatusCode::SEE_OTHER, "{self:?}");
        assert_eq!(self.location, "/", "{self:?}");
        let session = self
            .cookie(SESSION_COOKIE)
            .unwrap_or_else(|| panic!("no session cookie: {self:?}"));
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(session.contains(attribute), "{attribute} in {session}");
        }
        assert!(!session.contains("Secure"), "{session}");
        assert!(cookie_value(session).len() >= 32, "{session}");
        self.assert_state_cleared();
        cookie_value(session).to_owned()
    }

    /// Back on the dashboard with `?sign_in_error=code` and no session cookie; the state
    /// cookie cleared.
    fn assert_refused(&self, code: &str) {
        assert_eq!(self.status, reqwest::StatusCode::SEE_OTHER, "{self:?}");
        assert_eq!(self.location, format!("/?sign_in_error={code}"), "{self:?}");
        assert!(self.cookie(SESSION_COOKIE).is_none(), "{self:?}");
        self.assert_state_cleared();
    }

    fn assert_state_cleared(&self) {
        let state = self
            .cookie(STATE_COOKIE)
            .unwrap_or_else(|| panic!("the state cookie is not cleared: {self:?}"));
        assert!(
            cookie_value(state).is_empty() && state.contains("Max-Age=0"),
            "{state}"
        );
        assert!(state.contains("Path=/api/auth/oidc/"), "{state}");
    }
}

/// `name=value; attributes…` → `value`.
fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map_or("", |(_, v)| v.trim())
}

/// The first value of `key` in a URL's query.
fn query_value(url: &str, key: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_with_an_account_signs_in_to_vft_with_the_provider() {
    let Some(mut site) = Site::start(SiteOptions::default()).await else {
        return;
    };
    assert_eq!(
        site.oidc_status().await,
        serde_json::json!({ "enabled": true })
    );
    // Made by the coordinator, named by the person's address at the provider.
    site.account(
        "alice@kommune.example",
        &["--role", "municipality", "--municipality", "3328"],
    );

    let browser = browser();
    assert!(site.session(&browser).await.is_none());
    let first = site.sign_in(&browser, "alice").await.assert_signed_in();
    let session = site.session(&browser).await.expect("a session");
    assert_eq!(session["actor"], "user:alice@kommune.example", "{session}");
    assert_eq!(session["role"], "municipality", "{session}");
    assert_eq!(session["municipality"], "3328", "{session}");
    assert!(session["expires_at"].is_string(), "{session}");

    // Again, in the same browser (still signed in at the provider): a new session.
    let second = site.sign_in(&browser, "alice").await.assert_signed_in();
    assert_ne!(first, second);
    assert_eq!(
        site.session(&browser).await.expect("a session")["actor"],
        "user:alice@kommune.example"
    );

    // Her address changes at the provider (a new name, a new domain): the first sign-in bound
    // her provider subject to the account, which is found by it now. And whoever gets her old
    // address at the provider does not get her account.
    let mut accounts = provider_accounts();
    accounts[0]["email"] = "alice.aasen@ny.kommune.example".into();
    accounts
        .as_array_mut()
        .expect("array")
        .push(serde_json::json!({
            "sub": "mallory",
            "email": "alice@kommune.example",
            "email_verified": true,
            "name": "Not Alice",
        }));
    write_accounts(&site.accounts_file, &accounts);
    site.provider.restart();
    let browser = self::browser();
    site.sign_in(&browser, "alice").await.assert_signed_in();
    assert_eq!(
        site.session(&browser).await.expect("a session")["actor"],
        "user:alice@kommune.example"
    );
    let other = self::browser();
    site.sign_in(&other, "mallory")
        .await
        .assert_refused("no_account");
    assert!(site.session(&other).await.is_none());

    // Every sign-in is in the audit log, as an OpenID sign-in of her account.
    let records = site
        .audited("user:alice@kommune.example", "sign_in", "method=oidc", 3)
        .await;
    for r in &records {
        assert_eq!(r["role"], "municipality 3328", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["client"], "127.0.0.1", "{r}");
        assert_eq!(r["route"], "GET /api/auth/oidc/callback", "{r}");
    }
    // The attempt to take her account over is recorded under the identity that tried.
    let refused = site
        .audited(
            "oidc:mallory",
            "sign_in_failed",
            "bound_to_another_identity",
            1,
        )
        .await;
    assert!(
        refused[0]["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == "claimed=user:alice@kommune.example")),
        "{refused:?}"
    );
    assert!(
        site.audit(Some("user:alice@kommune.example"), "sign_in_failed")
            .await
            .is_empty(),
        "nothing failed under her name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_without_an_account_or_a_verified_address_gets_none() {
    let Some(site) = Site::start(SiteOptions::default()).await else {
        return;
    };
    // bob has an account, under the address the provider has for him but has not verified;
    // frida's account is in lower case, her address at the provider is not.
    site.account("bob@kommune.example", &["--role", "coordinator"]);
    site.account("frida.fjell@kommune.example", &["--role", "operator"]);

    // erik has no account: nobody gets one by signing in.
    let erik = browser();
    site.sign_in(&erik, "erik")
        .await
        .assert_refused("no_account");
    assert!(site.session(&erik).await.is_none());
    site.audited(
        "user:erik.eng@kommune.example",
        "sign_in_failed",
        "no_account",
        1,
    )
    .await;

    // An unverified address could be anyone's: it names no account, and the record names
    // the provider's subject instead.
    let bob = browser();
    site.sign_in(&bob, "bob").await.assert_refused("no_account");
    assert!(site.session(&bob).await.is_none());
    site.audited("oidc:bob", "sign_in_failed", "no_account", 1)
        .await;
    // Nor does no address at all.
    let carol = browser();
    site.sign_in(&carol, "carol")
        .await
        .assert_refused("no_account");
    site.audited("oidc:carol", "sign_in_failed", "no_account", 1)
        .await;

    // Addresses compare as usernames do: case does not matter.
    let frida = browser();
    site.sign_in(&frida, "frida").await.assert_signed_in();
    let session = site.session(&frida).await.expect("a session");
    assert_eq!(session["actor"], "user:frida.fjell@kommune.example");
    assert_eq!(session["role"], "operator");

    // bob's account was not touched: no sign-in of it anywhere.
    assert!(
        site.audit(Some("user:bob@kommune.example"), "sign_in")
            .await
            .is_empty()
    );
    assert!(
        site.audit(Some("user:bob@kommune.example"), "sign_in_failed")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_cannot_sign_in_with_the_provider() {
    let Some(site) = Site::start(SiteOptions::default()).await else {
        return;
    };
    site.account("dina@kommune.example", &["--role", "auditor"]);
    let browser = browser();
    site.sign_in(&browser, "dina").await.assert_signed_in();
    assert_eq!(
        site.session(&browser).await.expect("a session")["role"],
        "auditor"
    );

    site.cli(&["user", "disable", "dina@kommune.example"]);
    // Her session ended with the account, and the provider does not open a new one.
    assert!(site.session(&browser).await.is_none());
    site.sign_in(&browser, "dina")
        .await
        .assert_refused("disabled");
    assert!(site.session(&browser).await.is_none());
    let records = site
        .audited("user:dina@kommune.example", "sign_in_failed", "disabled", 1)
        .await;
    assert_eq!(records[0]["role"], "auditor", "{records:?}");

    site.cli(&["user", "enable", "dina@kommune.example"]);
    site.sign_in(&browser, "dina").await.assert_signed_in();
    assert!(site.session(&browser).await.is_some());
    site.audited("user:dina@kommune.example", "sign_in", "method=oidc", 2)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_finishes_only_in_the_browser_that_began_it() {
    let Some(site) = Site::start(SiteOptions::default()).await else {
        return;
    };
    site.account("alice@kommune.example", &["--role", "coordinator"]);

    // Someone begins a sign-in and goes through the provider, but hands the callback to
    // another browser (login CSRF: the victim would be signed in as the attacker).
    let attacker = browser();
    let authorize = site.start_sign_in(&attacker).await;
    let back = through_provider(
        &attacker,
        &authorize,
        AtProvider::SignInAs("alice"),
        &site.redirect_url(),
    )
    .await;
    assert!(query_value(back.as_str(), "code").is_some(), "{back}");

    // A browser that never began a sign-in.
    let victim = browser();
    site.callback(&victim, back.as_str())
        .await
        .assert_refused("failed");
    assert!(site.session(&victim).await.is_none());
    // A browser that began a sign-in of its own.
    let other = browser();
    site.start_sign_in(&other).await;
    site.callback(&other, back.as_str())
        .await
        .assert_refused("failed");
    assert!(site.session(&other).await.is_none());
    site.audited("oidc:unknown", "sign_in_failed", "state_mismatch", 2)
        .await;
    assert!(
        site.audit(Some("user:alice@kommune.example"), "sign_in")
            .await
            .is_empty()
    );

    // In the browser that began it, the same callback signs in (once).
    site.callback(&attacker, back.as_str())
        .await
        .assert_signed_in();
    assert!(site.session(&attacker).await.is_some());
    site.callback(&attacker, back.as_str())
        .await
        .assert_refused("failed");
    site.audited("user:alice@kommune.example", "sign_in", "method=oidc", 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_at_the_provider_returns_to_the_dashboard() {
    let Some(site) = Site::start(SiteOptions::default()).await else {
        return;
    };
    site.account("alice@kommune.example", &["--role", "coordinator"]);

    // The provider's own cancel link: it sends the browser back with error=access_denied.
    let browser = browser();
    let authorize = site.start_sign_in(&browser).await;
    let back = through_provider(
        &browser,
        &authorize,
        AtProvider::Cancel,
        &site.redirect_url(),
    )
    .await;
    assert_eq!(
        query_value(back.as_str(), "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
    assert!(query_value(back.as_str(), "code").is_none(), "{back}");
    site.callback(&browser, back.as_str())
        .await
        .assert_refused("cancelled");
    assert!(site.session(&browser).await.is_none());

    // The same answer sent straight to vft, by a browser that began nothing.
    let stranger = self::browser();
    site.callback(
        &stranger,
        &site.url("/api/auth/oidc/callback?error=access_denied&state=whatever"),
    )
    .await
    .assert_refused("cancelled");
    // A callback with neither a code nor an error.
    site.callback(&stranger, &site.url("/api/auth/oidc/callback"))
        .await
        .assert_refused("failed");

    // After cancelling, the person can still sign in.
    site.sign_in(&browser, "alice").await.assert_signed_in();
    assert!(site.session(&browser).await.is_some());
    site.audited("user:alice@kommune.example", "sign_in", "method=oidc", 1)
        .await;
    // Both cancellations are recorded.
    site.audited("oidc:unknown", "sign_in_failed", "cancelled", 2)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_sign_in_is_offered_only_when_configured_and_its_secret_is_never_shown() {
    // Without [oidc]: the routes are not there.
    let scratch = support::Scratch::new();
    let (plain, _broker) = support::serve(&scratch, None, &[]);
    for path in [
        "/api/auth/oidc",
        "/api/auth/oidc/start",
        "/api/auth/oidc/callback?code=c&state=s",
    ] {
        let response = browser()
            .get(format!("{}{path}", plain.api))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
    }
    drop(plain);

    // With [oidc], the secret given in the environment.
    let Some(site) = Site::start(SiteOptions {
        secret_in_env: true,
        ..SiteOptions::default()
    })
    .await
    else {
        return;
    };
    assert_eq!(
        site.oidc_status().await,
        serde_json::json!({ "enabled": true })
    );
    site.account("alice@kommune.example", &["--role", "coordinator"]);
    let browser = browser();
    site.sign_in(&browser, "alice").await.assert_signed_in();

    // print-config shows the section, the secret masked, whether it came from the file or
    // the environment.
    let config = site.dir.path().join("vft.toml");
    let with_file_secret = site.dir.path().join("with-secret.toml");
    std::fs::write(
        &with_file_secret,
        format!(
            "{}client_secret = {CLIENT_SECRET:?}\n",
            std::fs::read_to_string(&config).expect("config")
        ),
    )
    .expect("write config");
    for (file, env) in [
        (&with_file_secret, None),
        (&config, Some(("VFT_OIDC__CLIENT_SECRET", CLIENT_SECRET))),
    ] {
        let mut command = std::process::Command::new(support::VFT);
        command
            .arg("print-config")
            .arg("--config")
            .arg(file)
            .current_dir(site.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("VFT_OIDC__CLIENT_SECRET");
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let out = command.output().expect("vft print-config");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("[oidc]"), "{stdout}");
        assert!(
            stdout.contains(&format!("issuer = \"{}\"", site.provider.issuer())),
            "{stdout}"
        );
        assert!(
            stdout.contains("client_secret = \"[redacted]\""),
            "{stdout}"
        );
        assert!(stdout.contains("username_claim = \"email\""), "{stdout}");
        assert!(
            !stdout.contains(CLIENT_SECRET) && !stderr.contains(CLIENT_SECRET),
            "{stdout}{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vft_starts_while_the_provider_is_down_and_signs_in_once_it_is_up() {
    let Some(mut site) = Site::start(SiteOptions {
        provider_down: true,
        ..SiteOptions::default()
    })
    .await
    else {
        return;
    };
    // Site::start waited for /readyz: vft is up and ready without its provider.
    assert_eq!(
        site.oidc_status().await,
        serde_json::json!({ "enabled": true })
    );
    site.account("alice@kommune.example", &["--role", "coordinator"]);

    let browser = browser();
    let response = browser
        .get(site.url("/api/auth/oidc/start"))
        .send()
        .await
        .expect("GET /api/auth/oidc/start");
    let landing = Landing::of(response);
    assert_eq!(
        landing.status,
        reqwest::StatusCode::SEE_OTHER,
        "{landing:?}"
    );
    assert_eq!(
        landing.location, "/?sign_in_error=provider_unavailable",
        "{landing:?}"
    );
    assert!(landing.cookie(STATE_COOKIE).is_none(), "{landing:?}");

    // The provider comes up; vft, not restarted, finds it at the next sign-in.
    site.provider.restart();
    site.sign_in(&browser, "alice").await.assert_signed_in();
    assert_eq!(
        site.session(&browser).await.expect("a session")["actor"],
        "user:alice@kommune.example"
    );
    site.audited("user:alice@kommune.example", "sign_in", "method=oidc", 1)
        .await;
}
