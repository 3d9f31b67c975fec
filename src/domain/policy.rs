//! Optional rules on top of the contract's: strict validation (opt-in, so
//! the service stays a drop-in replacement) and allowed values for
//! `pipeline_type` and `environment`. They apply to records clients send,
//! never to records already stored.

use serde_json::Value;

use super::record::{PipelineInfo, FIELD_NAMES};
use super::validation::{FieldError, LocItem, ValidationErrors};

/// The rules in force for client records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidationPolicy {
    /// Ordered times, non-negative numbers, no unknown fields.
    pub strict: bool,
    /// When set, `pipeline_type` must be one of these (or null/absent).
    pub allowed_types: Option<Vec<String>>,
    /// When set, `environment` must be one of these (or null/absent).
    pub allowed_environments: Option<Vec<String>>,
}

impl ValidationPolicy {
    /// Whether any rule beyond the contract's is in force.
    pub fn is_plain(&self) -> bool {
        *self == Self::default()
    }

    /// Validates `value` as `PipelineInfo::parse` does, then adds this
    /// policy's errors. `also_allowed` names members that are not record
    /// fields but are not unknown either (a bulk item's key).
    pub fn parse(
        &self,
        value: &Value,
        root: &'static str,
        also_allowed: &[&str],
    ) -> Result<PipelineInfo, ValidationErrors> {
        let parsed = PipelineInfo::parse(value, root);
        let mut errors = match &parsed {
            Ok(record) => {
                let mut errors = ValidationErrors::default();
                self.check_record(record, root, &mut errors);
                errors
            }
            Err(errors) => errors.clone(),
        };
        if parsed.is_err() {
            self.check_choices_raw(value, root, &mut errors);
        }
        if self.strict {
            if let Value::Object(fields) = value {
                for (name, input) in fields {
                    if !FIELD_NAMES.contains(&name.as_str())
                        && !also_allowed.contains(&name.as_str())
                    {
                        errors.push(
                            FieldError::new("extra_forbidden", "Extra inputs are not permitted")
                                .at(loc(root, name), input.clone()),
                        );
                    }
                }
            }
        }
        match parsed {
            Ok(record) if errors.detail.is_empty() => Ok(record),
            _ => Err(errors),
        }
    }

    /// The rules a parsed record can break.
    pub fn check_record(
        &self,
        record: &PipelineInfo,
        root: &'static str,
        errors: &mut ValidationErrors,
    ) {
        if self.strict {
            let order =
                |errors: &mut ValidationErrors, end: &str, start: &str, ok: bool, input: String| {
                    if !ok {
                        errors.push(
                            FieldError::new(
                                "value_error",
                                format!("Value error, {end} must not be before {start}"),
                            )
                            .at(loc(root, end), Value::String(input)),
                        );
                    }
                };
            order(
                errors,
                "end_local",
                "start_local",
                record.end_local().wall_clock() >= record.start_local().wall_clock(),
                record.end_local().to_string(),
            );
            order(
                errors,
                "end_utc",
                "start_utc",
                record.end_utc().instant_micros() >= record.start_utc().instant_micros(),
                record.end_utc().to_string(),
            );
            let non_negative =
                |errors: &mut ValidationErrors, field: &str, ok: bool, input: Value| {
                    if !ok {
                        errors.push(
                            FieldError::new(
                                "greater_than_equal",
                                "Input should be greater than or equal to 0",
                            )
                            .with_ctx("ge", 0)
                            .at(loc(root, field), input),
                        );
                    }
                };
            let elapsed = record.elapsed_seconds();
            non_negative(errors, "elapsed_seconds", elapsed >= 0.0, elapsed.into());
            non_negative(
                errors,
                "rowcount",
                record.rowcount() >= 0,
                record.rowcount().into(),
            );
            non_negative(errors, "pid", record.pid() >= 0, record.pid().into());
        }
        self.check_choice(
            errors,
            root,
            "pipeline_type",
            record.pipeline_type(),
            &self.allowed_types,
        );
        self.check_choice(
            errors,
            root,
            "environment",
            record.environment(),
            &self.allowed_environments,
        );
    }

    /// Allowed-value checks straight from the input, for a body that failed
    /// elsewhere, so every problem is still reported at once.
    fn check_choices_raw(&self, value: &Value, root: &'static str, errors: &mut ValidationErrors) {
        let text = |name: &str| value.get(name).and_then(Value::as_str);
        self.check_choice(
            errors,
            root,
            "pipeline_type",
            text("pipeline_type"),
            &self.allowed_types,
        );
        self.check_choice(
            errors,
            root,
            "environment",
            text("environment"),
            &self.allowed_environments,
        );
    }

    fn check_choice(
        &self,
        errors: &mut ValidationErrors,
        root: &'static str,
        field: &str,
        value: Option<&str>,
        allowed: &Option<Vec<String>>,
    ) {
        let (Some(value), Some(allowed)) = (value, allowed) else {
            return;
        };
        if allowed.iter().any(|a| a == value) {
            return;
        }
        let expected = expected_text(allowed);
        errors.push(
            FieldError::new("enum", format!("Input should be {expected}"))
                .with_ctx("expected", expected)
                .at(loc(root, field), Value::String(value.to_owned())),
        );
    }
}

fn loc(root: &'static str, field: &str) -> Vec<LocItem> {
    vec![LocItem::from(root), LocItem::from(field)]
}

/// pydantic's wording: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`.
pub fn expected_text<S: AsRef<str>>(choices: &[S]) -> String {
    let quoted: Vec<String> = choices
        .iter()
        .map(|c| format!("'{}'", c.as_ref()))
        .collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::tests::sample;

    fn kinds(result: Result<PipelineInfo, ValidationErrors>) -> Vec<(String, &'static str)> {
        result
            .unwrap_err()
            .detail
            .into_iter()
            .map(|e| {
                let field = match e.loc.get(1) {
                    Some(LocItem::Key(k)) => k.clone(),
                    _ => String::new(),
                };
                (field, e.kind)
            })
            .collect()
    }

    #[test]
    fn plain_policy_accepts_what_the_contract_accepts() {
        let policy = ValidationPolicy::default();
        assert!(policy.is_plain());
        let mut body = sample();
        body["rowcount"] = (-1).into();
        body["end_utc"] = "2000-01-01T00:00:00Z".into();
        assert!(policy.parse(&body, "body", &[]).is_ok());
    }

    #[test]
    fn strict_policy_reports_every_rule() {
        let policy = ValidationPolicy {
            strict: true,
            ..ValidationPolicy::default()
        };
        let mut body = sample();
        body["end_local"] = "2025-08-08T05:00:00".into();
        body["end_utc"] = "2025-08-08T12:00:00Z".into();
        body["elapsed_seconds"] = (-1.5).into();
        body["rowcount"] = (-1).into();
        body["pid"] = (-7).into();
        assert_eq!(
            kinds(policy.parse(&body, "body", &[])),
            [
                ("end_local".to_owned(), "value_error"),
                ("end_utc".to_owned(), "value_error"),
                ("elapsed_seconds".to_owned(), "greater_than_equal"),
                ("rowcount".to_owned(), "greater_than_equal"),
                ("pid".to_owned(), "greater_than_equal"),
                ("extra".to_owned(), "extra_forbidden"),
            ]
        );
        let mut ok = sample();
        ok.as_object_mut().unwrap().remove("extra");
        ok["_idempotency_key"] = "k".into();
        assert!(policy.parse(&ok, "body", &["_idempotency_key"]).is_ok());
    }

    #[test]
    fn allowed_values_apply_with_or_without_strict() {
        let policy = ValidationPolicy {
            allowed_environments: Some(vec!["prod".into(), "dev".into(), "test".into()]),
            allowed_types: Some(vec!["batch".into()]),
            ..ValidationPolicy::default()
        };
        let mut body = sample();
        body["environment"] = "staging".into();
        let errors = policy.parse(&body, "body", &[]).unwrap_err().detail;
        assert_eq!(errors[0].kind, "enum");
        assert_eq!(errors[0].msg, "Input should be 'prod', 'dev' or 'test'");
        // Also reported next to other problems.
        body["rowcount"] = "many".into();
        body["pipeline_type"] = "stream".into();
        assert_eq!(
            kinds(policy.parse(&body, "body", &[])),
            [
                ("rowcount".to_owned(), "int_parsing"),
                ("pipeline_type".to_owned(), "enum"),
                ("environment".to_owned(), "enum"),
            ]
        );
        // Null or absent stays allowed.
        body["rowcount"] = 1.into();
        body["pipeline_type"] = Value::Null;
        body.as_object_mut().unwrap().remove("environment");
        assert!(policy.parse(&body, "body", &[]).is_ok());
    }
}
