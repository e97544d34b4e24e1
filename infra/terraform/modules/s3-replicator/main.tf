# The same stack as infra/sam/template.yaml: events, work, retry and failed queues;
# ingest, replicate and retry functions behind SQS triggers; alarms.

locals {
  # The queues' visibility timeout is six times this, as Lambda's SQS trigger asks.
  function_timeout   = 120
  visibility_timeout = 6 * local.function_timeout
  retention_seconds  = 1209600
  source_buckets     = [for b in var.source_bucket_names : "arn:aws:s3:::${b}"]
  region             = data.aws_region.current.name
  account_id         = data.aws_caller_identity.current.account_id

  # The configuration document: an S3 object (uploaded here from config_file, or one
  # that exists), or inline, minified (Lambda's environment holds 4 KB in all).
  config_in_s3      = var.config_bucket != ""
  config_key        = var.config_key != "" ? var.config_key : "${var.name_prefix}/replication.json"
  config_version_id = try(coalesce(one(aws_s3_object.config[*].version_id), one(data.aws_s3_object.config[*].version_id)), "")
  config_etag       = try(trim(coalesce(one(aws_s3_object.config[*].etag), one(data.aws_s3_object.config[*].etag)), "\""), "")
  # The functions read exactly this version: its VersionId, or in an unversioned bucket
  # its ETag with its double quotes. A new one changes the functions' configuration,
  # so Lambda starts new instances that read it.
  config_version = !local.config_in_s3 ? "" : (
    contains(["", "null"], local.config_version_id) ? "\"${local.config_etag}\"" : local.config_version_id
  )

  environment = {
    REPLICATOR_CONFIG         = local.config_in_s3 ? "s3://${var.config_bucket}/${local.config_key}" : try(jsonencode(jsondecode(var.replicator_config)), var.replicator_config)
    REPLICATOR_CONFIG_VERSION = local.config_version
    WORK_QUEUE_URL            = aws_sqs_queue.work.url
    RETRY_QUEUE_URL           = aws_sqs_queue.retry.url
    FAILED_QUEUE_URL          = aws_sqs_queue.failed.url
    # The role replicate writes replicas as: a delete an event says it made is the
    # replicator's own, and never travels back across a two-way pair.
    REPLICATOR_PRINCIPALS = aws_iam_role.function["replicate"].unique_id
  }
  alarm_actions = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]

  archive_bucket = var.failed_archive_bucket_name == "" ? aws_s3_bucket.failed_archive[0].bucket : var.failed_archive_bucket_name
  archive_url    = "s3://${local.archive_bucket}/${var.failed_archive_prefix}"
  backfill_url   = "s3://${local.archive_bucket}/${var.backfill_report_prefix}"

  notification_target = var.notification_delivery == "direct" ? "--function-arn ${aws_lambda_function.function["ingest"].arn}" : "--queue-arn ${aws_sqs_queue.events.arn}"
}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

# ---------------------------------------------------------------- configuration

resource "aws_s3_object" "config" {
  count        = local.config_in_s3 && var.config_file != "" ? 1 : 0
  bucket       = var.config_bucket
  key          = local.config_key
  content      = file(var.config_file)
  content_type = "application/json"
}

# An object uploaded by other means: its current version, read at each plan.
data "aws_s3_object" "config" {
  count  = local.config_in_s3 && var.config_file == "" ? 1 : 0
  bucket = var.config_bucket
  key    = local.config_key
}

# ---------------------------------------------------------------- queues

resource "aws_sqs_queue" "events" {
  #checkov:skip=CKV_AWS_27:Encrypted with SSE-SQS. S3 cannot deliver notifications to a queue under the AWS-managed SQS KMS key.
  name                       = "${var.name_prefix}-events"
  sqs_managed_sse_enabled    = true
  visibility_timeout_seconds = local.visibility_timeout
  message_retention_seconds  = local.retention_seconds
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue" "events_dlq" {
  #checkov:skip=CKV_AWS_27:Encrypted with SSE-SQS (sqs_managed_sse_enabled); a customer KMS key is optional.
  name                      = "${var.name_prefix}-events-dlq"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = local.retention_seconds
}

resource "aws_sqs_queue" "work" {
  #checkov:skip=CKV_AWS_27:Encrypted with SSE-SQS (sqs_managed_sse_enabled); a customer KMS key is optional.
  name                       = "${var.name_prefix}-work"
  sqs_managed_sse_enabled    = true
  visibility_timeout_seconds = local.visibility_timeout
  message_retention_seconds  = local.retention_seconds
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.retry.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue" "retry" {
  #checkov:skip=CKV_AWS_27:Encrypted with SSE-SQS (sqs_managed_sse_enabled); a customer KMS key is optional.
  name                       = "${var.name_prefix}-retry"
  sqs_managed_sse_enabled    = true
  visibility_timeout_seconds = local.visibility_timeout
  message_retention_seconds  = local.retention_seconds
  # retry's own crashes: after many receives, park in the failed queue.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.failed.arn
    maxReceiveCount     = 10
  })
}

resource "aws_sqs_queue" "failed" {
  #checkov:skip=CKV_AWS_27:Encrypted with SSE-SQS (sqs_managed_sse_enabled); a customer KMS key is optional.
  name                      = "${var.name_prefix}-failed"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = local.retention_seconds
}

# S3's notifications; with SNS or EventBridge routing, the topic's or the rule's too
# (module.policies.events_queue_document, each scoped by aws:SourceArn).
data "aws_iam_policy_document" "events_queue" {
  source_policy_documents = compact([data.aws_iam_policy_document.tls_only["events"].json, module.policies.events_queue_document])
  statement {
    sid       = "S3Notifications"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = local.source_buckets
    }
  }
}

# Every queue refuses requests that do not use TLS.
data "aws_iam_policy_document" "tls_only" {
  for_each = {
    events     = aws_sqs_queue.events.arn
    events_dlq = aws_sqs_queue.events_dlq.arn
    work       = aws_sqs_queue.work.arn
    retry      = aws_sqs_queue.retry.arn
    failed     = aws_sqs_queue.failed.arn
  }
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# The events queue's policy (below) includes its own.
resource "aws_sqs_queue_policy" "tls_only" {
  for_each  = { for q, doc in data.aws_iam_policy_document.tls_only : q => doc if q != "events" }
  queue_url = { events_dlq = aws_sqs_queue.events_dlq.id, work = aws_sqs_queue.work.id, retry = aws_sqs_queue.retry.id, failed = aws_sqs_queue.failed.id }[each.key]
  policy    = each.value.json
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.events_queue.json
}

# ---------------------------------------------------------------- functions

locals {
  functions = {
    ingest = {
      description     = "S3 notifications in, one job per destination out"
      queue           = aws_sqs_queue.events
      max_concurrency = var.ingest_maximum_concurrency
      reserved        = var.ingest_reserved_concurrency
      window          = 1
      extra_env       = {}
    }
    replicate = {
      description     = "Copies one object to one destination per job"
      queue           = aws_sqs_queue.work
      max_concurrency = var.replicate_maximum_concurrency
      reserved        = var.replicate_reserved_concurrency
      window          = 1
      extra_env       = {}
    }
    retry = {
      description     = "Requeues failed jobs with backoff, parks what cannot succeed"
      queue           = aws_sqs_queue.retry
      max_concurrency = var.retry_maximum_concurrency
      reserved        = var.retry_reserved_concurrency
      window          = 5
      extra_env = {
        RETRY_MAX_ATTEMPTS       = tostring(var.retry_max_attempts)
        RETRY_BASE_DELAY_SECONDS = "2"
        FAILED_ARCHIVE_URL       = local.archive_url
        FAILED_ARCHIVE_AFTER     = "${var.failed_archive_after_days}d"
      }
    }
  }
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# IAM names are global: the region keeps two regions' deployments apart.
resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name_prefix}-${each.key}-${local.region}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:Logs hold object keys and outcomes, no secrets; the AWS-managed encryption of CloudWatch Logs applies.
  for_each          = local.functions
  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_116:Invoked by SQS triggers, whose failures flow through the queues' redrive policies and the failed queue (an async-invocation DLQ would bypass them), and by an hourly schedule that simply runs again.
  #checkov:skip=CKV_AWS_117:Talks only to S3 and SQS endpoints; deploy into a VPC with endpoints if your policy requires it.
  #checkov:skip=CKV_AWS_173:The environment holds queue URLs and replication rules, no secrets (config check rejects keys); AWS-managed encryption applies.
  #checkov:skip=CKV_AWS_50:X-Ray tracing is optional; every job outcome is one structured log line.
  #checkov:skip=CKV_AWS_272:Code signing is the deployer's choice; artifacts are built from this repository by make build.
  for_each                       = local.functions
  function_name                  = "${var.name_prefix}-${each.key}"
  description                    = each.value.description
  role                           = aws_iam_role.function[each.key].arn
  filename                       = "${var.artifacts_dir}/${each.key}/bootstrap.zip"
  source_code_hash               = filebase64sha256("${var.artifacts_dir}/${each.key}/bootstrap.zip")
  handler                        = "bootstrap"
  runtime                        = "provided.al2023"
  architectures                  = ["arm64"]
  memory_size                    = 512
  timeout                        = local.function_timeout
  reserved_concurrent_executions = each.value.reserved == null ? -1 : each.value.reserved

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  environment {
    variables = merge(local.environment, each.value.extra_env)
  }

  lifecycle {
    precondition {
      condition     = (var.config_bucket != "") != (var.replicator_config != "")
      error_message = "Give the configuration one way: config_bucket (with config_file to upload it, or naming an existing object), or replicator_config (inline), not both."
    }
    precondition {
      condition     = var.config_file == "" || var.config_bucket != ""
      error_message = "config_file needs config_bucket, the bucket to upload it to."
    }
    precondition {
      condition     = each.value.reserved == null || try(each.value.reserved >= each.value.max_concurrency, false)
      error_message = "${each.key}'s reserved concurrency is below its maximum concurrency: the trigger would be throttled."
    }
  }
}

resource "aws_lambda_event_source_mapping" "function" {
  for_each                           = local.functions
  event_source_arn                   = each.value.queue.arn
  function_name                      = aws_lambda_function.function[each.key].arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = each.value.window
  function_response_types            = ["ReportBatchItemFailures"]

  # The throttle for an SQS trigger: its poller invokes no more instances than this.
  scaling_config {
    maximum_concurrency = each.value.max_concurrency
  }

  # Lambda checks the role can read the queue when the trigger is created.
  depends_on = [aws_iam_role_policy.function, aws_iam_role_policy_attachment.function]
}

# ---------------------------------------------------------------- direct delivery

# S3 invokes ingest asynchronously. Lambda tries an event three times, then records it
# in the events dead-letter queue, whose redrive to the events queue ingest reads like
# any notification. source_account: S3 has no list form of source_arn; ingest skips
# buckets the configuration does not name.
resource "aws_lambda_permission" "ingest_from_s3" {
  count          = var.notification_delivery == "direct" ? 1 : 0
  statement_id   = "S3Notifications"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function["ingest"].function_name
  principal      = "s3.amazonaws.com"
  source_account = local.account_id
}

resource "aws_lambda_function_event_invoke_config" "ingest" {
  count                        = var.notification_delivery == "direct" ? 1 : 0
  function_name                = aws_lambda_function.function["ingest"].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600
  destination_config {
    on_failure {
      destination = aws_sqs_queue.events_dlq.arn
    }
  }
}

# ---------------------------------------------------------------- failed-job archive

# Parked jobs that outlive the failed queue's retention: the retry function moves
# those parked failed_archive_after_days ago here, hourly.
resource "aws_s3_bucket" "failed_archive" {
  #checkov:skip=CKV_AWS_18:Written only by the retry function's sweep and read by operators; CloudTrail data events cover access if required.
  #checkov:skip=CKV_AWS_144:Holds failure records, not data; a copy in another region is the operator's choice.
  #checkov:skip=CKV_AWS_145:Encrypted with SSE-S3; the records hold keys and reasons, not object data.
  #checkov:skip=CKV2_AWS_62:Nothing consumes the archive's events; operators read it with s3-replicator dlq.
  count  = var.failed_archive_bucket_name == "" ? 1 : 0
  bucket = "${var.name_prefix}-failed-jobs-${local.account_id}-${local.region}"
}

resource "aws_s3_bucket_public_access_block" "failed_archive" {
  count                   = length(aws_s3_bucket.failed_archive)
  bucket                  = aws_s3_bucket.failed_archive[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "failed_archive" {
  count  = length(aws_s3_bucket.failed_archive)
  bucket = aws_s3_bucket.failed_archive[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_ownership_controls" "failed_archive" {
  count  = length(aws_s3_bucket.failed_archive)
  bucket = aws_s3_bucket.failed_archive[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Versioned, so a mistaken purge can be undone for a month.
resource "aws_s3_bucket_versioning" "failed_archive" {
  count  = length(aws_s3_bucket.failed_archive)
  bucket = aws_s3_bucket.failed_archive[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "failed_archive" {
  count  = length(aws_s3_bucket.failed_archive)
  bucket = aws_s3_bucket.failed_archive[0].id
  rule {
    id     = "forget-redriven-and-purged"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  depends_on = [aws_s3_bucket_versioning.failed_archive]
}

# A sweep that fails, or stops at its deadline, runs again the next hour.
resource "aws_cloudwatch_event_rule" "archive_sweep" {
  name                = "${var.name_prefix}-archive-sweep"
  description         = "Moves parked jobs that have waited long to the failed-job archive"
  schedule_expression = "rate(1 hour)"
}

resource "aws_cloudwatch_event_target" "archive_sweep" {
  rule = aws_cloudwatch_event_rule.archive_sweep.name
  arn  = aws_lambda_function.function["retry"].arn
}

resource "aws_lambda_permission" "archive_sweep" {
  statement_id  = "ArchiveSweep"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["retry"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.archive_sweep.arn
}

# ---------------------------------------------------------------- permissions

module "policies" {
  source                   = "./policies"
  source_bucket_names      = var.source_bucket_names
  destination_bucket_names = var.destination_bucket_names
  destination_account_ids  = length(var.destination_account_ids) > 0 ? var.destination_account_ids : [local.account_id]
  kms_key_arns             = var.kms_key_arns
  destination_secret_arns  = var.destination_secret_arns
  destination_secret_names = var.destination_secret_names
  secret_kms_key_arns      = var.secret_kms_key_arns
  region                   = local.region
  account_id               = local.account_id
  config_object_arn        = local.config_in_s3 ? "arn:aws:s3:::${var.config_bucket}/${local.config_key}" : ""
  archive_objects_arn      = "arn:aws:s3:::${local.archive_bucket}/${var.failed_archive_prefix}*"
  backfill_records_arn     = "arn:aws:s3:::${local.archive_bucket}/${var.backfill_report_prefix}*"
  direct_delivery_dlq_arn  = var.notification_delivery == "direct" ? aws_sqs_queue.events_dlq.arn : ""
  notification_topic_arn   = var.notification_delivery == "queue" ? var.notification_topic_arn : ""
  eventbridge_rule_arn     = var.notification_delivery == "queue" && var.eventbridge_notifications ? aws_cloudwatch_event_rule.object_events[0].arn : ""
  queue_arns = {
    events = aws_sqs_queue.events.arn
    work   = aws_sqs_queue.work.arn
    retry  = aws_sqs_queue.retry.arn
    failed = aws_sqs_queue.failed.arn
  }
  log_group_arns = { for f, g in aws_cloudwatch_log_group.function : f => g.arn }
}

# What the SQS triggers need stays inline; statements that grow with the bucket lists
# are managed policies of their own (6,144 characters each, up to ten per role; a
# role's inline policies share 10,240).
resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${var.name_prefix}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy   = module.policies.inline_documents[each.key]
}

resource "aws_iam_policy" "function" {
  for_each    = module.policies.managed_documents
  name        = "${var.name_prefix}-${each.key}-${local.region}"
  description = "s3-replicator ${each.value.function}, ${each.value.part}"
  policy      = each.value.document
}

resource "aws_iam_role_policy_attachment" "function" {
  for_each   = module.policies.managed_documents
  role       = aws_iam_role.function[each.value.function].name
  policy_arn = aws_iam_policy.function[each.key].arn
}

# ---------------------------------------------------------------- SNS and EventBridge

# Routing through SNS: the topic another consumer already receives the buckets'
# notifications on also delivers them to the events queue (or to ingest).
resource "aws_sns_topic_subscription" "notifications" {
  count      = var.notification_topic_arn == "" ? 0 : 1
  topic_arn  = var.notification_topic_arn
  protocol   = var.notification_delivery == "direct" ? "lambda" : "sqs"
  endpoint   = var.notification_delivery == "direct" ? aws_lambda_function.function["ingest"].arn : aws_sqs_queue.events.arn
  depends_on = [aws_sqs_queue_policy.events, aws_lambda_permission.ingest_from_sns]
}

resource "aws_lambda_permission" "ingest_from_sns" {
  count         = var.notification_topic_arn != "" && var.notification_delivery == "direct" ? 1 : 0
  statement_id  = "SnsNotifications"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["ingest"].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = var.notification_topic_arn
}

# Routing through EventBridge: the source buckets' object events (each bucket sends
# them once EventBridge is turned on in its notification configuration).
resource "aws_cloudwatch_event_rule" "object_events" {
  count       = var.eventbridge_notifications ? 1 : 0
  name        = "${var.name_prefix}-object-events"
  description = "The source buckets' object events, for s3-replicator's ingest"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created", "Object Deleted", "Object Tags Added", "Object Tags Deleted", "Object ACL Updated"]
    detail        = { bucket = { name = var.source_bucket_names } }
  })
}

resource "aws_cloudwatch_event_target" "object_events" {
  count = var.eventbridge_notifications ? 1 : 0
  rule  = aws_cloudwatch_event_rule.object_events[0].name
  arn   = var.notification_delivery == "direct" ? aws_lambda_function.function["ingest"].arn : aws_sqs_queue.events.arn
}

resource "aws_lambda_permission" "ingest_from_eventbridge" {
  count         = var.eventbridge_notifications && var.notification_delivery == "direct" ? 1 : 0
  statement_id  = "EventBridgeNotifications"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["ingest"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.object_events[0].arn
}

# ---------------------------------------------------------------- alarms

resource "aws_cloudwatch_metric_alarm" "failed_jobs" {
  alarm_name          = "${var.name_prefix}-failed-jobs"
  alarm_description   = "Jobs are waiting in the failed queue; inspect them with `s3-replicator dlq list`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.failed.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "unread_notifications" {
  alarm_name          = "${var.name_prefix}-unread-notifications"
  alarm_description   = "Notifications ingest could not process reached the events dead-letter queue."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.events_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

# The backlog's age across the events, work and retry queues, and the age of what the
# retry function requeues: a requeued job resets the work queue's own age.
resource "aws_cloudwatch_metric_alarm" "replication_time" {
  alarm_name          = "${var.name_prefix}-replication-time"
  alarm_description   = "A notification or job has waited longer than the replication-time objective (events, work or retry queue, or a requeued job's age since it first failed); see `s3-replicator status`."
  evaluation_periods  = 3
  threshold           = var.replication_time_objective_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions

  metric_query {
    id          = "oldest"
    expression  = "MAX([events, work, retry, requeued])"
    label       = "Oldest waiting (s)"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = {
      events = aws_sqs_queue.events.name
      work   = aws_sqs_queue.work.name
      retry  = aws_sqs_queue.retry.name
    }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/SQS"
        metric_name = "ApproximateAgeOfOldestMessage"
        dimensions  = { QueueName = metric_query.value }
        period      = 60
        stat        = "Maximum"
      }
    }
  }
  metric_query {
    id = "requeued"
    metric {
      namespace   = "S3Replicator"
      metric_name = "RequeuedJobAge"
      period      = 60
      stat        = "Maximum"
    }
  }
}

# ReplicationLatency (ms, from the event's time to the replica written), p99.
resource "aws_cloudwatch_metric_alarm" "replication_latency" {
  alarm_name          = "${var.name_prefix}-replication-latency"
  alarm_description   = "The 99th percentile of replication latency is above the replication-time objective."
  evaluation_periods  = 1
  threshold           = var.replication_time_objective_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions

  metric_query {
    id          = "seconds"
    expression  = "p99 / 1000"
    label       = "ReplicationLatency p99 (s)"
    return_data = true
  }
  metric_query {
    id = "p99"
    metric {
      namespace   = "S3Replicator"
      metric_name = "ReplicationLatency"
      period      = 300
      stat        = "p99"
    }
  }
}

resource "aws_cloudwatch_dashboard" "replication" {
  dashboard_name = "${var.name_prefix}-replication"
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "Backlog (visible messages)", region = local.region, stat = "Maximum", period = 60
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.events.name, { label = "events" }],
            ["...", aws_sqs_queue.work.name, { label = "work" }],
            ["...", aws_sqs_queue.retry.name, { label = "retry" }],
            ["...", aws_sqs_queue.failed.name, { label = "failed" }],
            ["...", aws_sqs_queue.events_dlq.name, { label = "events DLQ" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Oldest waiting (s)", region = local.region, stat = "Maximum", period = 60
          metrics = [
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.events.name, { label = "events" }],
            ["...", aws_sqs_queue.work.name, { label = "work" }],
            ["...", aws_sqs_queue.retry.name, { label = "retry" }],
            ["...", aws_sqs_queue.failed.name, { label = "failed" }],
            ["...", aws_sqs_queue.events_dlq.name, { label = "events DLQ" }],
            ["S3Replicator", "RequeuedJobAge", { label = "requeued job, since it first failed" }],
          ]
          annotations = { horizontal = [{ label = "objective", value = var.replication_time_objective_seconds }] }
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Replication latency (ms)", region = local.region, period = 300
          metrics = [
            ["S3Replicator", "ReplicationLatency", { stat = "p50", label = "p50" }],
            ["...", { stat = "p90", label = "p90" }],
            ["...", { stat = "p99", label = "p99" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Throughput", region = local.region, stat = "Sum", period = 300
          metrics = [
            ["S3Replicator", "OperationsReplicated", { label = "operations replicated" }],
            ["S3Replicator", "BytesReplicated", { label = "bytes replicated", yAxis = "right" }],
            ["S3Replicator", "Retries", { label = "retries" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 24, height = 6
        properties = {
          title = "Failures and skips by reason", region = local.region, stat = "Sum", period = 300
          metrics = [
            [{ expression = "SEARCH('{S3Replicator,Reason} MetricName=\"OperationsFailedReplication\"', 'Sum', 300)", id = "failed", label = "failed" }],
            [{ expression = "SEARCH('{S3Replicator,Reason} MetricName=\"FailedAttempts\"', 'Sum', 300)", id = "attempts", label = "failed attempt" }],
            [{ expression = "SEARCH('{S3Replicator,Reason} MetricName=\"OperationsSkipped\"', 'Sum', 300)", id = "skipped", label = "skipped" }],
          ]
        }
      },
    ]
  })
}

# ---------------------------------------------------------------- notifications

# Merges, never replaces: the CLI keeps every topic, queue, Lambda and EventBridge
# setting already on the bucket. Runs again when the events queue changes.
resource "terraform_data" "notifications" {
  for_each         = var.setup_notifications_with == "" ? toset([]) : toset(var.source_bucket_names)
  triggers_replace = [local.notification_target]

  provisioner "local-exec" {
    command = "${var.setup_notifications_with} setup notifications --bucket ${each.value} ${local.notification_target}"
  }

  depends_on = [aws_sqs_queue_policy.events, aws_lambda_permission.ingest_from_s3]
}
