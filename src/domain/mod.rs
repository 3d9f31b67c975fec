//! The run record and the rules that make a value valid.

/// A type that exists only to name a schema in the OpenAPI document:
/// `documentation_type!(Type, "Name", schema expression)`.
macro_rules! documentation_type {
    ($type:ident, $name:literal, $schema:expr) => {
        pub struct $type;
        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema
            }
        }
        impl utoipa::ToSchema for $type {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}
pub(crate) use documentation_type;

/// The schema of a text matching `pattern`, for documentation types.
pub(crate) fn text_schema(pattern: &str) -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
}

pub mod datetime;
pub mod digest;
pub mod idempotency;
pub mod numbers;
pub mod policy;
pub mod record;
pub mod usual;
pub mod validation;

pub use datetime::FlexDateTime;
pub use idempotency::IdempotencyKey;
pub use record::{PipelineActivity, PipelineInfo, PipelineSummary, FIELD_NAMES};
pub use validation::{FieldError, LocItem, ValidationError, ValidationErrors};
