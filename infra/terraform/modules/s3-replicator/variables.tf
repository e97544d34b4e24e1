variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "s3-replicator"
}

variable "replicator_config" {
  description = "The configuration document: inline JSON, or s3://BUCKET/KEY (then also set config_object_arn)."
  type        = string
}

variable "config_object_arn" {
  description = "ARN of the configuration object when replicator_config is s3://..."
  type        = string
  default     = ""
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
  description = "KMS keys of SSE-KMS sources and replica keys, if any."
  type        = list(string)
  default     = []
}

variable "destination_secret_arns" {
  description = "Secrets Manager secrets named by destinations' Credentials.Secret (keys for other providers); replicate may read only these."
  type        = list(string)
  default     = []
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

variable "replicate_concurrency" {
  description = "Reserved concurrency of replicate (bounds the request rate on your buckets)."
  type        = number
  default     = 50
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
