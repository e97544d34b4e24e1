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
