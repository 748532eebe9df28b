# Everything the root module derives from its inputs, computed without a provider so
# `terraform test` can check it offline: names, the agent's metadata attributes, the
# self-stop permissions, the timings of the dead-man's switch and the user-data.

locals {
  # --- Names ---------------------------------------------------------------------------
  service_account_id = "${var.name_prefix}-agent"
  secret_id          = "${var.name_prefix}-agent-auth"
  custom_role_id     = "${replace(var.name_prefix, "-", "_")}_agent_self_stop"
  secret_ref         = "projects/${var.project_id}/secrets/${local.secret_id}/versions/${var.secret_version}"

  # --- Durations, in seconds -------------------------------------------------------------
  # The agent reads "90", "90s", "15m" or "2h"; Terraform needs numbers for the timers.
  # try(): a malformed value is reported by its variable's validation, not here.
  duration_unit = { "" = 1, s = 1, m = 60, h = 3600 }
  seconds = {
    for k, v in {
      idle_timeout     = var.idle_timeout
      job_timeout      = var.job_timeout
      shutdown_grace   = var.shutdown_grace
      notify_deadline  = var.notify_deadline
      deadman_margin   = var.deadman_margin
      max_run_duration = var.max_run_duration
    } : k => try(tonumber(regex("^([0-9]+)([smh]?)$", v)[0]) * local.duration_unit[regex("^([0-9]+)([smh]?)$", v)[1]], null)
  }

  # What the agent may spend after its job: boot and install (5 minutes at least), the
  # end report's retries, then the grace Saturno has to stop the VM.
  min_deadman_margin = local.seconds.notify_deadline + local.seconds.shutdown_grace + 300
  deadman_seconds    = local.seconds.job_timeout + local.seconds.idle_timeout + local.seconds.deadman_margin
  max_run_duration_seconds = (
    !var.enable_max_run_duration ? null :
    var.max_run_duration == null ? local.deadman_seconds + 900 : local.seconds.max_run_duration
  )

  # --- IAM ---------------------------------------------------------------------------
  # Exactly what self_stop needs through the Compute API; poweroff and none need nothing.
  # Not compute.instances.list, which the boot check's testIamPermissions requires: it is
  # checked on the project, so no instance-name condition could narrow it, and it would
  # let every VM list (and read the metadata of) every instance of the project. The boot
  # report says can_self_stop = null instead (agent gce/compute.py). Not get either: the
  # agent never reads its instance through the API.
  self_stop_permissions = {
    stop     = ["compute.instances.stop"]
    delete   = ["compute.instances.delete"]
    poweroff = []
    none     = []
  }[var.self_stop]
  # Compute Engine names instances projects/P/zones/Z/instances/NAME in IAM conditions.
  instance_name_condition = "resource.type == \"compute.googleapis.com/Instance\" && resource.name.extract(\"/instances/{name}\").startsWith(\"${var.name_prefix}-\")"

  # --- Network -------------------------------------------------------------------------
  # Shared VPC: the network, its subnetworks and the firewall rule live in the host
  # project. A bare name would resolve in the provider's project (or project_id) and
  # need the provider's region, so both links are spelt out in full here.
  compute_api        = "https://www.googleapis.com/compute/v1"
  network_link_parts = try(regex("projects/([^/]+)/global/networks/([^/]+)$", var.network), null)
  subnet_link_parts  = try(regex("projects/([^/]+)/regions/([^/]+)/subnetworks/([^/]+)$", var.subnetwork), null)
  subnetwork_project = local.subnet_link_parts != null ? local.subnet_link_parts[0] : coalesce(var.subnetwork_project, try(local.network_link_parts[0], null), var.project_id)
  network_project    = local.network_link_parts != null ? local.network_link_parts[0] : local.subnetwork_project
  network_name       = local.network_link_parts != null ? local.network_link_parts[1] : var.network
  subnetwork_parts = (
    var.subnetwork == null ? null :
    local.subnet_link_parts != null ? local.subnet_link_parts :
    [local.subnetwork_project, coalesce(var.region, "region-unset"), var.subnetwork] # region is checked in variables.tf
  )
  network_self_link    = "${local.compute_api}/projects/${local.network_project}/global/networks/${local.network_name}"
  subnetwork_self_link = local.subnetwork_parts == null ? null : format("%s/projects/%s/regions/%s/subnetworks/%s", local.compute_api, local.subnetwork_parts...)

  wheelhouse_bucket = try(regex("^gs://([^/]+)/", var.agent_wheelhouse_url)[0], null)
  output_bucket     = try(regex("^gs://([^/]+)", var.output_uri)[0], null)

  # --- The agent's configuration ---------------------------------------------------------
  # Attribute names are the agent's keys (CONTRACT.md section 2) with `notraining-` in
  # front and `-` for `_`; null means "the agent's default" and is left out. Secrets
  # never appear here: the agent reads them from Secret Manager through secret_ref.
  agent_attributes = {
    "notraining-register-url"       = var.register_url
    "notraining-done-url"           = var.done_url
    "notraining-port"               = var.port
    "notraining-auth-mode"          = var.auth_mode
    "notraining-jwt-audience"       = var.jwt_audience
    "notraining-secret-ref"         = local.secret_ref
    "notraining-idle-timeout"       = var.idle_timeout
    "notraining-job-timeout"        = var.job_timeout
    "notraining-shutdown-grace"     = var.shutdown_grace
    "notraining-notify-deadline"    = var.notify_deadline
    "notraining-self-stop"          = var.self_stop
    "notraining-output-uri"         = var.output_uri
    "notraining-allowed-url-hosts"  = length(var.allowed_url_hosts) > 0 ? join(",", var.allowed_url_hosts) : null
    "notraining-max-body-bytes"     = var.max_body_bytes
    "notraining-max-download-bytes" = var.max_download_bytes
    "notraining-processor"          = var.processor
    "notraining-identity-audience"  = var.identity_audience
  }
  agent_metadata = { for k, v in local.agent_attributes : k => tostring(v) if v != null }

  # --- The boot recipe -------------------------------------------------------------------
  cloud_init_dir = "${path.module}/../../../cloud-init"
  extras         = sort(distinct(concat(var.agent_extras, local.output_bucket != null ? ["gcs"] : [])))
  # The lock's exports (make lock): the index install pins and hashes every dependency with
  # them, and fetches uv by the hashes of requirements/installer.txt.
  requirements_dir = "${path.module}/../../../requirements"
  locked_runtime   = file("${local.requirements_dir}/${join("-", concat(["agent"], local.extras))}.txt")
  installer        = file("${local.requirements_dir}/installer.txt")
  index_url        = var.pip_index_url == null ? "https://pypi.org/simple/" : var.pip_index_url
  user_data = templatefile("${local.cloud_init_dir}/user-data.yaml.tftpl", {
    agent_unit              = file("${local.cloud_init_dir}/notraining-agent.service")
    deadman_timer           = file("${local.cloud_init_dir}/notraining-deadman.timer")
    deadman_service         = file("${local.cloud_init_dir}/notraining-deadman.service")
    deadman_seconds         = local.deadman_seconds
    wheelhouse_url          = var.agent_wheelhouse_url == null ? "" : var.agent_wheelhouse_url
    wheelhouse_download_url = var.agent_wheelhouse_url == null ? "" : replace(var.agent_wheelhouse_url, "/^gs:///", "https://storage.googleapis.com/")
    wheelhouse_from_gcs     = local.wheelhouse_bucket != null
    wheelhouse_sha256       = var.agent_wheelhouse_sha256 == null ? "" : var.agent_wheelhouse_sha256
    requirements_file       = join("-", concat(["requirements"], local.extras))
    agent_requirement       = "notraining-agent${length(local.extras) > 0 ? "[${join(",", local.extras)}]" : ""}==${var.agent_version == null ? "" : var.agent_version}"
    agent_wheel_sha256      = var.agent_wheel_sha256 == null ? "" : var.agent_wheel_sha256
    locked_runtime          = local.locked_runtime
    index_url               = endswith(local.index_url, "/") ? local.index_url : "${local.index_url}/"
    uv_version              = regex("(?m)^uv==([^ ;]+)", local.installer)[0]
    uv_hashes               = flatten(regexall("--hash=sha256:([0-9a-f]{64})", local.installer))
  })

  # What the agent needs in the VM's metadata; the root module adds the access switches
  # (OS Login and the like) and Saturno may add notraining-job per VM.
  metadata = merge(local.agent_metadata, {
    "user-data" = local.user_data
    # The serial console (the agent's JSON lines) is kept in Cloud Logging after the VM.
    "serial-port-logging-enable" = var.serial_port_logging ? "TRUE" : "FALSE"
  })
}
