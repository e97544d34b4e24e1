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
