//! The OpenAPI description, generated from the handlers' annotations and the types they take and
//! return; served at `/api/openapi.json`.

use crate::schemas::*;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        crate::rollups::mark_handled,
        crate::rollups::replay,
        crate::figures::response_centre,
        crate::figures::unanswered,
        crate::figures::medication,
        crate::figures::published,
        crate::figures::publish,
        crate::devices::list,
        crate::devices::vendors,
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
        crate::report::monthly_pdf,
        crate::report::monthly_xlsx,
        crate::mqtt_credentials::post,
        crate::mqtt_credentials::list,
        crate::mqtt_credentials::revoke,
        crate::accounts::list_users,
        crate::accounts::create_user,
        crate::accounts::update_user,
        crate::accounts::list_tokens,
        crate::accounts::create_token,
        crate::accounts::revoke_token,
        crate::audit::list,
        crate::notifications::list_rules,
        crate::notifications::create_rule,
        crate::notifications::delete_rule,
        crate::notifications::kinds,
        crate::notifications::incidents,
        crate::service_level::vendor_service_level,
        crate::oidc_sign_in::status,
        crate::oidc_sign_in::start,
        crate::oidc_sign_in::callback,
        crate::healthz,
        crate::readyz,
        crate::metrics,
    ),
    components(schemas(
        ErrorBody,
        crate::accounts::UserView,
        crate::accounts::UserList,
        crate::accounts::NewUserRequest,
        crate::accounts::UserPatch,
        crate::accounts::TokenView,
        crate::accounts::TokenList,
        crate::accounts::NewTokenRequest,
        crate::accounts::CreatedToken,
        crate::audit::AuditRecordView,
        crate::audit::AuditPage,
        crate::notifications::NewRuleRequest,
        crate::notifications::RuleView,
        crate::notifications::RuleList,
        crate::notifications::RuleKindView,
        crate::notifications::NoticeView,
        crate::notifications::IncidentView,
        crate::notifications::IncidentList,
        vft_app::service_level::VendorServiceView,
        vft_app::service_level::VendorServiceRow,
        crate::mqtt_credentials::NewCredential,
        crate::mqtt_credentials::CredentialView,
        crate::mqtt_credentials::CreatedCredential,
        crate::mqtt_credentials::CredentialList,
        crate::session::MunicipalityList,
        crate::session::CooperationList,
        crate::session::CooperationView,
        crate::session::MembershipView,
        Month,
        Kind,
        EventTypeId,
        AlarmCause,
        OutcomeId,
        Outcomes,
        ReconcileClassId,
        ReconcileTotals,
        VendorDevicePair,
        SubjectKey,
        crate::rollups::DeviceTableView,
        crate::rollups::TableRowView,
        crate::rollups::RecipientTableView,
        crate::rollups::RecipientRowView,
        vft_app::rollups::CorrectionView,
        vft_app::rollups::ChangesView,
        vft_app::rollups::ChangeRowView,
        vft_app::rollups::ChangeLineView,
        vft_app::rollups::ChangeCauseView,
        vft_app::rollups::DeviceKeyView,
        crate::rollups::DeadLetterPage,
        crate::rollups::DeadLetterView,
        crate::rollups::ReplayView,
        crate::figures::ResponseCentreView,
        crate::figures::UnansweredView,
        crate::figures::UnansweredAlarm,
        crate::figures::StandardView,
        crate::figures::ResponseMonth,
        crate::figures::ResponseTimesSchema,
        vft_app::figures::MedicationView,
        vft_app::figures::MedicationMonthView,
        crate::figures::PublishView,
        crate::figures::PublishedMonthsView,
        crate::figures::PublishedMonthView,
        vft_app::inventory::DeviceView,
        vft_app::inventory::DevicePage,
        crate::devices::VendorList,
        crate::devices::DeviceDetail,
        crate::devices::HistoryEvent,
        crate::devices::TimeoutBody,
        crate::imports::ImportReportSchema,
        crate::imports::RowErrorSchema,
        crate::imports::ImportView,
        crate::imports::ImportHistory,
        crate::imports::ImportErrorView,
        crate::imports::ImportErrors,
        crate::imports::ReconcileReportSchema,
        crate::imports::ReconcileRowSchema,
        crate::imports::SubjectSchema,
        crate::imports::ProgressView,
        crate::imports::ProgressRowView,
        crate::session::SignIn,
        crate::session::SessionView,
        crate::session::MunicipalityView,
    )),
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
            "/api/v1/mqtt-credentials",
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

    /// Where `schema` (followed through `$ref`s, however deep) leaves the shape open: utoipa's
    /// `{}` for `serde_json::Value`, or an object with no properties. `None` when fully typed.
    fn free_form(
        schema: &serde_json::Value,
        components: &serde_json::Value,
        seen: &mut Vec<String>,
        at: &str,
    ) -> Option<String> {
        let Some(node) = schema.as_object() else {
            return Some(format!("{at}: not a schema object"));
        };
        if let Some(reference) = node.get("$ref").and_then(|r| r.as_str()) {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or(reference);
            if seen.iter().any(|s| s == name) {
                return None;
            }
            seen.push(name.to_owned());
            let target = &components[name];
            if target.is_null() {
                return Some(format!("{at}: {reference} is not a registered schema"));
            }
            return free_form(target, components, seen, name);
        }
        let composed = ["oneOf", "anyOf", "allOf"]
            .into_iter()
            .filter_map(|k| node.get(k).and_then(|v| v.as_array()))
            .flatten();
        let mut children: Vec<(String, &serde_json::Value)> = composed
            .enumerate()
            .map(|(i, s)| (format!("{at}/{i}"), s))
            .collect();
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            children.extend(props.iter().map(|(k, s)| (format!("{at}.{k}"), s)));
        }
        for key in ["items", "additionalProperties"] {
            if let Some(s) = node.get(key).filter(|s| s.is_object()) {
                children.push((format!("{at}[{key}]"), s));
            }
        }
        let typed = ["type", "enum", "const"]
            .into_iter()
            .any(|k| node.contains_key(k));
        let is_object = match node.get("type") {
            Some(serde_json::Value::String(t)) => t == "object",
            Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => false,
        };
        let open_object = is_object
            && ![
                "properties",
                "additionalProperties",
                "oneOf",
                "anyOf",
                "allOf",
            ]
            .into_iter()
            .any(|k| node.contains_key(k));
        if (children.is_empty() && !typed) || open_object {
            return Some(format!("{at}: free-form {schema}"));
        }
        children
            .into_iter()
            .find_map(|(path, s)| free_form(s, components, seen, &path))
    }

    /// Every JSON success response under /api/v1 (every GET's 200 among them) documents its
    /// shape: a handler answering with `serde_json::Value`, or a type with a free-form part,
    /// fails here. CSV bodies are text and documents (PDF, XLSX) bytes: not checked.
    #[test]
    fn every_v1_json_response_is_typed() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("json");
        let components = &doc["components"]["schemas"];
        let mut gets = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for (method, op) in item.as_object().expect("path item") {
                let responses = op["responses"].as_object().expect("responses");
                if method == "get" {
                    gets += 1;
                    assert!(
                        responses.contains_key("200"),
                        "GET {path} documents no 200 response"
                    );
                }
                for (status, response) in responses {
                    if !status.starts_with('2') || status == "204" {
                        continue;
                    }
                    let Some(json) = response["content"].get("application/json") else {
                        // CSV, or a document (the monthly report's PDF and workbook).
                        assert!(
                            response["content"]
                                .as_object()
                                .is_some_and(|c| !c.is_empty()),
                            "{method} {path} {status} documents no body"
                        );
                        continue;
                    };
                    let problem = free_form(&json["schema"], components, &mut Vec::new(), "body");
                    if let Some(problem) = problem {
                        panic!("{method} {path} {status} has an untyped JSON body: {problem}");
                    }
                }
            }
        }
        assert!(gets >= 15, "only {gets} GET routes under /api/v1 found");
    }
}
