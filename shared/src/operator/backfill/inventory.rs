//! S3 Inventory as a backfill's input, for buckets too large to list: the manifest
//! (`manifest.json`) names CSV files (usually gzip-compressed), and each file becomes
//! list tasks of its own that read it [`ROWS_PER_TASK`] rows at a time. A gzip stream
//! cannot be entered in the middle, so each task reads from the start and skips what
//! earlier tasks took: cheap next to the copies it sends.

use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};

use super::list::Listed;
use super::task::ListTask;
use super::Scope;
use crate::config::Config;
use crate::errors::{FailureReason, ReplicationError, S3Step, ScanError};

/// Rows one task reads from an inventory file.
pub const ROWS_PER_TASK: u64 = 10_000;

/// One inventory file, and how far into it a task starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryFile {
    pub bucket: String,
    pub key: String,
    /// The manifest's `fileSchema`, split: which column is which.
    pub schema: Vec<String>,
    /// Rows earlier tasks took.
    #[serde(default)]
    pub skip: u64,
}

/// The parts of `manifest.json` a backfill needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub source_bucket: String,
    pub file_format: String,
    pub file_schema: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestFile {
    pub key: String,
}

/// Reads `s3://BUCKET/KEY/manifest.json`; the files it names are in the same bucket.
pub async fn read_manifest(
    s3: &aws_sdk_s3::Client,
    url: &str,
) -> Result<(String, Manifest), ScanError> {
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            ScanError::Scope(format!(
                "--inventory {url:?} is not s3://BUCKET/PATH/manifest.json"
            ))
        })?;
    let reading =
        |e: String| ScanError::Scope(format!("reading the inventory manifest {url}: {e}"));
    let bytes = crate::config::clients::read_object(s3, bucket, key)
        .await
        .map_err(reading)?
        .ok_or_else(|| reading("NoSuchKey: no object under this key".into()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| ScanError::Scope(format!("{url} is not an S3 Inventory manifest: {e}")))?;
    if !manifest.file_format.eq_ignore_ascii_case("CSV") {
        return Err(ScanError::Scope(format!(
            "{url} describes a {} inventory; only CSV inventories are read (configure the inventory's format as CSV)",
            manifest.file_format
        )));
    }
    Ok((bucket.to_string(), manifest))
}

/// The first task of each file of the inventory, within the scope (its prefix, rule and
/// time window filter the rows; the inventory decides the bucket).
pub fn tasks(
    config: &Config,
    scope: &Scope,
    id: &str,
    bucket: &str,
    manifest: &Manifest,
) -> Result<Vec<ListTask>, ScanError> {
    let source = config.source(&manifest.source_bucket).ok_or_else(|| {
        ScanError::Scope(format!(
            "the inventory lists bucket {}, which is not a source in the configuration",
            manifest.source_bucket
        ))
    })?;
    if !scope.buckets.is_empty() && !scope.buckets.contains(&source.bucket) {
        return Err(ScanError::Scope(format!(
            "the inventory lists bucket {}, not {}",
            source.bucket,
            scope.buckets.join(", ")
        )));
    }
    let schema: Vec<String> = manifest
        .file_schema
        .split(',')
        .map(|c| c.trim().to_string())
        .collect();
    if !schema.iter().any(|c| c == "Key") {
        return Err(ScanError::Scope(format!(
            "the inventory's fileSchema has no Key column: {}",
            manifest.file_schema
        )));
    }
    // Checks the scope the same way a listed backfill would.
    super::root_tasks(
        config,
        &Scope {
            buckets: vec![source.bucket.clone()],
            ..scope.clone()
        },
        id,
    )?;
    Ok(manifest
        .files
        .iter()
        .map(|file| {
            let mut task =
                ListTask::root(id, &source.bucket, scope.prefix.as_deref().unwrap_or(""), 0);
            task.rule = scope.rule.clone();
            task.modified_after = scope.modified_after.clone();
            task.modified_before = scope.modified_before.clone();
            task.inventory = Some(InventoryFile {
                bucket: bucket.to_string(),
                key: file.key.clone(),
                schema: schema.clone(),
                skip: 0,
            });
            task
        })
        .collect())
}

/// One task's rows of an inventory file: the current versions that are not delete
/// markers, under the task's prefix; and where the next task starts, if anywhere.
pub async fn page(
    s3: &aws_sdk_s3::Client,
    task: &ListTask,
    file: &InventoryFile,
) -> Result<(Vec<Listed>, Option<u64>), ReplicationError> {
    let out = s3
        .get_object()
        .bucket(&file.bucket)
        .key(&file.key)
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::SourceGet, &e))?;
    // Streamed, never held whole: an inventory file can be hundreds of megabytes, and
    // a task reads only up to its rows (what it skips is decompressed and dropped).
    let body = out.body.into_async_read();
    let (task, file) = (task.clone(), file.clone());
    tokio::task::spawn_blocking(move || {
        let mut bytes = BufReader::new(tokio_util::io::SyncIoBridge::new(body));
        let gzip = bytes
            .fill_buf()
            .map(|b| b.starts_with(&[0x1f, 0x8b]))
            .unwrap_or(false);
        let reader: Box<dyn Read> = match gzip {
            true => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
            false => Box::new(bytes),
        };
        rows(reader, &task, &file)
    })
    .await
    .map_err(|e| {
        ReplicationError::new(
            FailureReason::Unknown,
            format!("reading an inventory file: {e}"),
        )
    })?
}

/// The task's rows of an inventory file: [`ROWS_PER_TASK`] from `file.skip`, and the
/// row the next task starts at when there are more.
fn rows(
    reader: Box<dyn Read>,
    task: &ListTask,
    file: &InventoryFile,
) -> Result<(Vec<Listed>, Option<u64>), ReplicationError> {
    let column = |name: &str| file.schema.iter().position(|c| c == name);
    let (key_at, size_at, modified_at, etag_at, class_at, latest_at, marker_at, bucket_at) = (
        column("Key"),
        column("Size"),
        column("LastModifiedDate"),
        column("ETag"),
        column("StorageClass"),
        column("IsLatest"),
        column("IsDeleteMarker"),
        column("Bucket"),
    );
    let malformed = |row: u64, why: String| {
        ReplicationError::new(
            FailureReason::MalformedMessage,
            format!("s3://{}/{} row {}: {why}", file.bucket, file.key, row + 1),
        )
    };
    let mut objects = Vec::new();
    let mut taken = 0u64;
    for (row, line) in BufReader::new(reader).lines().enumerate() {
        let row = row as u64;
        if row < file.skip {
            continue;
        }
        if taken == ROWS_PER_TASK {
            return Ok((objects, Some(row)));
        }
        taken += 1;
        let line = line.map_err(|e| malformed(row, format!("not readable: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        // Keys are URL-encoded: no field holds a line break, a line is a record.
        let fields = super::csv::records(&line).pop().unwrap_or_default();
        let field = |at: Option<usize>| {
            at.and_then(|i| fields.get(i))
                .map(String::as_str)
                .unwrap_or("")
        };
        if field(latest_at) == "false" || field(marker_at) == "true" {
            continue;
        }
        if bucket_at.is_some() && field(bucket_at) != task.bucket {
            continue;
        }
        let key = crate::events::decode_key(field(key_at)).map_err(|e| malformed(row, e))?;
        if !key.starts_with(&task.prefix) {
            continue;
        }
        let class = field(class_at);
        objects.push(Listed {
            key,
            size: field(size_at).parse().unwrap_or(0),
            etag: Some(field(etag_at).to_string()).filter(|e| !e.is_empty()),
            last_modified: aws_smithy_types::DateTime::from_str(
                field(modified_at),
                aws_smithy_types::date_time::Format::DateTime,
            )
            .ok(),
            archived: class == "GLACIER" || class == "DEEP_ARCHIVE",
        });
    }
    Ok((objects, None))
}
