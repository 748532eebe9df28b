output "instance_template" {
  description = "Pass as sourceInstanceTemplate when inserting a VM named with instance_name_prefix."
  value       = module.notraining_agent.instance_template_self_link
}

output "instance_name_prefix" {
  description = "Prefix every VM name must start with."
  value       = module.notraining_agent.instance_name_prefix
}

output "agent_metadata" {
  description = "What the agent will read from its metadata."
  value       = module.notraining_agent.agent_metadata
}
