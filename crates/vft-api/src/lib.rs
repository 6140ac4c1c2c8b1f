//! The HTTP API (Contract 2 in DESIGN.md). Only this crate touches axum. The listener and the
//! shutdown signal are injected, so tests run the real router on port 0.

pub mod accounts;
pub mod audit;
pub mod audit_slot;
pub mod auth;
mod client_ip;
pub mod devices;
mod error;
mod figures;
pub mod imports;
pub mod mqtt_credentials;
pub mod notifications;
pub mod oidc;
pub mod oidc_sign_in;
mod openapi;
pub mod report;
mod rollups;
mod schemas;
mod service_level;
pub mod session;
pub mod throttle;
pub mod ui;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Instant;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;
use vft_domain::Registry;
use vft_store::Store;

pub use error::ApiError;
pub use session::SessionSettings;

/// Whether the parts the API depends on beside the store (ingest's broker connection) are up.
/// Whether ingest is ingesting; on `Err`, a stable code (`/readyz` shows only the code).
pub type ReadinessProbe = Arc<dyn Fn() -> Result<(), &'static str> + Send + Sync>;
/// Renders the Prometheus exposition text.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub readiness: ReadinessProbe,
    pub metrics: MetricsRenderer,
    pub timeouts: vft_store::Timeouts,
    pub cooperations: Arc<Vec<vft_domain::membership::Cooperation>>,
    /// Inventory export formats per vendor (`[imports.<vendor>]`).
    pub imports: Arc<vft_app::transition::ImportFormats>,
    pub reconciliation: vft_app::transition::ReconcileSettings,
    pub sessions: SessionSettings,
    /// Wrong sign-in tokens per client and in total (one per server).
    pub sign_in_throttle: Arc<throttle::SignInThrottle>,
    /// Wrong bearer tokens and session cookies on API requests, per client
    /// ([`throttle::SignInThrottle::per_client`]).
    pub credential_throttle: Arc<throttle::SignInThrottle>,
    /// Dates an import may carry (`as_of`, installed dates), as ingest's event times.
    pub plausible_times: vft_domain::PlausibleTimes,
    /// The audit log's writer (`audit::AuditTrail::start`).
    pub audit: Arc<audit::AuditTrail>,
    /// The MQTT topic prefix (`mqtt.topic_prefix`): a replayed dead letter's topic is read
    /// with it.
    pub topic_prefix: String,
    /// Sign-in with the organisation's OpenID provider, when configured (`[oidc]`).
    pub oidc: Option<Arc<oidc_sign_in::OidcSignIn>>,
}

/// Largest sign-in body: `{"username": …, "password": …}` (a password of at most 1 KiB).
const SIGN_IN_BODY_LIMIT: usize = 4 * 1024;

/// What every API response says about caching and framing, errors included: personal data is
/// never kept by a browser or proxy cache (`no-store`, unless a route set its own, as the
/// dashboard's files do), no type is sniffed, no page of vft is framed by another site, and a
/// response opened as a page runs nothing (the dashboard's page sets its own policy).
const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Largest inventory export accepted in one request.
pub const IMPORT_BODY_LIMIT: usize = 200 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/rollups/devices", get(rollups::devices))
        .route("/dead-letters", get(rollups::dead_letters))
        .route(
            "/dead-letters/{id}/handled",
            axum::routing::post(rollups::mark_handled),
        )
        .route(
            "/dead-letters/{id}/replay",
            axum::routing::post(rollups::replay),
        )
        .route("/rollups/devices/changes", get(rollups::changes))
        .route("/rollups/response-centre", get(figures::response_centre))
        .route(
            "/rollups/response-centre/unanswered",
            get(figures::unanswered),
        )
        .route("/rollups/medication", get(figures::medication))
        .route(
            "/rollups/vendor-service",
            get(service_level::vendor_service_level),
        )
        .route("/months", get(figures::published))
        .route(
            "/months/{month}/publish",
            axum::routing::post(figures::publish),
        )
        .route("/devices", get(devices::list))
        .route("/vendors", get(devices::vendors))
        .route("/devices/{vendor}/{device}", get(devices::show))
        .route(
            "/devices/{vendor}/{device}/timeout",
            axum::routing::put(devices::set_timeout),
        )
        .route("/session", get(session::current))
        .route("/municipalities", get(session::municipalities))
        .route("/cooperations", get(session::cooperations))
        .route("/imports", get(imports::history))
        .route("/imports/errors", get(imports::errors))
        .route(
            "/imports/{vendor}",
            // Exports of a national fleet run to hundreds of megabytes.
            axum::routing::post(imports::post_import)
                .layer(axum::extract::DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route("/reconciliation", get(imports::reconciliation))
        .route("/reconciliation/progress", get(imports::progress))
        .route("/reports/monthly.pdf", get(report::monthly_pdf))
        .route("/reports/monthly.xlsx", get(report::monthly_xlsx))
        .route(
            "/mqtt-credentials",
            get(mqtt_credentials::list)
                .post(mqtt_credentials::post)
                .delete(mqtt_credentials::revoke),
        )
        .route(
            "/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route(
            "/users/{username}",
            axum::routing::patch(accounts::update_user),
        )
        .route(
            "/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route(
            "/tokens/{id}",
            axum::routing::delete(accounts::revoke_token),
        )
        .route("/audit", get(audit::list))
        .route(
            "/notification-rules",
            get(notifications::list_rules).post(notifications::create_rule),
        )
        .route("/notification-rules/kinds", get(notifications::kinds))
        .route(
            "/notification-rules/{id}",
            axum::routing::delete(notifications::delete_rule),
        )
        .route("/incidents", get(notifications::incidents))
        // After routing (a route layer), so the record names the route's template.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            audit::record_requests,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/api/openapi.json", get(openapi::serve))
        .route(
            "/api/session",
            axum::routing::post(session::sign_in)
                .layer(axum::extract::DefaultBodyLimit::max(SIGN_IN_BODY_LIMIT))
                .delete(session::sign_out),
        )
        .route("/api/auth/oidc", get(oidc_sign_in::status))
        .route("/api/auth/oidc/start", get(oidc_sign_in::start))
        .route("/api/auth/oidc/callback", get(oidc_sign_in::callback))
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::file))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn(record_metrics))
        // 5xx responses (a not-ready /readyz among them) are logged as warnings, not errors:
        // the API logs real failures itself.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::WARN)))
        // Outermost, so the fallback, 405s and every error carry them too.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests. Each request knows its
/// peer's address (sign-in throttling counts per client).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Marks a request that `serve_tls` received (see `session::SERVED_OVER_TLS`).
#[derive(Clone, Copy)]
struct ServedOverTls;

/// Serves HTTPS with `tls` until `shutdown` resolves, then lets in-flight connections finish
/// (at most 30 s). A TLS handshake gets 10 s; a client that fails it is dropped and counted
/// (`vft_http_tls_handshake_failures_total`). HTTP/1.1 and HTTP/2 (by ALPN, when `tls` offers
/// it). Each request knows its peer's address, as with [`serve`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, never spin.
                    tracing::warn!(error = %e, "cannot accept an HTTPS connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await;
            let Ok(Ok(stream)) = handshake else {
                metrics::counter!("vft_http_tls_handshake_failures_total").increment(1);
                return;
            };
            let service =
                hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request.extensions_mut().insert(ServedOverTls);
                    request.headers_mut().insert(
                        session::SERVED_OVER_TLS,
                        axum::http::HeaderValue::from_static("1"),
                    );
                    app.clone().oneshot(request.map(axum::body::Body::new))
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, %peer, "HTTPS connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await;
    Ok(())
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "ok")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// How a CSV export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsvDialect {
    /// RFC 4180: commas, decimal points, UTF-8 without a byte-order mark (`format=csv`).
    Standard,
    /// For Norwegian spreadsheets (`format=excel`): semicolons, decimal commas, CRLF, and a
    /// UTF-8 byte-order mark (without it Excel reads the file as Windows-1252: "Ã…l").
    Spreadsheet,
}

/// `format=csv|excel|json`, else the `Accept` header: whether (and how) an endpoint answers as
/// CSV.
pub(crate) fn wants_csv(
    format: Option<&str>,
    headers: &axum::http::HeaderMap,
) -> Result<Option<CsvDialect>, ApiError> {
    match format {
        Some("csv") => Ok(Some(CsvDialect::Standard)),
        Some("excel") => Ok(Some(CsvDialect::Spreadsheet)),
        Some("json") => Ok(None),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format must be json, csv or excel, got {:?}",
            other.chars().take(64).collect::<String>()
        ))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"))
            .then_some(CsvDialect::Standard)),
    }
}

/// A decimal number as a CSV cell holds it (`97.5`, `-0.25`): what a spreadsheet must read
/// with a decimal comma. Ids like `1.2.3` or `v1.0a` are left alone.
fn is_decimal(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    matches!(digits.split_once('.'), Some((whole, fraction))
        if !whole.is_empty() && !fraction.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit()))
}

/// Rewrites a standard CSV body in `dialect`.
pub(crate) fn csv_in(dialect: CsvDialect, body: String) -> String {
    if dialect == CsvDialect::Standard {
        return body;
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(Vec::from("\u{feff}".as_bytes()));
    for record in reader.records().flatten() {
        let cells: Vec<String> = record
            .iter()
            .map(|c| {
                if is_decimal(c) {
                    c.replacen('.', ",", 1)
                } else {
                    c.to_owned()
                }
            })
            .collect();
        let _ = writer.write_record(&cells);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A JSON body written into a buffer of `size_hint` bytes. axum's `Json` starts small and
/// doubles: for the national reconciliation (53 MB) that was a dozen reallocations, each
/// copying what was written and faulting in fresh pages (7 % of the request). Capacity not
/// written to is never touched, so a generous hint costs address space, not memory.
pub(crate) fn sized_json<T: serde::Serialize>(
    value: &T,
    size_hint: usize,
) -> Result<Response, ApiError> {
    let mut body = Vec::with_capacity(size_hint);
    serde_json::to_writer(&mut body, value)
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A CSV body as a download: `vft-{what}-{scope}-{date}.csv`, the date being today's in
/// Europe/Oslo (when the export was made), so downloads of several municipalities and days
/// do not overwrite each other.
pub(crate) fn csv_response(dialect: CsvDialect, what: &str, scope: &str, body: String) -> Response {
    let today = vft_domain::month::oslo_date(chrono::Utc::now());
    // Only characters every file system and header takes.
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    // The spreadsheet dialect says so in its name: both downloads of one export side by side.
    let dialect_suffix = match dialect {
        CsvDialect::Standard => "",
        CsvDialect::Spreadsheet => "-excel",
    };
    let filename = format!(
        "vft-{}-{}-{today}{dialect_suffix}.csv",
        safe(what),
        safe(scope)
    );
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv_in(dialect, body),
    )
        .into_response()
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn the_spreadsheet_dialect_uses_semicolons_decimal_commas_and_a_bom() {
        let standard = "kind,share,id,note\nsafety_alarm,97.5,1.2.3,\"a; b\"\nÅl,-0.25,12,x\n";
        let nb = csv_in(CsvDialect::Spreadsheet, standard.to_owned());
        assert_eq!(
            nb,
            "\u{feff}kind;share;id;note\r\nsafety_alarm;97,5;1.2.3;\"a; b\"\r\nÅl;-0,25;12;x\r\n"
        );
        assert_eq!(csv_in(CsvDialect::Standard, standard.to_owned()), standard);
        for (cell, decimal) in [
            ("97.5", true),
            ("-0.25", true),
            ("12", false),
            ("1.", false),
            (".5", false),
            ("v1.0", false),
            ("1.2.3", false),
        ] {
            assert_eq!(is_decimal(cell), decimal, "{cell}");
        }
    }
}

/// Readiness: the database answers and ingest is subscribed to the broker.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, body = serde_json::Value), (status = 503, body = serde_json::Value)))]
async fn readyz(State(state): State<AppState>) -> Response {
    // Callers need no token here, so they get a code only; the detail goes to the log.
    let verdict = match state.store.ping().await {
        Ok(()) => (state.readiness)(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            Err("store_unreachable")
        }
    };
    match verdict {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready" })),
        )
            .into_response(),
        Err(code) => {
            tracing::debug!(reason = code, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "not ready", "reason": code })),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()), responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        (state.metrics)(),
    )
        .into_response()
}

/// Request count and latency per route template (bounded labels: never the raw path).
async fn record_metrics(mut request: Request, next: Next) -> Response {
    // Only serve_tls may say a request came over vft's own TLS; a client's claim is dropped.
    if request.extensions().get::<ServedOverTls>().is_none() {
        request.headers_mut().remove(session::SERVED_OVER_TLS);
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("vft_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("vft_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
