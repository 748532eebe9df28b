output "instance_template_self_link" {
  description = "Self link of the instance template; Saturno passes it as sourceInstanceTemplate to instances.insert."
  value       = google_compute_instance_template.agent.self_link
}

output "instance_template_self_link_unique" {
  description = "Self link with the template's unique ID: pins exactly this version of the template."
  value       = google_compute_instance_template.agent.self_link_unique
}

output "instance_name_prefix" {
  description = "Saturno must name every VM `<this>-...`: self-stop is granted only on such instances."
  value       = "${var.name_prefix}-"
}

output "service_account_email" {
  description = "The VMs' service account."
  value       = google_service_account.agent.email
}

output "secret_id" {
  description = "Full ID of the auth secret; add its value with `gcloud secrets versions add`."
  value       = google_secret_manager_secret.auth.id
}

output "agent_metadata" {
  description = "The notraining-* metadata attributes every VM gets: the agent's configuration (secrets excluded; the agent reads them through notraining-secret-ref)."
  value       = module.settings.agent_metadata
}

output "metadata_keys" {
  description = "Every metadata key of the template (user-data, OS Login and guest-attribute switches, notraining-*)."
  value       = sort(keys(module.settings.metadata))
}

output "deadman_seconds" {
  description = "Seconds after boot at which systemd powers a VM off whatever the agent does."
  value       = module.settings.deadman_seconds
}

output "max_run_duration_seconds" {
  description = "GCE's own limit on a VM's run time (null when disabled)."
  value       = module.settings.max_run_duration_seconds
}
