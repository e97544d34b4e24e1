output "events_queue_arn" {
  description = "Point the source buckets' notifications here (s3-replicator setup notifications)."
  value       = aws_sqs_queue.events.arn
}

output "events_queue_url" {
  description = "Where the buckets' notifications land (EVENTS_QUEUE_URL, for s3-replicator status)."
  value       = aws_sqs_queue.events.url
}

output "config_location" {
  description = "The configuration document (REPLICATOR_CONFIG for the s3-replicator commands): s3://BUCKET/KEY, or empty for an inline document."
  value       = local.config_in_s3 ? "s3://${var.config_bucket}/${local.config_key}" : ""
}

output "work_queue_url" {
  value = aws_sqs_queue.work.url
}

output "retry_queue_url" {
  description = "Transient failures and jobs whose receives ran out (the work queue's DLQ)."
  value       = aws_sqs_queue.retry.url
}

output "failed_queue_url" {
  description = "Permanent failures, each with its reason (s3-replicator dlq list)."
  value       = aws_sqs_queue.failed.url
}

output "failed_archive_url" {
  description = "Parked jobs older than failed_archive_after_days (set FAILED_ARCHIVE_URL to this for s3-replicator dlq)."
  value       = local.archive_url
}

output "backfill_report_url" {
  description = "Where backfills keep their record and completion report (set BACKFILL_REPORT_URL to this for s3-replicator backfill; the functions write records nowhere else)."
  value       = local.backfill_url
}

output "signing_key_secret_arn" {
  description = "The secret holding the signing key (REPLICATOR_SIGNING_KEY_SECRET for the s3-replicator commands; signing_key_secret_arn of the other deployment of a two-way pair)."
  value       = local.signing_key_secret_arn
}

output "ingest_function_arn" {
  description = "With notification_delivery = \"direct\", point the source buckets' notifications here (s3-replicator setup notifications --function-arn)."
  value       = aws_lambda_function.function["ingest"].arn
}

output "dashboard_name" {
  description = "The CloudWatch dashboard of backlogs, latency, throughput and failures."
  value       = aws_cloudwatch_dashboard.replication.dashboard_name
}

output "config_version" {
  description = "The configuration document's version the functions read (REPLICATOR_CONFIG_VERSION): its VersionId, or its ETag in double quotes; empty for an inline document."
  value       = local.config_version
}
