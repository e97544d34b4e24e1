//! A rule's destination, with our `Replicator` object beside S3's fields: endpoint,
//! credentials, storage-class map, delete and ACL modes, part size.

use super::walker::{kind, Walker};
use super::*;

impl Walker {
    /// `dmr` is the rule's DeleteMarkerReplication, if written; `legacy` says the rule
    /// uses the older schema, whose delete markers S3 replicates.
    pub(super) fn destination(
        &mut self,
        value: &Value,
        path: &str,
        dmr: Option<bool>,
        legacy: bool,
    ) -> Option<Destination> {
        let mut obj = self.obj(value, path)?;
        let bucket = self.string(&mut obj, "Bucket", true).and_then(|b| {
            let name = b.strip_prefix("arn:aws:s3:::").unwrap_or(&b).to_string();
            if b.starts_with("arn:") && !b.starts_with("arn:aws:s3:::") {
                self.problem(
                    &format!("{path}.Bucket"),
                    format!("\"{b}\" is not an S3 bucket ARN (arn:aws:s3:::NAME)"),
                );
                return None;
            }
            self.bucket_name(&name, &format!("{path}.Bucket"));
            Some(name)
        });
        let account = self.string(&mut obj, "Account", false);
        if let Some(a) = &account {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                self.problem(
                    &format!("{path}.Account"),
                    format!("\"{a}\" is not an AWS account ID (12 digits)"),
                );
            }
        }
        let storage_class = self.string(&mut obj, "StorageClass", false);
        if let Some(sc) = &storage_class {
            if !is_aws_storage_class(sc) {
                self.problem(
                    &format!("{path}.StorageClass"),
                    format!("\"{sc}\" is not an S3 storage class (for another provider's classes use Replicator.StorageClassMap)"),
                );
            }
        }
        let mut owner_override = false;
        if let Some(v) = self.field(&mut obj, "AccessControlTranslation") {
            let act_path = format!("{path}.AccessControlTranslation");
            if let Some(mut act) = self.obj(v, &act_path) {
                match self.string(&mut act, "Owner", true).as_deref() {
                    Some("Destination") => owner_override = true,
                    Some(other) => self.problem(
                        &format!("{act_path}.Owner"),
                        format!("must be \"Destination\", found \"{other}\""),
                    ),
                    None => {}
                }
                self.finish(act);
            }
            if owner_override && account.is_none() {
                self.problem(
                    &format!("{path}.Account"),
                    "is required with AccessControlTranslation (S3 needs the owner's account)",
                );
            }
        }
        let mut replica_kms_key_id = None;
        if let Some(v) = self.field(&mut obj, "EncryptionConfiguration") {
            if let Some(mut enc) = self.obj(v, &format!("{path}.EncryptionConfiguration")) {
                replica_kms_key_id = self.string(&mut enc, "ReplicaKmsKeyID", false);
                self.finish(enc);
            }
        }
        // Accepted so a pasted rule parses; RTC and its metrics are S3's own service.
        if self.field(&mut obj, "ReplicationTime").is_some() {
            self.note(
                &format!("{path}.ReplicationTime"),
                "accepted and ignored: S3 RTC's objective is the stack's replication-time alarm here (ReplicationTimeObjectiveSeconds / replication_time_objective_seconds)",
            );
        }
        if self.field(&mut obj, "Metrics").is_some() {
            self.note(
                &format!("{path}.Metrics"),
                "accepted and ignored: every job's outcome is a log line (bucket, key, destination, bytes, latency, reason) instead",
            );
        }

        let ext = match self.field(&mut obj, "Replicator") {
            Some(v) => self.extension(v, &format!("{path}.Replicator")),
            None => Some(Extension::default()),
        };
        self.finish(obj);
        let ext = ext?;

        let default_delete = if dmr.unwrap_or(legacy) {
            DeleteMode::Markers
        } else {
            DeleteMode::None
        };
        let delete_mode = match ext.delete_mode {
            Some(mode) => {
                let consistent = match dmr {
                    None => true,
                    Some(true) => mode != DeleteMode::None,
                    Some(false) => mode == DeleteMode::None,
                };
                if !consistent {
                    self.problem(
                        &format!("{path}.Replicator.DeleteMode"),
                        format!("\"{mode}\" contradicts the rule's DeleteMarkerReplication; make them agree or drop one"),
                    );
                }
                mode
            }
            None => default_delete,
        };
        let acl_mode = match ext.acl_mode {
            Some(AclMode::Copy) if owner_override => {
                self.problem(
                    &format!("{path}.Replicator.AclMode"),
                    "\"copy\" contradicts AccessControlTranslation (Owner=Destination), which means \"owner-override\"",
                );
                AclMode::Copy
            }
            Some(mode) => mode,
            None if owner_override => AclMode::OwnerOverride,
            None => AclMode::Copy,
        };
        Some(Destination {
            bucket: bucket?,
            account,
            storage_class,
            replica_kms_key_id,
            endpoint: ext.endpoint,
            storage_class_map: ext.storage_class_map,
            delete_mode,
            acl_mode,
            part_size: ext.part_size,
            replicate_replicas: ext.replicate_replicas,
            two_way: ext.two_way,
            preconditions: ext.preconditions.unwrap_or_default(),
            write_order: ext.write_order.unwrap_or_default(),
        })
    }

    pub(super) fn extension(&mut self, value: &Value, path: &str) -> Option<Extension> {
        let mut obj = self.obj(value, path)?;
        let mut ext = Extension::default();
        ext.endpoint.endpoint_url = self.string(&mut obj, "EndpointUrl", false);
        let allow_http = self.boolean(&mut obj, "AllowHttp").unwrap_or(false);
        if let Some(url) = ext.endpoint.endpoint_url.clone() {
            let url_path = format!("{path}.EndpointUrl");
            match endpoint_problem(&url, allow_http) {
                Some(EndpointProblem::Credentials) => {
                    // Never echoed: the URL holds a key.
                    self.problem(&url_path, "holds credentials before its host (user:password@); they would travel in every log and report: name a Secret or a Profile in Credentials instead");
                    ext.endpoint.endpoint_url = None;
                }
                Some(EndpointProblem::Scheme) => self.problem(
                    &url_path,
                    format!("\"{url}\" must start with http:// or https://"),
                ),
                Some(EndpointProblem::PlainHttp(host)) => self.problem(
                    &url_path,
                    format!("\"{url}\" sends object bytes (and, with DefaultChain, this process's session keys) in clear to {host}: use https://, or write \"AllowHttp\": true beside it to mean it"),
                ),
                None => {}
            }
        }
        ext.endpoint.region = self.string(&mut obj, "Region", false);
        ext.endpoint.force_path_style = self.boolean(&mut obj, "ForcePathStyle").unwrap_or(false);
        ext.replicate_replicas = self.boolean(&mut obj, "ReplicateReplicas").unwrap_or(false);
        ext.two_way = self.boolean(&mut obj, "TwoWay").unwrap_or(false);
        let mut explicit_default = false;
        if let Some(v) = self.field(&mut obj, "Credentials") {
            let cred_path = format!("{path}.Credentials");
            if let Some(mut creds) = self.obj(v, &cred_path) {
                let profile = self.string(&mut creds, "Profile", false);
                let secret = self.string(&mut creds, "Secret", false);
                explicit_default = self.boolean(&mut creds, "DefaultChain").unwrap_or(false);
                let mut had_keys = false;
                for forbidden in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
                    if creds.map.contains_key(forbidden) {
                        had_keys = true;
                        creds.used.push(forbidden);
                        self.problem(
                            &format!("{cred_path}.{forbidden}"),
                            "keys never belong in the configuration; name a Secret (AWS Secrets Manager) or a Profile",
                        );
                    }
                }
                let named = usize::from(profile.is_some())
                    + usize::from(secret.is_some())
                    + usize::from(explicit_default);
                if named > 1 {
                    self.problem(
                        &cred_path,
                        "name one of Secret, Profile or DefaultChain, not several",
                    );
                } else if named == 0 && !had_keys {
                    self.problem(
                        &cred_path,
                        "name a Secret, a Profile, or {\"DefaultChain\": true}",
                    );
                }
                ext.endpoint.credentials = match (profile, secret) {
                    (Some(p), _) => CredentialSource::Profile(p),
                    (None, Some(s)) => CredentialSource::Secret(s),
                    (None, None) => CredentialSource::DefaultChain,
                };
                self.finish(creds);
            }
        }
        // The process's own keys (and session token) go to another endpoint only when
        // the document says so: an EndpointUrl without Credentials would hand them to
        // whoever runs that endpoint.
        if let Some(url) = &ext.endpoint.endpoint_url {
            if ext.endpoint.credentials == CredentialSource::DefaultChain && !explicit_default {
                self.problem(
                    &format!("{path}.Credentials"),
                    format!("is required with EndpointUrl: without it the process's own AWS keys would be sent to {url}; name a Secret or a Profile, or write {{\"DefaultChain\": true}} to send them on purpose"),
                );
            }
        }
        match self.field(&mut obj, "StorageClassMap") {
            Some(Value::Object(map)) => {
                for (from, to) in map {
                    let entry = format!("{path}.StorageClassMap.{from}");
                    if !is_aws_storage_class(from) {
                        self.problem(
                            &entry,
                            format!(
                                "\"{from}\" is not an S3 storage class a source object can have"
                            ),
                        );
                    }
                    match to {
                        Value::String(to) if is_storage_class_token(to) => {
                            ext.storage_class_map.insert(from.clone(), to.clone());
                        }
                        Value::String(to) => self.problem(
                            &entry,
                            format!("\"{to}\" is not a storage class name (letters, digits and _)"),
                        ),
                        other => self
                            .problem(&entry, format!("expected a string, found {}", kind(other))),
                    }
                }
            }
            Some(other) => self.problem(
                &format!("{path}.StorageClassMap"),
                format!("expected an object, found {}", kind(other)),
            ),
            None => {}
        }
        ext.delete_mode = self.enum_field(&mut obj, "DeleteMode", &["none", "markers", "all"]);
        ext.acl_mode = self.enum_field(&mut obj, "AclMode", &["copy", "owner-override", "none"]);
        ext.preconditions =
            self.enum_field(&mut obj, "Preconditions", &["probe", "enforced", "ignored"]);
        ext.write_order = self.enum_field(
            &mut obj,
            "WriteOrder",
            &["adaptive", "replica-first", "new-keys-first"],
        );
        if let Some(size) = self.integer(&mut obj, "PartSize") {
            const MIB: i64 = 1024 * 1024;
            let streamed = ext.endpoint.endpoint_url.is_some();
            if !(5 * MIB..=5 * 1024 * MIB).contains(&size) {
                self.problem(
                    &format!("{path}.PartSize"),
                    format!("{size} is outside S3's part sizes (5 MiB to 5 GiB)"),
                );
            } else if streamed && size as u64 > MAX_STREAMED_PART {
                // Parts to another endpoint pass through memory whole: the templates'
                // 512 MB replicate function holds 128 MiB of them beside itself.
                self.problem(
                    &format!("{path}.PartSize"),
                    format!("{size} bytes per part is more than a streamed copy holds in memory ({} MiB, the most the deployed replicate function can hold beside itself); parts to another endpoint pass through memory whole", MAX_STREAMED_PART / MIB as u64),
                );
            } else {
                ext.part_size = Some(size as u64);
            }
        }
        self.finish(obj);
        Some(ext)
    }
}

#[derive(Default)]
pub(super) struct Extension {
    pub(super) endpoint: EndpointSettings,
    pub(super) storage_class_map: BTreeMap<String, String>,
    pub(super) delete_mode: Option<DeleteMode>,
    pub(super) acl_mode: Option<AclMode>,
    pub(super) part_size: Option<u64>,
    pub(super) replicate_replicas: bool,
    pub(super) two_way: bool,
    pub(super) preconditions: Option<PreconditionMode>,
    pub(super) write_order: Option<WriteOrder>,
}

/// The largest part a streamed copy (to another endpoint) may be configured with: the
/// memory budget of streamed parts (16 MiB × 8 in flight by default), which the
/// templates' 512 MB replicate function holds beside itself.
pub const MAX_STREAMED_PART: u64 = 128 * 1024 * 1024;

/// What is wrong with a destination's `EndpointUrl`, if anything.
#[derive(Debug, PartialEq)]
enum EndpointProblem {
    Scheme,
    /// `user:password@host`: keys in the URL.
    Credentials,
    /// `http://` to this host, which is not this machine.
    PlainHttp(String),
}

fn endpoint_problem(url: &str, allow_http: bool) -> Option<EndpointProblem> {
    let (plain, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Some(EndpointProblem::Scheme),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Some(EndpointProblem::Credentials);
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    (plain && !loopback && !allow_http).then(|| EndpointProblem::PlainHttp(host.to_string()))
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    #[test]
    fn endpoints_with_keys_or_in_clear_to_another_host_are_refused() {
        assert_eq!(endpoint_problem("https://s3.example.com", false), None);
        assert_eq!(endpoint_problem("http://127.0.0.1:9000/", false), None);
        assert_eq!(endpoint_problem("http://localhost:9000", false), None);
        assert_eq!(endpoint_problem("http://[::1]:9000", false), None);
        assert_eq!(
            endpoint_problem("https://AKIA:secret@s3.example.com", false),
            Some(EndpointProblem::Credentials)
        );
        assert_eq!(
            endpoint_problem("http://minio.internal:9000", false),
            Some(EndpointProblem::PlainHttp("minio.internal".into()))
        );
        assert_eq!(endpoint_problem("http://minio.internal:9000", true), None);
        assert_eq!(
            endpoint_problem("ftp://x", false),
            Some(EndpointProblem::Scheme)
        );
    }

    /// `config check` explains the problem without printing the key back.
    #[test]
    fn a_key_in_an_endpoint_is_never_echoed() {
        let doc = r#"{"Sources": [{"Bucket": "src", "ReplicationConfiguration": {"Rules": [
            {"Status": "Enabled", "Priority": 1, "Filter": {}, "Destination": {"Bucket": "dst",
             "Replicator": {"EndpointUrl": "https://AKIAEXAMPLE:wJalrXUtnFEMI@s3.example.com",
                            "Credentials": {"DefaultChain": true}}}}]}}]}"#;
        let err = crate::config::Config::parse(doc).unwrap_err().to_string();
        assert!(
            err.contains("EndpointUrl") && err.contains("credentials"),
            "{err}"
        );
        assert!(
            !err.contains("wJalrXUtnFEMI") && !err.contains("AKIAEXAMPLE"),
            "{err}"
        );
        let clear = doc.replace("https://AKIAEXAMPLE:wJalrXUtnFEMI@", "http://");
        let err = crate::config::Config::parse(&clear)
            .unwrap_err()
            .to_string();
        assert!(err.contains("AllowHttp"), "{err}");
        let allowed = clear.replace(r#""Credentials""#, r#""AllowHttp": true, "Credentials""#);
        assert!(crate::config::Config::parse(&allowed).is_ok());
    }
}
