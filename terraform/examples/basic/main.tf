# The smallest useful deployment: VMs on internal IPs (the default network, or a Shared
# VPC subnetwork of a host project), the agent from a pinned wheel in Cloud Storage,
# results in a bucket, Saturno allowed in from its subnet. After `terraform apply`, add
# the auth secret's value once:
#   printf %s "$JWT_SECRET" | gcloud secrets versions add notraining-agent-auth --data-file=-

provider "google" {
  project = var.project_id
}

module "notraining_agent" {
  source = "../.."

  project_id   = var.project_id
  register_url = "https://saturno.example.com/api/notraining/register/"
  done_url     = "https://saturno.example.com/api/notraining/done/"

  agent_wheel_url    = var.agent_wheel_url
  agent_wheel_sha256 = var.agent_wheel_sha256
  output_uri         = "gs://${var.results_bucket}/notraining"

  # Shared VPC: a subnetwork of the host project, by name (with subnetwork_project and
  # region) or by self link; the firewall rule goes to the host project.
  network            = var.network
  subnetwork         = var.subnetwork
  subnetwork_project = var.subnetwork_project
  region             = var.region

  saturno_source_ranges   = var.saturno_source_ranges
  saturno_service_account = var.saturno_service_account

  labels = { app = "notraining-agent" }
}
