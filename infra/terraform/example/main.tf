# An example use of the module: replicate "photos" to "photos-replica" in the same
# account. Build the functions first (make build), then: terraform init && terraform plan.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

module "replicator" {
  source = "../modules/s3-replicator"

  replicator_config        = file("${path.module}/replication.json")
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
