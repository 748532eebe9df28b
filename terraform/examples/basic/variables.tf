variable "project_id" {
  description = "Project to deploy into."
  type        = string
}

variable "agent_wheel_url" {
  description = "gs:// URL of the agent's wheel (`pip wheel --no-deps -w dist .`, then `gcloud storage cp dist/*.whl gs://...`)."
  type        = string
}

variable "agent_wheel_sha256" {
  description = "sha256sum of that wheel."
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
