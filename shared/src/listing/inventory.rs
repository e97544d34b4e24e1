//! A list task that reads an S3 Inventory file instead of listing: [`ROWS_PER_TASK`]
//! rows at a time. A gzip stream cannot be entered in the middle, so each task reads
//! from the start and skips what earlier tasks took: cheap next to the copies it sends.

use std::io::{BufRead, BufReader, Read};

use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::listing::list::Listed;
use crate::listing::task::{InventoryFile, ListTask};

/// Rows one task reads from an inventory file.
pub const ROWS_PER_TASK: u64 = 10_000;

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
        let fields = crate::listing::csv::records(&line)
            .pop()
            .unwrap_or_default();
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
