//! ACLs: whether a bucket uses them (learnt once per bucket), and the source's grants
//! as the headers a write carries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::types::{Grant, ObjectOwnership, Permission, Type};
use aws_sdk_s3::Client;

use crate::errors::{ReplicationError, S3Step};
use crate::queues::job::Job;

/// Per-process memory of which buckets have ACLs disabled (BucketOwnerEnforced).
#[derive(Debug, Default)]
pub struct AclSupport {
    known: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
}

impl AclSupport {
    /// Whether the bucket uses ACLs at all; asked once per bucket per process, however
    /// many jobs ask at once (the first asks, the others wait for its answer).
    pub async fn uses_acls(&self, client: &Client, bucket: &str) -> bool {
        let cell = self
            .known
            .lock()
            .expect("acl cache")
            .entry(bucket.to_string())
            .or_default()
            .clone();
        *cell
            .get_or_init(|| async {
                match client
                    .get_bucket_ownership_controls()
                    .bucket(bucket)
                    .send()
                    .await
                {
                    Ok(out) => !out
                        .ownership_controls()
                        .map(|c| {
                            c.rules().iter().any(|r| {
                                r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced
                            })
                        })
                        .unwrap_or(false),
                    // No ownership controls (buckets from before 2023): ACLs are in
                    // force. On any other answer assume they are, and let the ACL
                    // request speak.
                    Err(_) => true,
                }
            })
            .await
    }
}

/// The source's grants as x-amz-grant-* header values, or None when the ACL is the
/// default (only the owner, with full control), which needs no header.
#[derive(Debug, Clone)]
pub struct GrantHeaders {
    pub full_control: Option<String>,
    pub read: Option<String>,
    pub read_acp: Option<String>,
    pub write_acp: Option<String>,
}

pub async fn source_grants(
    client: &Client,
    job: &Job,
    version_id: Option<&str>,
) -> Result<Option<GrantHeaders>, ReplicationError> {
    let acl = client
        .get_object_acl()
        .bucket(&job.source.bucket)
        .key(&job.source.key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::SourceAcl, &e))?;
    let owner = acl.owner().and_then(|o| o.id()).unwrap_or("");
    let only_owner = acl.grants().iter().all(|g| {
        g.permission() == Some(&Permission::FullControl)
            && g.grantee().and_then(|e| e.id()) == Some(owner)
    });
    if only_owner {
        return Ok(None);
    }
    Ok(Some(grant_headers(acl.grants())))
}

fn grant_headers(grants: &[Grant]) -> GrantHeaders {
    let mut by_permission: HashMap<&str, Vec<String>> = HashMap::new();
    for g in grants {
        let (Some(permission), Some(grantee)) = (g.permission(), g.grantee()) else {
            continue;
        };
        let who = match grantee.r#type() {
            Type::CanonicalUser => grantee.id().map(|id| format!("id=\"{id}\"")),
            Type::Group => grantee.uri().map(|uri| format!("uri=\"{uri}\"")),
            Type::AmazonCustomerByEmail => grantee
                .email_address()
                .map(|e| format!("emailAddress=\"{e}\"")),
            _ => None,
        };
        if let Some(who) = who {
            by_permission
                .entry(permission.as_str())
                .or_default()
                .push(who);
        }
    }
    let mut take = |p: &str| by_permission.remove(p).map(|v| v.join(", "));
    GrantHeaders {
        full_control: take("FULL_CONTROL"),
        read: take("READ"),
        read_acp: take("READ_ACP"),
        write_acp: take("WRITE_ACP"),
    }
}
