//! Schemas the handlers' OpenAPI annotations name: the error body, and hand-built schemas of
//! vft-domain values the API serializes as they are. Handlers use this module; `openapi.rs`
//! uses the handlers and this module, never the other way round (no import circle).

use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// Every error: a stable code and a message for people.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// unauthorized, forbidden, bad_request, not_found, conflict or internal
    error: String,
    message: String,
}

// Schema-only descriptions of vft-domain values that the API serializes as they are: vft-domain
// does not depend on utoipa, so these live here. Enumerations are built from the domain's own
// lists (`ALL` and `id()`), so they cannot fall behind it.

/// A named schema built by hand.
macro_rules! schema_only {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $schema:expr) => {
        $(#[$doc])*
        #[allow(dead_code)] // Never built: only its schema is used.
        pub struct $ty;
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

fn string_enum<'a>(description: &str, ids: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(ids))
        .into()
}

/// An object with one required non-negative integer per id.
fn counts_per_id<'a>(description: &str, ids: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    ids.into_iter()
        .fold(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(description)),
            |o, id| {
                o.property(
                    id,
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .required(id)
            },
        )
        .into()
}

// Month and technology type are vft-app's: the use cases' results derive their schemas there.
pub use vft_app::schema::{Kind, Month};

schema_only!(
    /// `vft_domain::EventType` as the device history shows it.
    EventTypeId,
    "EventType",
    string_enum(
        "What happened (Contract 1).",
        vft_domain::EventType::ALL.iter().map(|t| t.id())
    )
);

schema_only!(
    /// `vft_domain::Cause` as the device history shows it.
    AlarmCause,
    "AlarmCause",
    string_enum(
        "Why an alarm was raised.",
        vft_domain::Cause::ALL.iter().map(|c| c.id())
    )
);

schema_only!(
    /// `vft_domain::Outcome` as the device history shows it.
    OutcomeId,
    "Outcome",
    string_enum(
        "How the response centre closed an alarm.",
        vft_domain::Outcome::ALL.iter().map(|o| o.id())
    )
);

schema_only!(
    /// `MonthResponse::outcomes`: every outcome id is present.
    Outcomes,
    "Outcomes",
    counts_per_id(
        "Closed alarms per outcome; every outcome is present (0 when none).",
        vft_domain::Outcome::ALL.iter().map(|o| o.id())
    )
);

schema_only!(
    /// `vft_domain::reconcile::ReconcileClass`: serialized as its id.
    ReconcileClassId,
    "ReconcileClass",
    string_enum(
        "migrated, pending, double and new partition the subjects; listed_silent and reporting_unlisted are flags.",
        vft_domain::reconcile::ReconcileClass::ALL.map(vft_domain::reconcile::ReconcileClass::id)
    )
);

schema_only!(
    /// `ReconcileReport::totals`: a `BTreeMap<ReconcileClass, u64>` holding every class.
    ReconcileTotals,
    "ReconcileTotals",
    counts_per_id(
        "Subjects per class over the rows shown; every class is present.",
        vft_domain::reconcile::ReconcileClass::ALL.map(vft_domain::reconcile::ReconcileClass::id)
    )
);

schema_only!(
    /// A `(VendorId, DeviceId)` tuple: serialized as a two-element array.
    VendorDevicePair,
    "VendorDevicePair",
    ArrayBuilder::new()
        .description(Some("[vendor, device]"))
        .items(ObjectBuilder::new().schema_type(Type::String))
        .min_items(Some(2))
        .max_items(Some(2))
        .into()
);

schema_only!(
    /// `vft_domain::reconcile::SubjectKey`: serde's externally tagged enum.
    SubjectKey,
    "SubjectKey",
    OneOfBuilder::new()
        .description(Some(
            "A service recipient ({\"recipient\": ref}), or a device where there is none ({\"device\": [vendor, device]})."
        ))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("recipient", ObjectBuilder::new().schema_type(Type::String))
                .required("recipient")
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("device", VendorDevicePair::schema())
                .required("device")
        )
        .into()
);
