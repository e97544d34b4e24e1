variable "name_prefix" {
  description = "Prefix of every name the module gives (queues, functions, roles, policies, log groups, rules, alarms, the archive bucket). Two deployments in one account need two prefixes; names that are global (IAM roles and policies, the archive bucket) also carry the region."
  type        = string
  default     = "s3-replicator"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,22}$", var.name_prefix))
    error_message = "name_prefix is 1 to 23 lower-case letters, digits and hyphens (the archive bucket's name, PREFIX-failed-jobs-ACCOUNT-REGION, must fit S3's 63 characters)."
  }
}

# The configuration document: one source. The default is an S3 object, which the
# module uploads from config_file (or reads the version of, when it exists already).
variable "config_bucket" {
  description = "Bucket of the configuration document (REPLICATOR_CONFIG=s3://config_bucket/config_key), in this account. With config_file the module uploads it there; without, the object must exist and the module reads its version."
  type        = string
  default     = ""
}

variable "config_key" {
  description = "Key of the configuration document in config_bucket; empty: NAME_PREFIX/replication.json."
  type        = string
  default     = ""
}

variable "config_file" {
  description = "A local JSON file the module uploads to config_bucket as the configuration document (aws_s3_object). A change to it rolls the functions."
  type        = string
  default     = ""
  validation {
    condition     = var.config_file == "" || can(jsondecode(file(var.config_file)).Sources)
    error_message = "config_file is a JSON document with Sources (check it with: s3-replicator config check FILE)."
  }
}

variable "replicator_config" {
  description = "Or: the document itself, inline (it goes into Lambda's environment, which holds 4 KB in all: at most 3,000 characters once minified). Empty when config_bucket is used."
  type        = string
  default     = ""
  validation {
    condition     = var.replicator_config == "" || can(jsondecode(var.replicator_config).Sources)
    error_message = "replicator_config is a JSON document with Sources, or empty (then set config_bucket)."
  }
  validation {
    condition     = length(try(jsonencode(jsondecode(var.replicator_config)), var.replicator_config)) <= 3000
    error_message = "replicator_config is over 3,000 characters once minified: Lambda's environment holds 4 KB in all. Keep the document in S3 (config_bucket, config_file)."
  }
}

variable "source_bucket_names" {
  description = "Buckets whose objects are replicated (read access, notifications)."
  type        = list(string)
}

variable "destination_bucket_names" {
  description = "Buckets replicas are written to."
  type        = list(string)
}

variable "destination_account_ids" {
  description = "Accounts that own the destination buckets (each rule's Destination.Account); empty: this account. Replicas are written only to buckets these accounts own."
  type        = list(string)
  default     = []
}

variable "kms_key_arns" {
  description = "KMS keys S3 uses for us, if any: SSE-KMS sources' keys, replica keys (ReplicaKmsKeyID), and the default-encryption keys of destination buckets. Granted kms:Decrypt and kms:GenerateDataKey through S3 only."
  type        = list(string)
  default     = []
}

variable "destination_secret_arns" {
  description = "Secrets Manager secrets named by destinations' Credentials.Secret (keys for other providers), by full ARN (with its 6-character suffix); replicate may read only these and those of destination_secret_names."
  type        = list(string)
  default     = []
}

variable "destination_secret_names" {
  description = "The same by name, for secrets in this account and region: granted as arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-??????."
  type        = list(string)
  default     = []
}

variable "secret_kms_key_arns" {
  description = "Customer-managed KMS keys those secrets are encrypted under, if any (kms:Decrypt through Secrets Manager in this region only), and the key of signing_key_secret_arn's secret if it has one. Not needed for aws/secretsmanager."
  type        = list(string)
  default     = []
}

variable "signing_key_secret_arn" {
  description = "The Secrets Manager secret holding the key that signs replicas' provenance and jobs, JSON {\"current\": KEY, \"previous\": KEY (optional)}, KEY at least 32 characters; by full ARN, in this region. Empty: the module creates one (NAME_PREFIX-signing-key). Two deployments of a two-way pair share one key: give the second the first's (output signing_key_secret_arn)."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6})?$", var.signing_key_secret_arn))
    error_message = "signing_key_secret_arn is a secret's full ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX), or empty."
  }
}

variable "artifacts_dir" {
  description = "Where `make build` put the functions: DIR/<function>/bootstrap.zip."
  type        = string
}

variable "max_receive_count" {
  description = "Receives of one job before SQS moves it to the retry queue."
  type        = number
  default     = 5
}

variable "retry_max_attempts" {
  description = "Failed attempts after which a job is parked in the failed queue."
  type        = number
  default     = 10
}

variable "replication_time_objective_seconds" {
  description = "Alarm when the oldest waiting job is older than this (S3 RTC promises 15 minutes)."
  type        = number
  default     = 900
}

variable "alarm_topic_arn" {
  description = "SNS topic the alarms notify; empty for none."
  type        = string
  default     = ""
}

# Each SQS trigger's maximum concurrency: how many instances its poller invokes at
# once. It needs no quota, and the poller holds back instead of having batches
# throttled (which SQS redelivers after the visibility timeout, a receive spent).
variable "ingest_maximum_concurrency" {
  description = "Instances of ingest the events queue's trigger runs at once (2 to 1000)."
  type        = number
  default     = 10
  validation {
    condition     = var.ingest_maximum_concurrency >= 2 && var.ingest_maximum_concurrency <= 1000
    error_message = "ingest_maximum_concurrency is from 2 to 1000 (Lambda's limits for an SQS trigger)."
  }
}

variable "replicate_maximum_concurrency" {
  description = "Instances of replicate the work queue's trigger runs at once (2 to 1000; bounds the request rate on your buckets)."
  type        = number
  default     = 50
  validation {
    condition     = var.replicate_maximum_concurrency >= 2 && var.replicate_maximum_concurrency <= 1000
    error_message = "replicate_maximum_concurrency is from 2 to 1000 (Lambda's limits for an SQS trigger)."
  }
}

variable "retry_maximum_concurrency" {
  description = "Instances of retry the retry queue's trigger runs at once (2 to 1000)."
  type        = number
  default     = 2
  validation {
    condition     = var.retry_maximum_concurrency >= 2 && var.retry_maximum_concurrency <= 1000
    error_message = "retry_maximum_concurrency is from 2 to 1000 (Lambda's limits for an SQS trigger)."
  }
}

# Reserved concurrency is an optional extra: it takes quota (Lambda keeps 100 of the
# account's concurrency unreserved), so none is reserved unless asked for.
variable "ingest_reserved_concurrency" {
  description = "Concurrency reserved for ingest; null for none (the default). At least ingest_maximum_concurrency when set."
  type        = number
  default     = null
  validation {
    condition     = var.ingest_reserved_concurrency == null || try(var.ingest_reserved_concurrency >= 1, false)
    error_message = "ingest_reserved_concurrency is null (none) or at least 1."
  }
}

variable "replicate_reserved_concurrency" {
  description = "Concurrency reserved for replicate; null for none (the default). At least replicate_maximum_concurrency when set."
  type        = number
  default     = null
  validation {
    condition     = var.replicate_reserved_concurrency == null || try(var.replicate_reserved_concurrency >= 1, false)
    error_message = "replicate_reserved_concurrency is null (none) or at least 1."
  }
}

variable "retry_reserved_concurrency" {
  description = "Concurrency reserved for retry; null for none (the default). At least retry_maximum_concurrency when set."
  type        = number
  default     = null
  validation {
    condition     = var.retry_reserved_concurrency == null || try(var.retry_reserved_concurrency >= 1, false)
    error_message = "retry_reserved_concurrency is null (none) or at least 1."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 365
}

variable "setup_notifications_with" {
  description = "Path to the s3-replicator CLI. When set, Terraform runs `setup notifications` for each source bucket, which merges our queue into the bucket's notifications (an aws_s3_bucket_notification would replace them all). Empty: run it yourself."
  type        = string
  default     = ""
}

variable "failed_archive_bucket_name" {
  description = "Bucket that keeps parked jobs past the failed queue's 14-day retention (not a source bucket). Empty: the module creates one."
  type        = string
  default     = ""
}

variable "failed_archive_prefix" {
  description = "Key prefix of the archived jobs (empty, or ending with /)."
  type        = string
  default     = "failed-jobs/"
  validation {
    condition     = can(regex("^([^/].*/)?$", var.failed_archive_prefix))
    error_message = "failed_archive_prefix is empty or ends with / (and does not start with one)."
  }
}

variable "backfill_report_prefix" {
  description = "Key prefix, in the archive bucket, of the records and completion reports of backfills (s3-replicator backfill --report)."
  type        = string
  default     = "backfill-reports/"
  validation {
    condition     = can(regex("^([^/].*/)?$", var.backfill_report_prefix))
    error_message = "backfill_report_prefix is empty or ends with / (and does not start with one)."
  }
}

variable "inventory_bucket_name" {
  description = "The bucket, in this account, S3 Inventory delivers the source buckets' inventories to: backfills from an inventory (s3-replicator backfill --inventory) read its files in the replicate function, which may read them under inventory_prefix. Empty for none."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])?$", var.inventory_bucket_name))
    error_message = "inventory_bucket_name is a bucket's name, or empty."
  }
}

variable "inventory_prefix" {
  description = "The inventories' key prefix in inventory_bucket_name (the inventory configuration's destination prefix); empty: the whole bucket."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([^/*?][^*?]*)?$", var.inventory_prefix))
    error_message = "inventory_prefix does not start with / and holds no * or ?."
  }
}

variable "failed_archive_after_days" {
  description = "Days a parked job waits in the failed queue before the hourly sweep moves it to the archive (0 to 12)."
  type        = number
  default     = 7
  validation {
    condition     = var.failed_archive_after_days >= 0 && var.failed_archive_after_days <= 12 && floor(var.failed_archive_after_days) == var.failed_archive_after_days
    error_message = "failed_archive_after_days is a whole number from 0 to 12: SQS drops a parked job after 14 days."
  }
}

variable "notification_delivery" {
  description = "How the source buckets' events reach ingest: \"queue\" (the events queue) or \"direct\" (S3 invokes ingest; one SQS hop fewer). Wire the buckets to match: setup notifications --queue-arn or --function-arn."
  type        = string
  default     = "queue"
  validation {
    condition     = contains(["queue", "direct"], var.notification_delivery)
    error_message = "notification_delivery is \"queue\" or \"direct\"."
  }
}

variable "notification_topic_arn" {
  description = "An SNS topic that already carries the source buckets' notifications (when another consumer owns them): the module subscribes the events queue to it (or ingest, with notification_delivery = \"direct\") and lets this topic, and only it, deliver. Empty for none."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^(arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256})?$", var.notification_topic_arn))
    error_message = "notification_topic_arn is an SNS topic's ARN, or empty."
  }
}

variable "eventbridge_notifications" {
  description = "true: an EventBridge rule sends the source buckets' Object Created, Object Deleted, Object Tags and Object ACL events to the events queue (or ingest, with notification_delivery = \"direct\"). Turn EventBridge on for each bucket (doc/DEPLOY.md)."
  type        = bool
  default     = false
}
