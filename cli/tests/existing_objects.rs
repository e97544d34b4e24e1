//! Existing objects, end to end through the binary: `verify` reports the drift of a
//! bucket whose objects predate the pipeline, `backfill --dry-run` says what it would
//! send, `backfill` and the worker replicate them, `verify --repair` removes the
//! replicas whose source is gone, and `verify` then finds nothing, exiting 0.

mod common;

use common::{command, run};
use integration_tests::{config, put_job, put_many, Pipeline, Stack};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_backfilled_repaired_and_gone() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let doc = format!(
        r#"{{"Sources": [{{"Bucket": "{src}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}},
              "DeleteMarkerReplication": {{"Status": "Enabled"}}}}]}}}}]}}"#,
        src = p.source
    );
    let cfg = config(&doc);
    let mut keys = put_many(&stack, &p.source, "a/", 20).await;
    keys.extend(put_many(&stack, &p.source, "b/c/", 20).await);
    keys.extend(put_many(&stack, &p.source, "root ", 10).await);
    // Ten replicated already; two of their sources deleted since (extra replicas).
    let replicator = p.replicator(&cfg).await;
    for key in &keys[..10] {
        let mut job = put_job(&p.source, key, &dst);
        job.rule_id = "all".into();
        replicator.run(&job).await.unwrap();
    }
    for key in &keys[..2] {
        stack.delete(&p.source, key).await;
    }
    // Three of another size at the destination, and one object nobody replicated.
    for key in &keys[10..13] {
        stack.put(&dst, key, b"not the same").await;
    }
    stack.put(&dst, "b/c/written there.txt", b"mine").await;

    // Backfill records are written only where the worker's environment says.
    let records = stack.bucket("records").await;
    let report_url = format!("s3://{records}/backfills");
    let cmd = || {
        let mut c = command(&stack, &p, &doc, &stack.endpoint);
        c.env("BACKFILL_REPORT_URL", &report_url);
        c
    };
    let out = run(cmd(), &["verify", "--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "drift exits 3");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["in_sync"], false);
    let d = &report["destinations"][0];
    let count = |field: &str| d[field].as_array().unwrap().len();
    assert_eq!(
        (
            d["in_sync"].as_u64().unwrap(),
            count("missing"),
            count("differs"),
            count("extra"),
            d["not_ours"].as_u64().unwrap()
        ),
        (8, 50 - 10 - 3, 3, 2, 1),
        "{d}"
    );
    assert!(d["differs"][0]["why"].as_str().unwrap().contains("size"));
    let extra: Vec<&str> = d["extra"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(extra, vec![keys[0].as_str(), keys[1].as_str()]);
    // The table says the same, with the keys.
    let table = run(cmd(), &["verify"]);
    assert_eq!(table.status.code(), Some(3));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("extra    s3://{dst}/{}", keys[0])),
        "{text}"
    );
    assert!(text.contains("1 of 1 destination(s) drift"), "{text}");

    // A dry run lists 48 objects beside the destination: 40 to copy, 8 up to date.
    let out = run(cmd(), &["backfill", "--dry-run", "--output", "json"]);
    assert!(out.status.success());
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["plan"]["listed"], 48);
    let planned = &plan["plan"]["destinations"][0];
    assert_eq!(
        (planned["objects"].as_u64(), planned["up_to_date"].as_u64()),
        (Some(40), Some(8)),
        "{plan}"
    );
    assert!(plan["estimated_cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(stack.depth(&p.work).await, 0);

    // Scope mistakes are refused with what is accepted.
    let out = run(cmd(), &["backfill", "--bucket", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a source in the configuration"));
    let out = run(cmd(), &["verify", "--rule", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no source in scope has a rule"));

    // The backfill, run by the worker, keeping its record; then only the extras drift.
    // A key that CSV must quote joins in first.
    let weird = "odd, \"quoted\" key.txt";
    stack.put(&p.source, weird, b"csv").await;
    let out = run(
        cmd(),
        &["backfill", "--report", &report_url, "--output", "json"],
    );
    assert!(out.status.success());
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = started["backfill"].as_str().unwrap().to_string();
    assert!(id.starts_with("bf-"));
    let status = |args: &[&str]| -> Value {
        let mut all = vec![
            "backfill",
            "status",
            "--report",
            &report_url,
            "--output",
            "json",
        ];
        all.extend(args);
        let out = run(cmd(), &all);
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = status(&[]);
    assert_eq!(
        (before["id"].as_str(), before["complete"].as_bool()),
        (Some(id.as_str()), Some(false))
    );
    assert_eq!(
        (
            before["pages_listed"].as_u64(),
            before["pages_expected"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert!(run(cmd(), &["run", "--exit-when-idle", "3s"])
        .status
        .success());
    let after = status(&[&id, "--wait"]);
    assert_eq!(after["complete"], true, "{after}");
    // One page (51 objects fit in one); 41 jobs; the 8 in sync seen in the listing.
    assert_eq!(
        (
            after["pages_listed"].as_u64(),
            after["queued"].as_u64(),
            after["up_to_date"].as_u64(),
            after["replicated"].as_u64(),
            after["failed"].as_u64()
        ),
        (Some(1), Some(41), Some(8), Some(41), Some(0)),
        "{after}"
    );
    let report_key = format!("backfills/{id}/report.csv");
    assert_eq!(
        after["report"].as_str(),
        Some(format!("s3://{records}/{report_key}").as_str())
    );
    let csv = stack
        .s3
        .get_object()
        .bucket(&records)
        .key(&report_key)
        .send()
        .await
        .unwrap();
    let csv = String::from_utf8(csv.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    let rows = replicator::listing::record::parse_csv(&csv);
    assert_eq!(rows.len(), 49, "one line per object:\n{csv}");
    let mut keys_in_report: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    keys_in_report.dedup();
    assert_eq!(keys_in_report.len(), 49);
    assert!(
        rows.iter()
            .any(|r| r.key == weird && r.outcome == "replicated"),
        "{csv}"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.reason == "ReplicaUpToDate")
            .count(),
        8
    );
    let out = run(cmd(), &["verify", "--output", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &report["destinations"][0];
    assert_eq!(
        (d["in_sync"].as_u64().unwrap(), count_of(d, "extra")),
        (49, 2),
        "{d}"
    );

    // --repair queues the two deletes; afterwards nothing drifts.
    let out = run(cmd(), &["verify", "--repair", "--output", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["destinations"][0]["repair_jobs"], 2);
    assert!(run(cmd(), &["run", "--exit-when-idle", "3s"])
        .status
        .success());
    let out = run(cmd(), &["verify"]);
    assert_eq!(out.status.code(), Some(0), "in sync exits 0");
    assert!(String::from_utf8_lossy(&out.stdout).contains("in sync: 1 destination(s)"));
    // The object written at the destination directly is still there.
    let mine = stack
        .s3
        .head_object()
        .bucket(&dst)
        .key("b/c/written there.txt")
        .send()
        .await;
    assert!(mine.is_ok());
}

fn count_of(d: &Value, field: &str) -> usize {
    d[field].as_array().unwrap().len()
}
