//! Feeds arbitrary bytes to the data-file line parser and, when they are
//! JSON, to the request-body validator. Neither may panic, and a record that
//! parses must serialise to a line that parses back to the same record.
//!
//!     cargo install cargo-fuzz && cd fuzz && cargo fuzz run record_parser
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_service::domain::PipelineInfo;
use pipeline_service::repository::jsonl::parse_line;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(record)) = parse_line(data) {
        let line = serde_json::to_vec(&record).expect("a parsed record serialises");
        let again = parse_line(&line).expect("its own line parses").expect("not blank");
        assert_eq!(again, record);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = PipelineInfo::parse(&value, "body");
    }
});
