use serde_json::{json, Value};

use crate::helpers::{column, every_store, run, run_on, spawn_app, TestApp};

/// Every store, each holding the same five runs.
async fn every_seeded() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for app in every_store().await {
        apps.push(seed(app).await);
    }
    apps
}

/// Five runs over four days; `d1` and `d4b` are the odd ones out.
async fn seed(app: TestApp) -> TestApp {
    let runs = [
        run_on(
            1,
            0,
            json!({"date_code": "d1", "pipeline_name": "sales", "script_name": "s1.py", "environment": "prod", "rowcount": 10}),
        ),
        run_on(
            2,
            0,
            json!({"date_code": "d2", "pipeline_name": "inventory", "script_name": "i.py", "environment": "dev", "rowcount": 0}),
        ),
        run_on(
            3,
            0,
            json!({"date_code": "d3", "pipeline_name": "sales", "script_name": "s1.py", "pipeline_type": "stream", "environment": "dev", "rowcount": 500}),
        ),
        run_on(
            4,
            0,
            json!({"date_code": "d4a", "pipeline_name": "sales", "script_name": "s2.py", "environment": "prod", "rowcount": 100}),
        ),
        run_on(
            4,
            0,
            json!({"date_code": "d4b", "pipeline_name": "sales", "script_name": "s2.py", "environment": "prod", "rowcount": 100}),
        ),
    ];
    for body in &runs {
        app.store(body).await;
    }
    app
}

async fn codes(app: &TestApp, query: &str) -> Vec<String> {
    let answer = app.get_json(&format!("/get_pipeline_info?{query}")).await;
    let codes: Vec<String> = column(&answer, "date_code")
        .into_iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(answer["count"], codes.len(), "{query}");
    codes
}

#[tokio::test]
async fn newest_start_first_and_equal_starts_in_insertion_order() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        assert_eq!(codes(&app, "").await, ["d4a", "d4b", "d3", "d2", "d1"]);
    }
}

#[tokio::test]
async fn each_filter_alone() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        let cases: [(&str, &[&str]); 13] = [
            ("pipeline_name=sales", &["d4a", "d4b", "d3", "d1"]),
            ("pipeline_name=SALES", &[]),
            ("script_name=s1.py", &["d3", "d1"]),
            ("pipeline_type=stream", &["d3"]),
            ("environment=dev", &["d3", "d2"]),
            ("min_rowcount=100", &["d4a", "d4b", "d3"]),
            ("max_rowcount=10", &["d2", "d1"]),
            ("min_rowcount=10&max_rowcount=10", &["d1"]),
            ("start_utc=2025-08-03T00:00:00Z", &["d4a", "d4b", "d3"]),
            ("start_utc=2025-08-03T00:00:00.000001Z", &["d4a", "d4b"]),
            ("end_utc=2025-08-02T00:30:00Z", &["d2", "d1"]),
            ("end_utc=2025-08-02T00:29:59Z", &["d1"]),
            (
                "start_utc=2025-08-02T02:00:00%2B02:00",
                &["d4a", "d4b", "d3", "d2"],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(codes(&app, query).await, expected, "{query}");
        }
    }
}

#[tokio::test]
async fn filters_combine_with_and() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        assert_eq!(
            codes(&app, "pipeline_name=sales&environment=prod&min_rowcount=50").await,
            ["d4a", "d4b"]
        );
        assert_eq!(
            codes(
                &app,
                "pipeline_name=sales&start_utc=2025-08-02&end_utc=2025-08-03T23:59:59Z"
            )
            .await,
            ["d3"]
        );
        assert_eq!(
            codes(
                &app,
                "environment=dev&script_name=i.py&pipeline_type=batch&max_rowcount=0"
            )
            .await,
            ["d2"]
        );
    }
}

#[tokio::test]
async fn empty_text_filters_and_unknown_parameters_are_ignored() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        let all = codes(&app, "").await;
        assert_eq!(
            codes(
                &app,
                "pipeline_name=&script_name=&pipeline_type=&environment="
            )
            .await,
            all
        );
        assert_eq!(codes(&app, "colour=blue&pipeline=sales").await, all);
    }
}

#[tokio::test]
async fn naive_and_aware_values_compare_as_utc() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        app.store(&run(json!({"date_code": "naive", "start_utc": "2025-09-02T12:00:00", "end_utc": "2025-09-02T12:10:00"}))).await;
        app.store(&run(json!({"date_code": "aware", "start_utc": "2025-09-02T13:00:00+02:00", "end_utc": "2025-09-02T13:10:00+02:00"}))).await;
        // 13:00+02:00 is 11:00Z, earlier than the naive 12:00.
        assert_eq!(codes(&app, "").await, ["naive", "aware"]);
        assert_eq!(
            codes(&app, "start_utc=2025-09-02").await,
            ["naive", "aware"]
        );
        assert_eq!(
            codes(&app, "start_utc=2025-09-02T11:30:00Z").await,
            ["naive"]
        );
        assert_eq!(
            codes(&app, "start_utc=2025-09-02T11:30:00").await,
            ["naive"]
        );
        assert_eq!(codes(&app, "end_utc=2025-09-02T11:10:00").await, ["aware"]);
    }
}

#[tokio::test]
async fn pagination_edges() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        let page = app.get_json("/get_pipeline_info?limit=2&offset=1").await;
        assert_eq!(
            (page["total"].as_u64(), page["count"].as_u64()),
            (Some(5), Some(2))
        );
        assert_eq!(column(&page, "date_code"), [json!("d4b"), json!("d3")]);
        let past = app.get_json("/get_pipeline_info?offset=5").await;
        assert_eq!(
            (past["total"].as_u64(), past["count"].as_u64()),
            (Some(5), Some(0))
        );
        assert_eq!(past["results"], json!([]));
        assert_eq!(past["pipelines"], json!([]));
        let far = app.get_json("/get_pipeline_info?offset=1000000000").await;
        assert_eq!(far["count"], 0);
        let big = app.get_json("/get_pipeline_info?limit=10000").await;
        assert_eq!(big["count"], 5);
        let all = app
            .get_json("/get_pipeline_info?all_data=true&limit=1&offset=3")
            .await;
        assert_eq!(
            (all["total"].as_u64(), all["count"].as_u64()),
            (Some(5), Some(5))
        );
        for spelling in ["1", "yes", "On", "T", "y", "TRUE"] {
            let all = app
                .get_json(&format!("/get_pipeline_info?all_data={spelling}&limit=1"))
                .await;
            assert_eq!(all["count"], 5, "{spelling}");
        }
        for spelling in ["0", "no", "off", "f", "n", "False"] {
            let some = app
                .get_json(&format!("/get_pipeline_info?all_data={spelling}&limit=1"))
                .await;
            assert_eq!(some["count"], 1, "{spelling}");
        }
    }
}

#[tokio::test]
async fn pipelines_lists_the_sorted_distinct_names_of_the_page() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        app.store(&run_on(
            5,
            0,
            json!({"date_code": "anon", "pipeline_name": null}),
        ))
        .await;
        let page = app.get_json("/get_pipeline_info?limit=3").await;
        assert_eq!(page["pipelines"], json!(["sales"]));
        let all = app.get_json("/get_pipeline_info?all_data=true").await;
        assert_eq!(all["pipelines"], json!(["inventory", "sales"]));
    }
}

#[tokio::test]
async fn summaries_group_by_all_four_fields_and_average_positive_values() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        let group = json!({"pipeline_name": "etl", "script_name": "etl.py", "pipeline_type": "batch", "environment": "prod"});
        let with = |day: u32, changes: Value| {
            let mut body = run_on(day, 0, group.clone());
            body.as_object_mut()
                .unwrap()
                .extend(changes.as_object().unwrap().clone());
            body
        };
        app.store(&with(1, json!({"elapsed_seconds": 10.0, "rowcount": 100})))
            .await;
        app.store(&with(
        3,
        json!({"elapsed_seconds": 0.0, "rowcount": 0, "start_utc": "2025-08-03T05:30:00+05:30"}),
    ))
    .await;
        app.store(&with(2, json!({"elapsed_seconds": 20.0, "rowcount": 300})))
            .await;
        app.store(&with(
            2,
            json!({"environment": "dev", "elapsed_seconds": 0.0, "rowcount": 0}),
        ))
        .await;
        app.store(&run_on(1, 0, json!({"pipeline_name": null, "script_name": null, "pipeline_type": null, "environment": null}))).await;
        let summaries = app.get_json("/pipelines").await["pipelines"].clone();
        assert_eq!(summaries.as_array().unwrap().len(), 3);
        assert_eq!(
            summaries[0],
            json!({"pipeline_name": "etl", "script_name": "etl.py", "pipeline_type": "batch",
               "environment": "prod", "total_runs": 3, "last_run": "2025-08-03T05:30:00+05:30",
               "avg_duration": 15.0, "avg_rowcount": 200.0})
        );
        assert_eq!(summaries[1]["environment"], "dev");
        assert_eq!(summaries[1]["avg_duration"], Value::Null);
        assert_eq!(summaries[1]["avg_rowcount"], Value::Null);
        assert_eq!(summaries[2]["pipeline_name"], Value::Null);
        assert_eq!(summaries[2]["total_runs"], 1);
    }
}

#[tokio::test]
async fn summaries_with_the_same_last_run_keep_first_appearance_order() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        app.store(&run_on(1, 0, json!({"pipeline_name": "b"})))
            .await;
        app.store(&run_on(1, 0, json!({"pipeline_name": "a"})))
            .await;
        app.store(&run_on(1, 0, json!({"pipeline_name": "c"})))
            .await;
        let summaries = app.get_json("/pipelines").await;
        let names: Vec<&str> = summaries["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["pipeline_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "a", "c"]);
    }
}

#[tokio::test]
async fn summaries_follow_new_records_between_requests() {
    for app in every_store().await {
        eprintln!("on {}", app.backend);
        app.store(&run_on(1, 0, json!({}))).await;
        let first = app.get_json("/pipelines").await;
        assert_eq!(
            first,
            app.get_json("/pipelines").await,
            "unchanged data, same answer"
        );
        assert_eq!(first["pipelines"][0]["total_runs"], 1);
        app.store(&run_on(2, 0, json!({}))).await;
        let second = app.get_json("/pipelines").await;
        assert_eq!(second["pipelines"][0]["total_runs"], 2);
        assert_eq!(second["pipelines"][0]["last_run"], "2025-08-02T00:00:00Z");
    }
}

#[tokio::test]
async fn cursor_pages_carry_next_cursor_until_the_last_page() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        let first = app.get_json("/get_pipeline_info?cursor=&limit=2").await;
        assert_eq!(first["total"], 5);
        assert_eq!(column(&first, "date_code"), [json!("d4a"), json!("d4b")]);
        let next = first["next_cursor"]
            .as_str()
            .expect("a next cursor")
            .to_owned();
        let second = app
            .get_json(&format!("/get_pipeline_info?limit=2&cursor={next}"))
            .await;
        assert_eq!(column(&second, "date_code"), [json!("d3"), json!("d2")]);
        let next = second["next_cursor"].as_str().unwrap().to_owned();
        let last = app
            .get_json(&format!("/get_pipeline_info?limit=2&cursor={next}"))
            .await;
        assert_eq!(column(&last, "date_code"), [json!("d1")]);
        assert_eq!(last["next_cursor"], Value::Null);
        assert!(last.as_object().unwrap().contains_key("next_cursor"));
        // Exactly filling the last page still ends with a null cursor.
        let exact = app.get_json("/get_pipeline_info?cursor=&limit=5").await;
        assert_eq!(exact["count"], 5);
        assert_eq!(exact["next_cursor"], Value::Null);
    }
}

#[tokio::test]
async fn responses_without_cursor_are_unchanged_and_count_none_skips_total() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        let plain = app
            .get("/get_pipeline_info?limit=1")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            plain.starts_with(r#"{"total":5,"count":1,"results":[{"#),
            "{plain}"
        );
        assert!(plain.ends_with(r#"}],"pipelines":["sales"]}"#), "{plain}");
        let uncounted = app.get_json("/get_pipeline_info?limit=1&count=none").await;
        assert_eq!(uncounted["total"], Value::Null);
        assert_eq!(uncounted["count"], 1);
        let counted = app.get_json("/get_pipeline_info?limit=1&count=exact").await;
        assert_eq!(counted["total"], 5);
        let keyset = app
            .get_json("/get_pipeline_info?limit=1&count=none&cursor=")
            .await;
        assert_eq!(keyset["total"], Value::Null);
        assert!(keyset["next_cursor"].is_string());
    }
}

#[tokio::test]
async fn offset_and_all_data_apply_after_the_cursor() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        let first = app.get_json("/get_pipeline_info?cursor=&limit=1").await;
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        let skipped = app
            .get_json(&format!(
                "/get_pipeline_info?cursor={cursor}&limit=2&offset=1"
            ))
            .await;
        assert_eq!(column(&skipped, "date_code"), [json!("d3"), json!("d2")]);
        let next = skipped["next_cursor"].as_str().unwrap().to_owned();
        let rest = app
            .get_json(&format!("/get_pipeline_info?cursor={next}&limit=2"))
            .await;
        assert_eq!(column(&rest, "date_code"), [json!("d1")]);
        let all = app
            .get_json(&format!("/get_pipeline_info?cursor={cursor}&all_data=true"))
            .await;
        assert_eq!(
            column(&all, "date_code"),
            [json!("d4b"), json!("d3"), json!("d2"), json!("d1")]
        );
        assert_eq!(all["next_cursor"], Value::Null);
        assert_eq!(all["total"], 5);
    }
}

#[tokio::test]
async fn a_cursor_is_bound_to_its_filters() {
    for app in every_seeded().await {
        eprintln!("on {}", app.backend);
        let first = app
            .get_json("/get_pipeline_info?cursor=&limit=1&pipeline_name=sales")
            .await;
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        // The same filters written differently are the same filters.
        let same = app
            .get(&format!(
                "/get_pipeline_info?cursor={cursor}&limit=1&pipeline_name=sales&environment="
            ))
            .await;
        assert_eq!(same.status(), 200);
        for (query, wanted) in [
            (
                format!("cursor={cursor}&pipeline_name=inventory"),
                "other filters",
            ),
            (format!("cursor={cursor}"), "other filters"),
            ("cursor=bm90LWEtY3Vyc29y".to_owned(), "not a cursor"),
        ] {
            let response = app.get(&format!("/get_pipeline_info?{query}")).await;
            assert_eq!(response.status(), 422, "{query}");
            let body: Value = response.json().await.unwrap();
            let error = &body["detail"][0];
            assert_eq!(error["loc"], json!(["query", "cursor"]), "{query}");
            assert_eq!(error["type"], "value_error");
            assert!(
                error["msg"].as_str().unwrap().contains(wanted),
                "{query}: {body}"
            );
        }
        let response = app.get("/get_pipeline_info?count=some").await;
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"][0]["type"], "enum");
        assert_eq!(
            body["detail"][0]["msg"],
            "Input should be 'exact' or 'none'"
        );
        assert_eq!(
            body["detail"][0]["ctx"],
            json!({"expected": "'exact' or 'none'"})
        );
    }
}

async fn post_bulk(app: &TestApp, runs: u32, rowcount: u32) {
    let body: Vec<Value> = (0..runs)
        .map(|i| run_on(1 + i % 28, i % 24, json!({"rowcount": rowcount})))
        .collect();
    let body = serde_json::to_vec(&body).unwrap();
    let (status, _) = app
        .post_bytes("/pipelines/bulk", body, "application/json")
        .await;
    assert_eq!(status, 200);
}

/// A counted cursor page and its total are read from one snapshot: while
/// runs keep arriving, `all_data` from an empty cursor always holds exactly
/// `total` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_page_and_its_total_agree_while_runs_arrive() {
    let app = std::sync::Arc::new(spawn_app().await);
    // Many runs the query has to look at and skip, so reading a page
    // takes a while; only the arriving runs match.
    for _ in 0..3 {
        post_bulk(&app, 10_000, 1).await;
    }
    let writer = tokio::spawn({
        let app = app.clone();
        async move {
            loop {
                post_bulk(&app, 5, 7).await;
            }
        }
    });
    for read in 0..40 {
        let page = app
            .get_json("/get_pipeline_info?cursor=&all_data=true&min_rowcount=7")
            .await;
        assert_eq!(page["total"], page["count"], "read {read}");
    }
    writer.abort();
}
