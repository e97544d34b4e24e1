# The IAM policy of each function, as plain JSON built from its inputs: no provider,
# no resources. The module above gives each role its inline document and attaches its
# managed ones; the tests render this same module with `terraform apply` (nothing to
# download) and run each function binary under the union (`documents`), with IAM
# enforced. Also the events queue's statements for SNS and EventBridge routing.

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

variable "destination_secret_names" {
  description = "Secrets by name, in account_id and region: granted as ...:secret:NAME-??????."
  type        = list(string)
  default     = []
}

variable "secret_kms_key_arns" {
  description = "Customer keys the destination secrets and the signing key's secret are encrypted under (kms:Decrypt through Secrets Manager in region)."
  type        = list(string)
  default     = []
}

variable "region" {
  description = "The deployment's region (secret names, Secrets Manager's kms:ViaService)."
  type        = string
  default     = ""
}

variable "account_id" {
  description = "The deployment's account: it owns the sources, the configuration object, the archive and the inventories (every S3 grant on them holds only in it: s3:ResourceAccount); secret names."
  type        = string
  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id is the deployment's 12-digit account."
  }
}

variable "signing_key_secret_arn" {
  description = "The secret holding the key that signs replicas' provenance and jobs: ingest and replicate may read it."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.signing_key_secret_arn))
    error_message = "signing_key_secret_arn is a secret's ARN."
  }
}

variable "inventory_objects_arn" {
  description = "Where S3 Inventory delivers the sources' inventories, arn:aws:s3:::BUCKET/PREFIX*: replicate reads them for backfills from an inventory. Empty for none."
  type        = string
  default     = ""
}

variable "notification_topic_arn" {
  description = "An SNS topic allowed to send to the events queue; empty for none."
  type        = string
  default     = ""
}

variable "eventbridge_rule_arn" {
  description = "An EventBridge rule allowed to send to the events queue; empty for none."
  type        = string
  default     = ""
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
  # A secret's ARN ends in "-" and six characters Secrets Manager chose.
  named_secrets = [for n in var.destination_secret_names : "arn:aws:secretsmanager:${var.region}:${var.account_id}:secret:${n}-??????"]
  q             = var.queue_arns

  # Every S3 grant holds only in the bucket's owner's account: a bucket name deleted
  # and re-registered by someone else is neither read nor written. The destinations'
  # owners are theirs; everything else (sources, the configuration object, the archive,
  # the inventories) is this account's.
  destination_accounts = { StringEquals = { "s3:ResourceAccount" = var.destination_account_ids } }
  this_account         = { StringEquals = { "s3:ResourceAccount" = [var.account_id] } }

  # The key that signs jobs and replicas' provenance (ingest and replicate; retry never
  # reads it).
  read_signing_key = {
    Sid      = "ReadSigningKey"
    Effect   = "Allow"
    Action   = ["secretsmanager:GetSecretValue"]
    Resource = [var.signing_key_secret_arn]
  }
  # Secrets under a customer key: read at start, through Secrets Manager in this
  # region only.
  secret_keys = length(var.secret_kms_key_arns) == 0 ? [] : [{
    Sid       = "SecretKeys"
    Effect    = "Allow"
    Action    = ["kms:Decrypt"]
    Resource  = var.secret_kms_key_arns
    Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${var.region}.amazonaws.com" } }
  }]

  # The document, at the version the deployment names (GetObjectVersion), or at its
  # ETag in an unversioned bucket (GetObject).
  read_configuration = var.config_object_arn == "" ? [] : [{
    Sid       = "ReadConfiguration"
    Effect    = "Allow"
    Action    = ["s3:GetObject", "s3:GetObjectVersion"]
    Resource  = [var.config_object_arn]
    Condition = local.this_account
  }]

  logs = {
    for f in ["ingest", "replicate", "retry"] : f => {
      Sid      = "Logs"
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = ["${var.log_group_arns[f]}:*"]
    }
  }

  # Each function's statements by part. "inline" stays on the role (what the SQS
  # trigger needs is there when it is created); the others grow with the bucket lists
  # and become managed policies of their own.
  parts = {
    ingest = {
      inline = concat([
        local.logs.ingest,
        # What Lambda's SQS trigger needs, on this function's queue only.
        {
          Sid      = "ConsumeTrigger"
          Effect   = "Allow"
          Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
          Resource = [local.q.events]
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
      ], local.read_configuration, [local.read_signing_key], local.secret_keys)
      sources = [
        # Tags for tag filters; HEAD (s3:GetObject) for a replica's provenance in
        # two-way replication.
        {
          Sid       = "ReadTagsAndProvenance"
          Effect    = "Allow"
          Action    = ["s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersionTagging"]
          Resource  = local.source_objects
          Condition = local.this_account
        },
        # Without ListBucket, S3 answers a HEAD of a missing key with 403, not 404.
        {
          Sid       = "MissingKeysAre404"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = local.source_buckets
          Condition = local.this_account
        },
      ]
    }
    replicate = {
      inline = concat([
        local.logs.replicate,
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
          Sid       = "RecordBackfills"
          Effect    = "Allow"
          Action    = ["s3:PutObject"]
          Resource  = [var.backfill_records_arn]
          Condition = local.this_account
        },
        ],
        # A backfill from an S3 Inventory: its list tasks read the inventory's files.
        var.inventory_objects_arn == "" ? [] : [{
          Sid       = "ReadInventory"
          Effect    = "Allow"
          Action    = ["s3:GetObject"]
          Resource  = [var.inventory_objects_arn]
          Condition = local.this_account
        }],
        [local.read_signing_key],
        # Sources' SSE-KMS keys, replica keys, destinations' default keys.
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
        length(local.named_secrets) == 0 ? [] : [{
          Sid      = "DestinationCredentialsByName"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetSecretValue"]
          Resource = local.named_secrets
        }],
        local.secret_keys,
        local.read_configuration,
      )
      sources = [
        {
          Sid    = "ReadSources"
          Effect = "Allow"
          Action = [
            "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging",
            "s3:GetObjectVersionTagging", "s3:GetObjectAcl", "s3:GetObjectVersionAcl",
            # S3 shows a version's Object Lock in a HEAD only to a caller granted these.
            "s3:GetObjectRetention", "s3:GetObjectLegalHold",
          ]
          Resource  = local.source_objects
          Condition = local.this_account
        },
        {
          Sid       = "SourceOwnershipAndListing"
          Effect    = "Allow"
          Action    = ["s3:GetBucketOwnershipControls", "s3:ListBucket"]
          Resource  = local.source_buckets
          Condition = local.this_account
        },
      ]
      destinations = [
        # Reads: a replica's provenance (HEAD) and tags (two-way tag sync compares).
        {
          Sid    = "WriteReplicas"
          Effect = "Allow"
          Action = [
            "s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectAcl",
            "s3:PutObjectTagging", "s3:DeleteObject", "s3:DeleteObjectTagging",
            # Object Lock: written with a replica (or alone where a server refused it
            # with the write), and read (HEAD) to compare with the source's.
            "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:GetObjectRetention",
            "s3:GetObjectLegalHold",
            # Multipart copies: resume after a crash, abort what cannot finish.
            "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload",
          ]
          Resource  = local.destination_objects
          Condition = local.destination_accounts
        },
        # ListBucketMultipartUploads: find the uploads of a key that a completed copy
        # supersedes (a crashed or duplicate attempt's). GetBucketObjectLockConfiguration:
        # a locked version is replicated only where Object Lock is enabled.
        {
          Sid       = "DestinationOwnershipAndListing"
          Effect    = "Allow"
          Action    = ["s3:GetBucketOwnershipControls", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketObjectLockConfiguration"]
          Resource  = local.destination_buckets
          Condition = local.destination_accounts
        },
      ]
    }
    retry = {
      inline = concat([
        local.logs.retry,
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
          Sid       = "WriteArchive"
          Effect    = "Allow"
          Action    = ["s3:PutObject"]
          Resource  = [var.archive_objects_arn]
          Condition = local.this_account
        },
        # A backfill job it parks is recorded as failed in the backfill's record.
        {
          Sid       = "RecordBackfills"
          Effect    = "Allow"
          Action    = ["s3:PutObject"]
          Resource  = [var.backfill_records_arn]
          Condition = local.this_account
        },
      ], local.read_configuration)
    }
  }

  # SNS and EventBridge routing: the topic's and the rule's deliveries to the events
  # queue, each scoped to its source. (S3's own statement is in the module above.)
  events_queue_statements = concat(
    var.notification_topic_arn == "" ? [] : [{
      Sid       = "TopicNotifications"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = local.q.events
      Condition = { ArnEquals = { "aws:SourceArn" = var.notification_topic_arn } }
    }],
    var.eventbridge_rule_arn == "" ? [] : [{
      Sid       = "EventBridgeNotifications"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = local.q.events
      Condition = { ArnEquals = { "aws:SourceArn" = var.eventbridge_rule_arn } }
    }],
  )
}

output "documents" {
  description = "Each function's statements, all of them in one policy document (JSON), by function: what its role holds in total."
  value = {
    for f, parts in local.parts : f => jsonencode({
      Version   = "2012-10-17"
      Statement = concat(parts.inline, flatten([for part, statements in parts : statements if part != "inline"]))
    })
  }
  precondition {
    condition     = length(var.destination_secret_names) + length(var.secret_kms_key_arns) == 0 || var.region != ""
    error_message = "destination_secret_names and secret_kms_key_arns need region."
  }
}

output "inline_documents" {
  description = "Each function's inline policy (JSON), by function."
  value = {
    for f, parts in local.parts : f => jsonencode({ Version = "2012-10-17", Statement = parts.inline })
  }
}

output "managed_documents" {
  description = "The managed policies, by FUNCTION-PART: {function, part, document (JSON)}."
  value = merge([
    for f, parts in local.parts : {
      for part, statements in parts : "${f}-${part}" => {
        function = f
        part     = part
        document = jsonencode({ Version = "2012-10-17", Statement = statements })
      } if part != "inline"
    }
  ]...)
}

output "events_queue_document" {
  description = "The events queue's statements for SNS and EventBridge (JSON), or \"\" when neither routes to it."
  value       = length(local.events_queue_statements) == 0 ? "" : jsonencode({ Version = "2012-10-17", Statement = local.events_queue_statements })
}
