# The notraining-agent deployment: the instance template Saturno launches one VM per job
# from, the VM's service account and the little it may do, the auth secret, and the
# firewall rule for the receiver. Every value is derived and validated in
# modules/settings (provider-free, tested offline with `terraform test`).

module "settings" {
  source = "./modules/settings"

  project_id              = var.project_id
  name_prefix             = var.name_prefix
  labels                  = var.labels
  machine_type            = var.machine_type
  source_image            = var.source_image
  boot_disk_size_gb       = var.boot_disk_size_gb
  boot_disk_type          = var.boot_disk_type
  spot                    = var.spot
  termination_action      = var.termination_action
  enable_max_run_duration = var.enable_max_run_duration
  max_run_duration        = var.max_run_duration
  deadman_margin          = var.deadman_margin
  network                 = var.network
  subnetwork              = var.subnetwork
  subnetwork_project      = var.subnetwork_project
  region                  = var.region
  network_tags            = var.network_tags
  assign_external_ip      = var.assign_external_ip
  create_firewall         = var.create_firewall
  saturno_source_ranges   = var.saturno_source_ranges
  agent_wheelhouse_url    = var.agent_wheelhouse_url
  agent_wheelhouse_sha256 = var.agent_wheelhouse_sha256
  agent_version           = var.agent_version
  agent_wheel_sha256      = var.agent_wheel_sha256
  pip_index_url           = var.pip_index_url
  agent_extras            = var.agent_extras
  register_url            = var.register_url
  done_url                = var.done_url
  auth_mode               = var.auth_mode
  jwt_audience            = var.jwt_audience
  identity_audience       = var.identity_audience
  port                    = var.port
  idle_timeout            = var.idle_timeout
  job_timeout             = var.job_timeout
  shutdown_grace          = var.shutdown_grace
  notify_deadline         = var.notify_deadline
  self_stop               = var.self_stop
  output_uri              = var.output_uri
  allowed_url_hosts       = var.allowed_url_hosts
  max_body_bytes          = var.max_body_bytes
  max_download_bytes      = var.max_download_bytes
  processor               = var.processor
  secret_version          = var.secret_version
  saturno_service_account = var.saturno_service_account
  grant_bucket_access     = var.grant_bucket_access
  serial_port_logging     = var.serial_port_logging
}

locals {
  agent_member = "serviceAccount:${google_service_account.agent.email}"
}

# --- Identity ------------------------------------------------------------------------

resource "google_service_account" "agent" {
  project      = var.project_id
  account_id   = module.settings.service_account_id
  display_name = "notraining-agent VMs (${var.name_prefix})"
  description  = "Identity of the notraining-agent VMs: reads its auth secret and ends its own VM, nothing more."
}

# Only what self_stop needs (stop, or delete), on instances named <name_prefix>-* only;
# nothing when the agent does not call the Compute API. The boot check cannot confirm it
# (testIamPermissions needs compute.instances.list on the project, deliberately not
# granted), so the boot report's can_self_stop is null under this role.
resource "google_project_iam_custom_role" "self_stop" {
  count = length(module.settings.self_stop_permissions) > 0 ? 1 : 0

  project     = var.project_id
  role_id     = module.settings.custom_role_id
  title       = "notraining-agent self-stop (${var.name_prefix})"
  description = "Lets a notraining-agent VM end itself with self_stop = ${var.self_stop}."
  permissions = module.settings.self_stop_permissions
}

resource "google_project_iam_member" "self_stop" {
  count = length(google_project_iam_custom_role.self_stop)

  project = var.project_id
  role    = google_project_iam_custom_role.self_stop[0].name
  member  = local.agent_member

  condition {
    title       = "${var.name_prefix} instances only"
    description = "VMs launched from the notraining-agent template are named ${var.name_prefix}-*."
    expression  = module.settings.instance_name_condition
  }
}

# Saturno launches VMs that run as the agent's service account, which takes actAs on it.
resource "google_service_account_iam_member" "saturno_act_as" {
  count = var.saturno_service_account == null ? 0 : 1

  service_account_id = google_service_account.agent.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${var.saturno_service_account}"
}

# --- The auth secret -----------------------------------------------------------------

# The JWT secret (auth_mode jwt) or the static token. Terraform creates the secret, not
# its value, so the value never lands in the state: `gcloud secrets versions add`.
resource "google_secret_manager_secret" "auth" {
  project   = var.project_id
  secret_id = module.settings.secret_id
  labels    = var.labels

  replication {
    auto {}
  }
}

# Authoritative for the accessor role: the agent's service account is the only reader
# granted on this secret.
resource "google_secret_manager_secret_iam_binding" "auth_accessor" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.auth.secret_id
  role      = "roles/secretmanager.secretAccessor"
  members   = [local.agent_member]
}

# --- Buckets -------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "wheel_reader" {
  count = var.grant_bucket_access && module.settings.wheelhouse_bucket != null ? 1 : 0

  bucket = module.settings.wheelhouse_bucket
  role   = "roles/storage.objectViewer"
  member = local.agent_member
}

# objectUser, not objectCreator: a job run again after a restart overwrites its results.
resource "google_storage_bucket_iam_member" "output_writer" {
  count = var.grant_bucket_access && module.settings.output_bucket != null ? 1 : 0

  bucket = module.settings.output_bucket
  role   = "roles/storage.objectUser"
  member = local.agent_member
}

# --- The VM --------------------------------------------------------------------------

resource "google_compute_instance_template" "agent" {
  # checkov:skip=CKV_GCP_40:access_config exists only when var.assign_external_ip is true (default false); checkov cannot evaluate the dynamic block's condition.
  # checkov:skip=CKV_GCP_32:block-project-ssh-keys is "true" in the merge() below (tests/infra/test_terraform_hcl.py holds it there); checkov cannot read a map built by merge().
  project      = var.project_id
  name_prefix  = "${var.name_prefix}-"
  description  = "notraining-agent VM: one job, then it ends. Name instances ${var.name_prefix}-*."
  machine_type = var.machine_type
  labels       = var.labels
  tags         = var.network_tags
  metadata = merge(module.settings.metadata, {
    # Operators log in through OS Login (IAM), never with project-wide keys.
    "enable-oslogin"         = "TRUE"
    "block-project-ssh-keys" = "true"
    "serial-port-enable"     = "FALSE"
    # The agent publishes its state as guest attribute notraining/state.
    "enable-guest-attributes" = "TRUE"
  })
  can_ip_forward = false

  disk {
    boot         = true
    auto_delete  = true
    source_image = var.source_image
    disk_type    = var.boot_disk_type
    disk_size_gb = var.boot_disk_size_gb
    labels       = var.labels
  }

  # Full self links, so neither the project nor the region falls back to the provider's.
  # With a subnetwork the network is left out: the API takes the subnetwork's own.
  network_interface {
    network    = module.settings.subnetwork_self_link == null ? module.settings.network_self_link : null
    subnetwork = module.settings.subnetwork_self_link

    dynamic "access_config" {
      for_each = var.assign_external_ip ? [1] : []
      content {}
    }
  }

  service_account {
    email  = google_service_account.agent.email
    scopes = ["cloud-platform"]
  }

  scheduling {
    provisioning_model  = var.spot ? "SPOT" : "STANDARD"
    preemptible         = var.spot
    automatic_restart   = !var.spot
    on_host_maintenance = var.spot ? "TERMINATE" : "MIGRATE"
    instance_termination_action = (
      var.spot || module.settings.max_run_duration_seconds != null ? var.termination_action : null
    )

    # The last guard: GCE ends the VM even when everything inside it failed.
    dynamic "max_run_duration" {
      for_each = module.settings.max_run_duration_seconds == null ? [] : [module.settings.max_run_duration_seconds]
      content {
        seconds = max_run_duration.value
      }
    }
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  # Templates are immutable: a change makes a new one before the old one goes.
  lifecycle {
    create_before_destroy = true
  }
}

# --- Network -------------------------------------------------------------------------

# The receiver's port, from Saturno's ranges only, to the agent's VMs only (targeted by
# service account, which unlike a tag cannot be set on other VMs without actAs).
resource "google_compute_firewall" "receiver" {
  count = var.create_firewall ? 1 : 0

  project                 = module.settings.network_project
  name                    = "${var.name_prefix}-agent-receiver"
  description             = "Saturno to the notraining-agent receiver."
  network                 = module.settings.network_self_link
  direction               = "INGRESS"
  source_ranges           = var.saturno_source_ranges
  target_service_accounts = [google_service_account.agent.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
