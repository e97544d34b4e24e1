# The IAM policy of each function, as plain JSON built from its inputs: no provider,
# no resources. The module above attaches these to the functions' roles; the tests
# render this same module with `terraform apply` (nothing to download) and run each
# function binary under its output, with IAM enforced.

terraform {
  required_version = ">= 1.5"
}

variable "source_bucket_names" {
  type = list(string)
}

variable "destination_bucket_names" {
  type = list(string)
}

variable "destination_account_ids" {
  description = "Accounts that own the destination buckets; replicas are written only to buckets they own."
  type        = list(string)
}

variable "kms_key_arns" {
  type = list(string)
}

variable "destination_secret_arns" {
  type = list(string)
}

variable "config_object_arn" {
  type = string
}

variable "archive_objects_arn" {
  description = "The failed-job archive's objects: arn:aws:s3:::BUCKET/PREFIX*."
  type        = string
}

variable "backfill_records_arn" {
  description = "Where backfills keep their records: arn:aws:s3:::BUCKET/PREFIX*."
  type        = string
}

variable "direct_delivery_dlq_arn" {
  description = "The events dead-letter queue, when S3 invokes ingest directly (Lambda sends failed events there with ingest's role); empty otherwise."
  type        = string
  default     = ""
}

variable "queue_arns" {
  description = "ARNs of the events, work, retry and failed queues."
  type = object({
    events = string
    work   = string
    retry  = string
    failed = string
  })
}

variable "log_group_arns" {
  description = "Each function's log group ARN, by function (ingest, replicate, retry)."
  type        = map(string)
}

locals {
  source_objects      = [for b in var.source_bucket_names : "arn:aws:s3:::${b}/*"]
  source_buckets      = [for b in var.source_bucket_names : "arn:aws:s3:::${b}"]
  destination_objects = [for b in var.destination_bucket_names : "arn:aws:s3:::${b}/*"]
  destination_buckets = [for b in var.destination_bucket_names : "arn:aws:s3:::${b}"]
  q                   = var.queue_arns

  # Only in the destinations' own accounts: a bucket name re-registered by someone
  # else is never written.
  destination_accounts = { StringEquals = { "s3:ResourceAccount" = var.destination_account_ids } }

  common = {
    for f in ["ingest", "replicate", "retry"] : f => concat(
      [{
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${var.log_group_arns[f]}:*"]
      }],
      var.config_object_arn == "" ? [] : [{
        Sid      = "ReadConfiguration"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = [var.config_object_arn]
      }],
    )
  }

  statements = {
    ingest = concat([
      # What Lambda's SQS trigger needs, on this function's queue only.
      {
        Sid      = "ConsumeTrigger"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = [local.q.events]
      },
      # Tags for tag filters; HEAD (s3:GetObject) for a replica's provenance in
      # two-way replication.
      {
        Sid      = "ReadTagsAndProvenance"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersionTagging"]
        Resource = local.source_objects
      },
      # Without ListBucket, S3 answers a HEAD of a missing key with 403, not 404.
      {
        Sid      = "MissingKeysAre404"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = local.source_buckets
      },
      {
        Sid      = "SendJobsAndParkNotifications"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.q.work, local.q.failed]
      },
      ], var.direct_delivery_dlq_arn == "" ? [] : [
      # Direct delivery: Lambda sends an event that failed every try to the events
      # dead-letter queue with the function's role.
      {
        Sid      = "DirectDeliveryFailures"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [var.direct_delivery_dlq_arn]
      },
    ])
    replicate = concat([
      # The trigger's needs, and the code's: extend a long job's lease and continue
      # a paused multipart copy in a new job.
      {
        Sid      = "ConsumeTriggerExtendLeaseContinueCopies"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility", "sqs:SendMessage"]
        Resource = [local.q.work]
      },
      {
        Sid      = "ForwardFailures"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.q.retry]
      },
      # GetQueueAttributes: a parked job's log line says how deep the queue is.
      {
        Sid      = "ParkFailures"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
        Resource = [local.q.failed]
      },
      # A backfill's list tasks record each page, and finished jobs their outcome.
      {
        Sid      = "RecordBackfills"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = [var.backfill_records_arn]
      },
      {
        Sid    = "ReadSources"
        Effect = "Allow"
        Action = [
          "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging",
          "s3:GetObjectVersionTagging", "s3:GetObjectAcl", "s3:GetObjectVersionAcl",
        ]
        Resource = local.source_objects
      },
      {
        Sid      = "SourceOwnershipAndListing"
        Effect   = "Allow"
        Action   = ["s3:GetBucketOwnershipControls", "s3:ListBucket"]
        Resource = local.source_buckets
      },
      # Reads: a replica's provenance (HEAD) and tags (two-way tag sync compares).
      {
        Sid    = "WriteReplicas"
        Effect = "Allow"
        Action = [
          "s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectAcl",
          "s3:PutObjectTagging", "s3:DeleteObject", "s3:DeleteObjectTagging",
          # Multipart copies: resume after a crash, abort what cannot finish.
          "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload",
        ]
        Resource  = local.destination_objects
        Condition = local.destination_accounts
      },
      # ListBucketMultipartUploads: find the uploads of a key that a completed copy supersedes (a crashed or duplicate attempt's).
      {
        Sid       = "DestinationOwnershipAndListing"
        Effect    = "Allow"
        Action    = ["s3:GetBucketOwnershipControls", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
        Resource  = local.destination_buckets
        Condition = local.destination_accounts
      },
      ],
      length(var.kms_key_arns) == 0 ? [] : [{
        Sid      = "EncryptedObjects"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = var.kms_key_arns
        # Only through S3, in any region: never a direct use of the keys.
        Condition = { StringLike = { "kms:ViaService" = "s3.*.amazonaws.com" } }
      }],
      length(var.destination_secret_arns) == 0 ? [] : [{
        Sid      = "DestinationCredentials"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = var.destination_secret_arns
      }],
    )
    retry = [
      {
        Sid      = "ConsumeTrigger"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = [local.q.retry]
      },
      {
        Sid      = "Requeue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.q.work]
      },
      # GetQueueAttributes: a parked job's log line says how deep the queue is.
      {
        Sid      = "Park"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
        Resource = [local.q.failed]
      },
      # The hourly sweep: a job parked failed_archive_after_days ago is written to the
      # archive, then deleted from the failed queue; the rest is released.
      {
        Sid      = "SweepParkedJobs"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"]
        Resource = [local.q.failed]
      },
      {
        Sid      = "WriteArchive"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = [var.archive_objects_arn]
      },
      # A backfill job it parks is recorded as failed in the backfill's record.
      {
        Sid      = "RecordBackfills"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = [var.backfill_records_arn]
      },
    ]
  }
}

output "documents" {
  description = "Each function's policy document (JSON), by function."
  value = {
    for f, statements in local.statements : f => jsonencode({
      Version   = "2012-10-17"
      Statement = concat(local.common[f], statements)
    })
  }
}
