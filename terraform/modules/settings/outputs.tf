output "service_account_id" {
  description = "account_id of the agent's service account."
  value       = local.service_account_id
}

output "secret_id" {
  description = "secret_id of the Secret Manager secret that holds the JWT secret or the static token."
  value       = local.secret_id
}

output "secret_ref" {
  description = "The secret version the agent reads at start (notraining-secret-ref)."
  value       = local.secret_ref
}

output "custom_role_id" {
  description = "role_id of the project custom role that lets the agent end its own VM."
  value       = local.custom_role_id
}

output "self_stop_permissions" {
  description = "Permissions of that role: what self_stop needs, nothing else; empty when the agent does not call the Compute API (poweroff, none)."
  value       = local.self_stop_permissions
}

output "instance_name_condition" {
  description = "IAM condition expression that limits the role to instances named <name_prefix>-*."
  value       = local.instance_name_condition
}

output "network_self_link" {
  description = "The VMs' network in full, in the network's project (Shared VPC: the host project); the firewall rule's network."
  value       = local.network_self_link
}

output "network_project" {
  description = "Project of the network, hence of the firewall rule: a network self link's, else subnetwork's (self link or subnetwork_project), else project_id."
  value       = local.network_project
}

output "subnetwork_self_link" {
  description = "The VMs' subnetwork in full (project and region spelt out), or null to use the network's subnetwork in the VM's region."
  value       = local.subnetwork_self_link
}

output "wheel_bucket" {
  description = "Bucket of a gs:// agent_wheel_url, else null."
  value       = local.wheel_bucket
}

output "output_bucket" {
  description = "Bucket of a gs:// output_uri, else null."
  value       = local.output_bucket
}

output "agent_metadata" {
  description = "The notraining-* metadata attributes: the agent's configuration, without secrets."
  value       = local.agent_metadata
}

output "user_data" {
  description = "The rendered #cloud-config (cloud-init/user-data.yaml.tftpl)."
  value       = local.user_data
}

output "metadata" {
  description = "Every instance metadata entry of the template."
  value       = local.metadata
}

output "deadman_seconds" {
  description = "Seconds after boot at which the systemd dead-man's switch powers the VM off: job_timeout + idle_timeout + deadman_margin."
  value       = local.deadman_seconds

  precondition {
    condition     = local.seconds.deadman_margin >= local.min_deadman_margin
    error_message = "deadman_margin must be at least notify_deadline + shutdown_grace + 5m (boot and install), or the dead-man's switch may cut off the end report or Saturno's stop."
  }
}

output "max_run_duration_seconds" {
  description = "GCE max_run_duration in seconds (null when disabled): the last guard, after the dead-man's switch."
  value       = local.max_run_duration_seconds

  precondition {
    condition     = local.max_run_duration_seconds == null || try(local.max_run_duration_seconds > local.deadman_seconds, false)
    error_message = "max_run_duration must be longer than job_timeout + idle_timeout + deadman_margin, so GCE's guard fires only after the dead-man's switch."
  }
}
