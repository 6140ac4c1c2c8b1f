//! The OpenAPI description, generated from the handlers' annotations and the types they take and
//! return; served at `/api/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: a stable code and a message for people.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// unauthorized, forbidden, bad_request, not_found, conflict or internal
    error: String,
    message: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The dashboard's session (from POST /api/session) works wherever the bearer does.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new(crate::auth::SESSION_COOKIE),
            )),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "vft", description = "Welfare-technology fleet tracker: HTTP API v1 (Contract 2 in DESIGN.md)."),
    paths(
        crate::rollups::devices,
        crate::rollups::changes,
        crate::rollups::dead_letters,
        crate::figures::response_centre,
        crate::figures::medication,
        crate::figures::published,
        crate::figures::publish,
        crate::devices::list,
        crate::devices::show,
        crate::devices::set_timeout,
        crate::imports::post_import,
        crate::imports::history,
        crate::imports::errors,
        crate::session::sign_in,
        crate::session::sign_out,
        crate::session::current,
        crate::session::municipalities,
        crate::session::cooperations,
        crate::imports::reconciliation,
        crate::imports::progress,
        crate::healthz,
        crate::readyz,
        crate::metrics,
    ),
    components(schemas(ErrorBody, crate::devices::DeviceView, crate::devices::TimeoutBody, crate::imports::ImportReport, crate::imports::RowErrorView, crate::imports::ImportView, crate::imports::ReconcileReport, crate::imports::ImportErrorView, crate::session::SignIn, crate::session::SessionView, crate::session::MunicipalityView)),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = []))
)]
pub struct ApiDoc;

pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("json");
        for path in [
            "/api/v1/rollups/devices",
            "/api/v1/rollups/devices/changes",
            "/api/v1/rollups/response-centre",
            "/api/v1/rollups/medication",
            "/api/v1/dead-letters",
            "/api/v1/months",
            "/api/v1/months/{month}/publish",
            "/api/v1/devices",
            "/api/v1/devices/{vendor}/{device}",
            "/api/v1/devices/{vendor}/{device}/timeout",
            "/api/v1/imports",
            "/api/v1/imports/{vendor}",
            "/api/v1/reconciliation",
            "/api/v1/reconciliation/progress",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(
                doc["paths"][path].is_object(),
                "{path} is not in the OpenAPI description"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let params = doc["paths"]["/api/v1/devices"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        assert!(params.iter().any(|p| p["name"] == "connectivity"));
    }
}
