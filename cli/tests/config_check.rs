//! `s3-replicator config check`: every problem with its JSON path, and the exit code.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_s3-replicator");

fn fixture(name: &str) -> String {
    format!(
        "{}/../tests/fixtures/config/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_broken_document_lists_every_problem_and_exits_1() {
    let out = Command::new(BIN)
        .args(["config", "check", &fixture("broken.json")])
        .env_remove("REPLICATOR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 10, "{stdout}");
    assert!(
        stdout.lines().all(|l| l.starts_with("$.Sources[0]")),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("10 problem(s) found"));
}

#[test]
fn a_valid_document_is_summarized_and_exits_0() {
    let out = Command::new(BIN)
        .args(["config", "check", &fixture("full.json")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("configuration is valid: 1 source bucket(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("offsite")
            && stdout.contains("deletes all")
            && stdout.contains("acl owner-override"),
        "{stdout}"
    );
    // Which encrypted objects each rule replicates, and which it skips.
    let lines: Vec<&str> = stdout.lines().collect();
    let after = |rule: &str| {
        let i = lines.iter().position(|l| l.contains(rule)).unwrap();
        lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("      "))
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    };
    let archive = after("raw-to-archive");
    assert!(
        archive.contains("replicas encrypted with KMS key arn:aws:kms:us-east-1:444455556666:key/")
            && !archive.contains("SSE-KMS")
            && archive.contains("SSE-C objects"),
        "{archive}"
    );
    let offsite = after("offsite");
    assert!(
        offsite.contains("skips SSE-KMS and DSSE-KMS objects (SourceSelectionCriteria.SseKmsEncryptedObjects is not Enabled)")
            && offsite.contains("GLACIER, DEEP_ARCHIVE")
            && offsite.contains("replicas of other buckets"),
        "{offsite}"
    );
    // Whose keys go to the other provider, and whose bucket a destination must be.
    assert!(
        stdout.contains("acl none keys profile \"ovh\"") && stdout.contains("owner 444455556666"),
        "{stdout}"
    );
}

#[test]
fn the_document_can_come_from_the_environment_and_its_absence_is_explained() {
    let inline = std::fs::read_to_string(fixture("full.json")).unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("REPLICATOR_CONFIG", inline)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env_remove("REPLICATOR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("REPLICATOR_CONFIG: is not set"));
    let out = Command::new(BIN)
        .args(["config", "check", "/no/such/file.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.json"));
}

/// The document from standard input (with a byte-order mark), from `file://`, and as
/// `aws s3api get-bucket-replication` prints it (with `--bucket` to name the bucket);
/// XML gets a message that says what to do; fields that do nothing here get notes.
#[test]
fn every_input_is_read_or_explained_and_idle_fields_get_notes() {
    use std::io::Write;
    use std::process::Stdio;
    let check = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(BIN)
            .arg("config")
            .arg("check")
            .args(args)
            .env_remove("REPLICATOR_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let full = std::fs::read_to_string(fixture("full.json")).unwrap();
    let (code, stdout, _) = check(&["-"], Some(&format!("\u{feff}{full}")));
    assert_eq!(code, Some(0), "{stdout}");
    let (code, _, _) = check(&[&format!("file://{}", fixture("full.json"))], None);
    assert_eq!(code, Some(0));

    // What get-bucket-replication prints: no bucket in it.
    let printed = r#"{"ReplicationConfiguration": {"Role": "arn:aws:iam::111122223333:role/r", "Rules": [
        {"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {},
         "DeleteMarkerReplication": {"Status": "Disabled"},
         "ExistingObjectReplication": {"Status": "Enabled"},
         "Destination": {"Bucket": "arn:aws:s3:::photos-replica",
            "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
            "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}}}]}}"#;
    let (code, stdout, _) = check(&["-"], Some(printed));
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("get-bucket-replication") && stdout.contains("--bucket"),
        "{stdout}"
    );
    let (code, stdout, stderr) = check(&["-", "--bucket", "photos"], Some(printed));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("  photos"), "{stdout}");
    let notes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 3, "{stdout}");
    assert!(notes
        .iter()
        .any(|n| n.contains("ExistingObjectReplication") && n.contains("s3-replicator backfill")));
    let (code, stdout, _) = check(
        &["-", "--bucket", "photos", "--output", "json"],
        Some(printed),
    );
    assert_eq!(code, Some(0));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["sources"][0]["bucket"], "photos");
    assert_eq!(
        report["sources"][0]["rules"][0]["destination"],
        "photos-replica"
    );
    assert_eq!(report["notes"].as_array().unwrap().len(), 3);

    let xml = r#"<?xml version="1.0"?><ReplicationConfiguration><Role>r</Role></ReplicationConfiguration>"#;
    let (code, stdout, _) = check(&["-"], Some(xml));
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("XML") && stdout.contains("get-bucket-replication"),
        "{stdout}"
    );
    let (code, stdout, _) = check(&["--output", "json", &fixture("broken.json")], None);
    assert_eq!(code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            report["valid"].as_bool(),
            report["problems"].as_array().map(Vec::len)
        ),
        (Some(false), Some(10))
    );
}
