//! OpenID Connect sign-in against a real provider: oidc-provider (OpenID Certified), started by
//! `vft_testkit::oidc` from tests/oidc. vft's relying party (`vft_api::oidc`) discovers it,
//! begins a sign-in, and a scripted browser (reqwest with cookies) goes through the provider's
//! login and consent pages to the redirect, whose `code` and `state` `finish` then turns into a
//! verified identity. Then what must fail: an unknown or replayed state, a reused code, a code
//! from another sign-in, a changed nonce, an unreachable or mismatched issuer.
//!
//! Needs Node.js and `npm ci` in tests/oidc (`.ci/run` does both); without them the tests are
//! skipped loudly on a workstation and fail in CI.

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

/// Follows `authorize_url` through the provider's pages as `account` would: the login form
/// (account id typed; the password field is ignored by the development login), then the
/// consent form, until the provider redirects to vft's callback.
async fn sign_in_at_provider(
    browser: &reqwest::Client,
    authorize_url: &str,
    account: &str,
) -> Callback {
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
            if next.as_str().starts_with(REDIRECT_URL) {
                let query: HashMap<String, String> = next.query_pairs().into_owned().collect();
                assert!(
                    !query.contains_key("error"),
                    "the provider refused the sign-in: {query:?}"
                );
                return Callback {
                    code: query.get("code").expect("code").clone(),
                    state: query.get("state").expect("state").clone(),
                    iss: query.get("iss").cloned(),
                };
            }
            url = next;
            continue;
        }
        let body = response.text().await.expect("page");
        assert!(status.is_success(), "provider page {url}: {status}\n{body}");
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
    panic!("no redirect to {REDIRECT_URL} within {MAX_STEPS} pages");
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
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&#x27;", "'")
            .replace("&#x2F;", "/")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
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
