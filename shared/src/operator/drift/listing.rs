//! A listing read a page at a time, as a stream of keys in S3's order, so two of them
//! can be merged side by side in memory that does not grow with the bucket.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::errors::ReplicationError;
use crate::listing::list::{self, Listed};

pub struct Listing<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    prefix: String,
    /// Listed with `/` as delimiter: only the keys directly under the prefix, and the
    /// sub-prefixes below it collected in `prefixes`.
    split: bool,
    buffer: VecDeque<Listed>,
    token: Option<String>,
    done: bool,
    last: Option<String>,
    pub prefixes: BTreeSet<String>,
    counter: &'a AtomicU64,
}

impl<'a> Listing<'a> {
    pub fn new(
        s3: &'a aws_sdk_s3::Client,
        bucket: &'a str,
        prefix: &str,
        split: bool,
        counter: &'a AtomicU64,
    ) -> Self {
        Listing {
            s3,
            bucket,
            prefix: prefix.to_string(),
            split,
            buffer: VecDeque::new(),
            token: None,
            done: false,
            last: None,
            prefixes: BTreeSet::new(),
            counter,
        }
    }

    /// A listing whose first page was already read (`page`, listed without delimiter).
    pub fn starting_with(mut self, page: list::Page) -> Self {
        self.counter
            .fetch_add(page.objects.len() as u64, Ordering::Relaxed);
        self.buffer.extend(page.objects);
        self.token = page.next;
        self.done = self.token.is_none();
        self
    }

    /// The next key without taking it.
    pub async fn peek(&mut self) -> Result<Option<&Listed>, ReplicationError> {
        while self.buffer.is_empty() && !self.done {
            let page = list::page(
                self.s3,
                self.bucket,
                &self.prefix,
                self.split,
                self.token.as_deref(),
            )
            .await?;
            self.counter
                .fetch_add(page.objects.len() as u64, Ordering::Relaxed);
            self.prefixes.extend(page.prefixes);
            self.buffer.extend(page.objects);
            self.token = page.next;
            self.done = self.token.is_none();
        }
        Ok(self.buffer.front())
    }

    /// Takes the next key. A listing out of order would make the merge report
    /// nonsense: it is refused instead.
    pub async fn next(&mut self) -> Result<Option<Listed>, ReplicationError> {
        self.peek().await?;
        let Some(next) = self.buffer.pop_front() else {
            return Ok(None);
        };
        if self
            .last
            .as_ref()
            .is_some_and(|last| last.as_str() >= next.key.as_str())
        {
            return Err(ReplicationError::new(
                crate::errors::FailureReason::InvalidRequest,
                format!(
                    "s3://{}/ lists {:?} after {:?}: not in ascending UTF-8 order, so it cannot be compared side by side",
                    self.bucket,
                    next.key,
                    self.last.as_deref().unwrap_or("")
                ),
            ));
        }
        self.last = Some(next.key.clone());
        Ok(Some(next))
    }
}
