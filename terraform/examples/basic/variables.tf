variable "project_id" {
  description = "Project to deploy into."
  type        = string
}

variable "agent_wheelhouse_url" {
  description = "gs:// URL of the release's wheelhouse (`make dist EXTRAS=gcs`, then `gcloud storage cp dist/notraining_agent-*-wheelhouse-gcs.tar gs://...`)."
  type        = string
}

variable "agent_wheelhouse_sha256" {
  description = "sha256 of that wheelhouse (its line in dist/SHA256SUMS)."
  type        = string
}

variable "results_bucket" {
  description = "Existing bucket the agent writes results to."
  type        = string
}

variable "saturno_source_ranges" {
  description = "Ranges Saturno calls the VMs from."
  type        = list(string)
}

variable "saturno_service_account" {
  description = "Service account Saturno creates the VMs with."
  type        = string
}
