//! OpenAPI schemas of the vft-domain values that use case results hold and the API serializes
//! as they are (vft-domain does not depend on utoipa). The HTTP API names them through its
//! own `schemas` module; they live here because the result types deriving `ToSchema` do
//! (decision 0021).

use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// `vft_domain::YearMonth`: serialized as `YYYY-MM`.
#[allow(dead_code)] // Never built: only its schema is used.
pub struct Month;

impl PartialSchema for Month {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A Europe/Oslo month, YYYY-MM."))
            .pattern(Some("^[0-9]{4}-(0[1-9]|1[0-2])$"))
            .examples(["2025-06"])
            .into()
    }
}

impl ToSchema for Month {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Month")
    }
}

/// `vft_domain::TechnologyKind`: serialized as its id. Built from the domain's own list, so it
/// cannot fall behind it.
#[allow(dead_code)] // Never built: only its schema is used.
pub struct Kind;

impl PartialSchema for Kind {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A technology type, in table order."))
            .enum_values(Some(
                vft_domain::TechnologyKind::ALL.map(vft_domain::TechnologyKind::id),
            ))
            .into()
    }
}

impl ToSchema for Kind {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TechnologyKind")
    }
}
