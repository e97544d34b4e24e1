# An example use of the module: replicate "photos" to "photos-replica" in the same
# account, with the configuration document kept in S3. Build the functions first
# (make build), then: terraform init && terraform plan (make tf-plan). See doc/DEPLOY.md.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Bounded: a new major version is tried before the bound moves.
      version = ">= 5.40, < 7.0"
    }
  }
}

# The source buckets' region: notifications reach only queues and functions there.
provider "aws" {
  region = "eu-west-1"
}

module "replicator" {
  source = "../modules/s3-replicator"

  # Two deployments in one account need two prefixes.
  name_prefix = "s3-replicator"

  # The module uploads the document to config_bucket and pins the functions to the
  # version it made: an edit to replication.json rolls them at the next apply.
  config_bucket = "photos-ops"
  config_file   = "${path.module}/replication.json"

  source_bucket_names      = ["photos"]
  destination_bucket_names = ["photos-replica"]
  artifacts_dir            = "${path.module}/../../../target/lambda"
}

output "events_queue_arn" {
  value = module.replicator.events_queue_arn
}

output "failed_queue_url" {
  value = module.replicator.failed_queue_url
}
