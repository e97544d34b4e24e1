//! S3 Inventory as a backfill's input, for buckets too large to list: the manifest
//! (`manifest.json`) names CSV files (usually gzip-compressed), and each file becomes
//! list tasks of its own (see [`crate::listing::inventory`]).

use serde::Deserialize;

use super::Scope;
use crate::config::Config;
use crate::errors::ScanError;
use crate::listing::task::{InventoryFile, ListTask};

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
    let bytes = crate::config::objects::read_object(s3, bucket, key)
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
