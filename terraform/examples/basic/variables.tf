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

variable "network" {
  description = "Network of the VMs; with a subnetwork, that subnetwork's network (Shared VPC: a network of the host project)."
  type        = string
  default     = "default"
}

variable "subnetwork" {
  description = "Subnetwork of the VMs, by name (then set region) or self link; null uses the default network. For Shared VPC: the host project's subnetwork, shared with project_id."
  type        = string
  default     = null
}

variable "subnetwork_project" {
  description = "Shared VPC host project of a subnetwork given by name; the firewall rule is created there."
  type        = string
  default     = null
}

variable "region" {
  description = "Region of a subnetwork given by name."
  type        = string
  default     = null
}
