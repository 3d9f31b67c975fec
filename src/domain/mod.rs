//! The run record and the rules that make a value valid.

pub mod datetime;
pub mod idempotency;
pub mod numbers;
pub mod policy;
pub mod record;
pub mod usual;
pub mod validation;

pub use datetime::FlexDateTime;
pub use idempotency::IdempotencyKey;
pub use record::{PipelineInfo, PipelineSummary, FIELD_NAMES};
pub use validation::{FieldError, LocItem, ValidationError, ValidationErrors};
