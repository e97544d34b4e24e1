//! The failed-job archive: parked messages kept as S3 objects once they have waited in
//! the failed queue as long as the operator chose, before SQS's retention (14 days at
//! most) would drop them. One object per message, named by its message id, holding the
//! body as it was parked; when it was parked is kept in the object's metadata.

use futures::{StreamExt, TryStreamExt};

use super::parked::{Held, Parked};
use crate::config::settings::ArchiveSettings;
use crate::errors::{describe, ArchiveError};

pub struct Archive {
    pub s3: aws_sdk_s3::Client,
    pub settings: ArchiveSettings,
}

const PARKED_AT_MS: &str = "parked-at-ms";
/// Reads of archived messages in flight at once.
const READS_AT_ONCE: usize = 16;

impl Archive {
    fn key(&self, id: &str) -> String {
        format!("{}{id}.json", self.settings.prefix)
    }

    fn error(&self, operation: &'static str, key: &str, detail: String) -> ArchiveError {
        ArchiveError::Request {
            operation,
            bucket: self.settings.bucket.clone(),
            key: key.to_string(),
            detail,
        }
    }

    /// Writes one parked message (its body as it is) to the archive.
    pub async fn put(&self, parked: &Parked) -> Result<(), ArchiveError> {
        let key = self.key(&parked.id);
        self.s3
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .content_type("application/json")
            .set_metadata(
                parked
                    .held
                    .parked_ms
                    .map(|ms| [(PARKED_AT_MS.to_string(), ms.to_string())].into()),
            )
            .body(parked.body.clone().into_bytes().into())
            .send()
            .await
            .map_err(|e| self.error("PutObject", &key, describe(&e)))?;
        Ok(())
    }

    /// Every archived message.
    pub async fn scan(&self) -> Result<Vec<Parked>, ArchiveError> {
        let prefix = &self.settings.prefix;
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.settings.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", prefix, describe(&e)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| {
                        // Only what a sweep wrote: PREFIX/ID.json, nothing deeper.
                        k.strip_prefix(prefix.as_str())
                            .and_then(|rest| rest.strip_suffix(".json"))
                            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
                    })
                    .map(str::to_string),
            );
        }
        let read = futures::stream::iter(keys)
            .map(|key| async move { self.read(key).await })
            .buffer_unordered(READS_AT_ONCE)
            .try_collect::<Vec<Option<Parked>>>()
            .await?;
        let mut parked: Vec<Parked> = read.into_iter().flatten().collect();
        parked.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(parked)
    }

    /// One archived message; none if it went meanwhile (another redrive or purge).
    async fn read(&self, key: String) -> Result<Option<Parked>, ArchiveError> {
        let out = match self
            .s3
            .get_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.error("GetObject", &key, describe(&e))),
        };
        let parked_ms = out
            .metadata()
            .and_then(|m| m.get(PARKED_AT_MS))
            .and_then(|v| v.parse().ok());
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.error("GetObject", &key, e.to_string()))?;
        let id = key
            .strip_prefix(self.settings.prefix.as_str())
            .and_then(|rest| rest.strip_suffix(".json"))
            .unwrap_or_default()
            .to_string();
        Ok(Some(Parked::from_body(
            id,
            String::from_utf8_lossy(&bytes.into_bytes()).into_owned(),
            Held {
                receipt: None,
                archive_key: Some(key),
                parked_ms,
            },
        )))
    }

    /// Removes these messages' archive objects (those that have one).
    pub async fn delete(&self, parked: &[Parked]) -> Result<(), ArchiveError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let keys: Vec<&str> = parked
            .iter()
            .filter_map(|p| p.held.archive_key.as_deref())
            .collect();
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.error("DeleteObjects", chunk[0], e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.error("DeleteObjects", chunk[0], e.to_string()))?;
            let out = self
                .s3
                .delete_objects()
                .bucket(&self.settings.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.error("DeleteObjects", chunk[0], describe(&e)))?;
            if let Some(e) = out.errors().first() {
                return Err(self.error(
                    "DeleteObjects",
                    e.key().unwrap_or_default(),
                    format!(
                        "{} of {} not deleted ({}: {})",
                        out.errors().len(),
                        chunk.len(),
                        e.code().unwrap_or_default(),
                        e.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}
