//! Old files hold lines written before records carried a `pipeline_name`.
//! The name is recovered from the paths, with the same rules the Python
//! service used, so summaries group those runs as they always did.

use serde_json::{Map, Value};

/// Adds an inferred `pipeline_name` when the key is absent. A key that is
/// present, even with `null`, is left alone.
pub fn fill_missing_pipeline_name(fields: &mut Map<String, Value>) {
    if fields.contains_key("pipeline_name") {
        return;
    }
    let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or("");
    let name = infer_pipeline_name(text("output_file"), text("log_file"));
    fields.insert("pipeline_name".to_owned(), Value::String(name));
}

/// `…/pipeline/<name>/…` in the output path (unless the segment is an
/// `output-…` file), else `<name>-…` as the log file's name under `/logs/`,
/// else `unknown`.
pub fn infer_pipeline_name(output_file: &str, log_file: &str) -> String {
    if output_file.contains("/pipeline/") {
        let mut segments = output_file.split('/');
        if segments.any(|s| s == "pipeline") {
            if let Some(candidate) = segments.next() {
                if !candidate.is_empty() && !candidate.starts_with("output-") {
                    return candidate.to_owned();
                }
            }
        }
    }
    if log_file.contains("/logs/") {
        let file_name = log_file.rsplit('/').next().unwrap_or("");
        if let Some((prefix, _)) = file_name.split_once('-') {
            return prefix.to_owned();
        }
    }
    "unknown".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_path_segment_after_pipeline() {
        assert_eq!(
            infer_pipeline_name("/data/pipeline/sales_daily/out.csv", "/x/logs/other-1.log"),
            "sales_daily"
        );
    }

    #[test]
    fn output_file_directly_under_pipeline_falls_back_to_the_log() {
        assert_eq!(
            infer_pipeline_name(
                "/data/pipeline/output-2025.csv",
                "/var/logs/inventory-2025.log"
            ),
            "inventory"
        );
    }

    #[test]
    fn log_name_needs_a_dash() {
        assert_eq!(
            infer_pipeline_name("/tmp/out.csv", "/var/logs/inventory.log"),
            "unknown"
        );
        assert_eq!(
            infer_pipeline_name("/tmp/out.csv", "/var/log/inventory-1.log"),
            "unknown"
        );
    }

    #[test]
    fn present_null_stays_null() {
        let mut fields = json!({"pipeline_name": null, "output_file": "/a/pipeline/x/y"});
        fill_missing_pipeline_name(fields.as_object_mut().unwrap());
        assert_eq!(fields["pipeline_name"], Value::Null);
        let mut fields = json!({"output_file": "/a/pipeline/x/y"});
        fill_missing_pipeline_name(fields.as_object_mut().unwrap());
        assert_eq!(fields["pipeline_name"], "x");
    }
}
