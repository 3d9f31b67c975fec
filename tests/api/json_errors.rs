//! Bodies that are not JSON answer what FastAPI answers: Python's `json`
//! decoder position (in characters) and message. Every expected pair below
//! was taken from CPython 3.11's `json.loads`.

use serde_json::{json, Value};

use crate::helpers::{run, spawn_app};

/// (body, position, message) for a single body.
const SINGLE: &[(&str, usize, &str)] = &[
    // End of input: the position is the input's length.
    ("{\"a\":", 5, "Expecting value"),
    ("{\"a\" 1}", 5, "Expecting ':' delimiter"),
    ("{\"a\":1}x", 7, "Extra data"),
    ("{} {}", 3, "Extra data"),
    ("{\"a\": \"\\x\"}", 7, "Invalid \\escape"),
    ("{\"a\": \"\\u12\"}", 8, "Invalid \\uXXXX escape"),
    ("{\"a\": \"\\ud800\\uZZZZ\"}", 14, "Invalid \\uXXXX escape"),
    ("{\"a\": \"b\tc\"}", 8, "Invalid control character at"),
    ("{\"a\": \"abc", 6, "Unterminated string starting at"),
    // Multi-byte characters count once.
    ("{\"é😀\": \"ü\", \"b\": }", 17, "Expecting value"),
    (
        "{\"a\":1,}",
        7,
        "Expecting property name enclosed in double quotes",
    ),
    ("[1,]", 3, "Expecting value"),
    ("{\"a\": 1 \"b\": 2}", 8, "Expecting ',' delimiter"),
    (" ", 1, "Expecting value"),
    (
        "{'a': 1}",
        1,
        "Expecting property name enclosed in double quotes",
    ),
    ("{\"a\": tru}", 6, "Expecting value"),
    ("{\"a\": 01}", 7, "Expecting ',' delimiter"),
    ("{\"a\": -}", 6, "Expecting value"),
    ("{\"a\": 1.}", 7, "Expecting ',' delimiter"),
    ("\n\n{\"a\"\n:\n}", 9, "Expecting value"),
    ("{\"a\": [1, 2}", 11, "Expecting ',' delimiter"),
];

/// (body, position, message) for a bulk JSON array.
const ARRAY: &[(&str, usize, &str)] = &[
    ("[{\"é\": 1}, {\"a\":]", 16, "Expecting value"),
    ("[{\"é\": 1}, {\"a\" 1}]", 16, "Expecting ':' delimiter"),
    ("[{\"é\": 1}, {\"a\":1}x]", 18, "Expecting ',' delimiter"),
    ("[{\"é\": 1}, {\"a\": \"\\x\"}]", 18, "Invalid \\escape"),
    (
        "[{\"é\": 1}, {\"a\": \"b\tc\"}]",
        19,
        "Invalid control character at",
    ),
    (
        "[{\"é\": 1}, {\"é😀\": \"ü\", \"b\": }]",
        28,
        "Expecting value",
    ),
    (
        "[{\"é\": 1}, {\"a\":1,}]",
        18,
        "Expecting property name enclosed in double quotes",
    ),
    (
        "[{\"é\": 1}, {\"a\": \"\\u12\"}]",
        19,
        "Invalid \\uXXXX escape",
    ),
    (
        "[{\"é\": 1}, {\"a\": \"abc]",
        17,
        "Unterminated string starting at",
    ),
    (
        "[{\"é\": 1}, {\"a\": [1, 2}]",
        22,
        "Expecting ',' delimiter",
    ),
    ("[{}, ]", 5, "Expecting value"),
    ("[", 1, "Expecting value"),
    ("[{}] x", 5, "Extra data"),
];

fn json_invalid(loc: Value, message: &str) -> Value {
    json!({"detail": [{"type": "json_invalid", "loc": loc, "msg": "JSON decode error",
                       "input": {}, "ctx": {"error": message}}]})
}

/// Posts each broken body of `table` to `path` and expects Python's answer.
async fn expect_pythons_answers(path: &str, table: &[(&str, usize, &str)]) {
    let app = spawn_app().await;
    for (body, position, message) in table {
        let (status, answer) = app
            .post_bytes(path, body.to_string(), "application/json")
            .await;
        assert_eq!(status, 422, "{body:?}");
        let expected = json_invalid(json!(["body", position]), message);
        assert_eq!(answer, expected, "{body:?}");
    }
    assert!(app.file_lines().is_empty());
}

#[tokio::test]
async fn single_bodies_report_pythons_position_and_message() {
    expect_pythons_answers("/pipelines", SINGLE).await;
}

#[tokio::test]
async fn bulk_arrays_report_pythons_position_and_message() {
    expect_pythons_answers("/pipelines/bulk", ARRAY).await;
}

#[tokio::test]
async fn each_ndjson_line_reports_pythons_position_within_the_line() {
    let app = spawn_app().await;
    let good = run(json!({})).to_string();
    for (line, position, message) in SINGLE {
        if line.contains('\n') || line.trim().is_empty() {
            continue; // not one NDJSON line
        }
        let body = format!("{good}\n{line}\n");
        let (status, answer) = app
            .post_bytes("/pipelines/bulk", body.into_bytes(), "application/x-ndjson")
            .await;
        assert_eq!(status, 200, "{line:?}");
        let item = &answer["results"][1];
        assert_eq!(item["status"], 422, "{line:?}");
        let expected = json_invalid(json!(["body", 1, position]), message);
        assert_eq!(item["errors"], expected["detail"], "{line:?}");
    }
}

#[tokio::test]
async fn bodies_that_are_not_utf8_text_answer_400_as_fastapi_does() {
    let app = spawn_app().await;
    let broken = b"{\"output_file\": \"caf\xC3\"}".to_vec();
    let truncated = [&run(json!({})).to_string().into_bytes()[..], b"\xE2\x82"].concat();
    for body in [broken.clone(), truncated] {
        let (status, answer) = app.post_bytes("/pipelines", body, "application/json").await;
        assert_eq!(status, 400);
        assert_eq!(
            answer,
            json!({"detail": "There was an error parsing the body"})
        );
    }
    let array = [b"[".as_slice(), &broken, b"]"].concat();
    let (status, _) = app
        .post_bytes("/pipelines/bulk", array, "application/json")
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post_bytes("/pipelines/bulk", broken, "application/x-ndjson")
        .await;
    assert_eq!(status, 400);
    assert!(app.file_lines().is_empty());
}

#[tokio::test]
async fn a_byte_order_mark_or_utf16_body_is_read_as_python_reads_it() {
    let app = spawn_app().await;
    let text = run(json!({"output_file": "/data/é"})).to_string();
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    for body in [with_bom, utf16] {
        let (status, answer) = app.post_bytes("/pipelines", body, "application/json").await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["output_file"], "/data/é");
    }
    // Positions count from after the mark, as in the decoded text.
    let (_, answer) = app
        .post_bytes(
            "/pipelines",
            b"\xEF\xBB\xBF{\"a\":".to_vec(),
            "application/json",
        )
        .await;
    assert_eq!(answer, json_invalid(json!(["body", 5]), "Expecting value"));
}

#[tokio::test]
async fn non_finite_literals_are_refused_at_their_field() {
    let app = spawn_app().await;
    for literal in ["NaN", "Infinity", "-Infinity", "1e400"] {
        let body = run(json!({})).to_string().replacen(
            "\"elapsed_seconds\":1325.0",
            &format!("\"elapsed_seconds\":{literal}"),
            1,
        );
        assert!(body.contains(literal), "{body}");
        let (status, answer) = app
            .post_bytes("/pipelines", body.into_bytes(), "application/json")
            .await;
        assert_eq!(status, 422);
        assert_eq!(
            answer,
            json!({"detail": [{"type": "finite_number", "loc": ["body", "elapsed_seconds"],
                               "msg": "Input should be a finite number", "input": literal}]})
        );
    }
    let (_, answer) = app
        .post_bytes(
            "/pipelines/bulk",
            format!("[{}, {{\"x\": [NaN]}}]", run(json!({}))).into_bytes(),
            "application/json",
        )
        .await;
    assert_eq!(answer["detail"][0]["loc"], json!(["body", 1, "x", 0]));
    assert!(app.file_lines().is_empty());
}

#[tokio::test]
async fn unpaired_surrogates_and_deep_nesting_are_refused_clearly() {
    let app = spawn_app().await;
    let body =
        run(json!({}))
            .to_string()
            .replacen("\"output_file\":\"", "\"output_file\":\"\\udc00", 1);
    let (status, answer) = app
        .post_bytes("/pipelines", body.into_bytes(), "application/json")
        .await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["type"], "string_unicode");
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "output_file"]));
    assert_eq!(answer["detail"][0]["input"], "\\udc00");
    let deep = format!("{{\"x\": {}{}}}", "[".repeat(200), "]".repeat(200));
    let (status, answer) = app
        .post_bytes("/pipelines", deep.into_bytes(), "application/json")
        .await;
    assert_eq!(status, 422);
    // The bracket that opens the 128th level, where serde_json stops.
    assert_eq!(
        answer,
        json_invalid(json!(["body", 6 + 126]), "Nesting deeper than 127 levels")
    );
}
