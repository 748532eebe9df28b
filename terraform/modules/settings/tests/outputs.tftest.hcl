# What the module derives from valid inputs: the metadata the agent sees, the IAM it
# gets, the timings of the guards and the install recipe. Offline, like validation.

variables {
  project_id            = "example-project"
  register_url          = "https://saturno.example.com/api/vm/register/"
  done_url              = "https://saturno.example.com/api/vm/done/"
  agent_version         = "0.1.0"
  agent_wheel_sha256    = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  saturno_source_ranges = ["10.10.0.0/24"]
}

run "defaults_give_the_agent_its_settings_and_a_secret_reference" {
  command = plan

  assert {
    condition = output.agent_metadata == {
      "notraining-register-url"    = "https://saturno.example.com/api/vm/register/"
      "notraining-done-url"        = "https://saturno.example.com/api/vm/done/"
      "notraining-port"            = "80"
      "notraining-auth-mode"       = "jwt"
      "notraining-secret-ref"      = "projects/example-project/secrets/notraining-agent-auth/versions/latest"
      "notraining-idle-timeout"    = "30m"
      "notraining-job-timeout"     = "2h"
      "notraining-shutdown-grace"  = "2m"
      "notraining-notify-deadline" = "15m"
      "notraining-self-stop"       = "stop"
    }
    error_message = "The default notraining-* attributes changed."
  }

  assert {
    condition = (
      jsonencode(keys(output.metadata)) == jsonencode(sort(concat(keys(output.agent_metadata), ["serial-port-logging-enable", "user-data"]))) &&
      startswith(output.metadata["user-data"], "#cloud-config\n")
    )
    error_message = "The module's metadata must be the notraining-* attributes plus the #cloud-config user-data and serial-port-logging-enable."
  }
}

run "optional_settings_appear_only_when_set" {
  command = plan
  variables {
    jwt_audience       = "notraining"
    identity_audience  = "https://saturno.example.com"
    allowed_url_hosts  = ["art.internal:8080", "10.1.2.3"]
    max_body_bytes     = 65536
    max_download_bytes = 1073741824
    processor          = "manifest"
    output_uri         = "gs://example-results/notraining"
  }

  assert {
    condition = alltrue([
      output.agent_metadata["notraining-jwt-audience"] == "notraining",
      output.agent_metadata["notraining-identity-audience"] == "https://saturno.example.com",
      output.agent_metadata["notraining-allowed-url-hosts"] == "art.internal:8080,10.1.2.3",
      output.agent_metadata["notraining-max-body-bytes"] == "65536",
      output.agent_metadata["notraining-max-download-bytes"] == "1073741824",
      output.agent_metadata["notraining-processor"] == "manifest",
      output.agent_metadata["notraining-output-uri"] == "gs://example-results/notraining",
    ])
    error_message = "Optional settings must reach the agent as notraining-* attributes."
  }

  assert {
    condition     = output.output_bucket == "example-results"
    error_message = "A gs:// output_uri must name the bucket the service account writes to."
  }

  assert {
    condition     = strcontains(output.user_data, "notraining-agent[gcs]==0.1.0 \\")
    error_message = "A gs:// output_uri must install the agent's gcs extra."
  }
}

run "self_stop_stop_grants_get_and_stop" {
  command = plan

  assert {
    condition     = output.self_stop_permissions == ["compute.instances.stop"]
    error_message = "self_stop = stop needs compute.instances.stop, nothing else (no list: see main.tf)."
  }

  assert {
    condition     = output.instance_name_condition == "resource.type == \"compute.googleapis.com/Instance\" && resource.name.extract(\"/instances/{name}\").startsWith(\"notraining-\")"
    error_message = "The IAM condition must limit the role to instances named <name_prefix>-*."
  }
}

run "self_stop_delete_grants_get_and_delete" {
  command = plan
  variables { self_stop = "delete" }

  assert {
    condition     = output.self_stop_permissions == ["compute.instances.delete"]
    error_message = "self_stop = delete needs compute.instances.delete, nothing else (no list: see main.tf)."
  }
}

run "self_stop_poweroff_grants_nothing" {
  command = plan
  variables { self_stop = "poweroff" }

  assert {
    condition     = output.self_stop_permissions == []
    error_message = "self_stop = poweroff does not call the Compute API and needs no permission."
  }
}

run "guards_fire_in_order_with_the_defaults" {
  command = plan

  assert {
    condition     = output.deadman_seconds == 2 * 3600 + 30 * 60 + 30 * 60
    error_message = "The dead-man's switch must fire job_timeout + idle_timeout + deadman_margin after boot."
  }

  assert {
    condition     = output.max_run_duration_seconds == output.deadman_seconds + 900
    error_message = "By default GCE's max_run_duration must come 15 minutes after the dead-man's switch."
  }

  assert {
    condition     = strcontains(output.user_data, "OnBootSec=10800s")
    error_message = "The user-data must set the dead-man's switch deadline in seconds."
  }
}

run "durations_accept_every_unit" {
  command = plan
  variables {
    job_timeout      = "5400"
    idle_timeout     = "600s"
    deadman_margin   = "40m"
    max_run_duration = "3h"
  }

  assert {
    condition     = output.deadman_seconds == 5400 + 600 + 2400
    error_message = "Durations in seconds, s, m and h must add up."
  }

  assert {
    condition     = output.max_run_duration_seconds == 10800
    error_message = "An explicit max_run_duration must be used as given."
  }
}

run "max_run_duration_can_be_disabled" {
  command = plan
  variables { enable_max_run_duration = false }

  assert {
    condition     = output.max_run_duration_seconds == null
    error_message = "enable_max_run_duration = false must leave max_run_duration unset."
  }
}

run "a_gcs_wheelhouse_is_fetched_with_the_vm_identity_checked_and_installed_offline" {
  command = plan
  variables {
    agent_version           = null
    agent_wheel_sha256      = null
    agent_wheelhouse_url    = "gs://example-artifacts/dist/notraining_agent-0.1.0-wheelhouse.tar"
    agent_wheelhouse_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }

  assert {
    condition     = output.wheelhouse_bucket == "example-artifacts"
    error_message = "A gs:// wheelhouse must name the bucket the service account reads."
  }

  assert {
    condition = alltrue([
      strcontains(output.user_data, "'https://storage.googleapis.com/example-artifacts/dist/notraining_agent-0.1.0-wheelhouse.tar'"),
      strcontains(output.user_data, "instance/service-accounts/default/token"),
      strcontains(output.user_data, "echo \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  $archive\" | sha256sum --check --strict -"),
      strcontains(output.user_data, "--offline --no-index"),
      strcontains(output.user_data, "--require-hashes -r \"$requirements\""),
      !strcontains(output.user_data, "apt-get"),
      !strcontains(output.user_data, "--index-url"),
    ])
    error_message = "A gs:// wheelhouse must be downloaded with the VM's token, checked against its sha256, then installed with no index."
  }
}

run "the_wheelhouse_requirements_follow_the_extras" {
  command = plan
  variables {
    agent_version           = null
    agent_wheel_sha256      = null
    agent_wheelhouse_url    = "https://artifacts.example.com/notraining_agent-0.1.0-wheelhouse-gcs-vision.tar"
    agent_wheelhouse_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    agent_extras            = ["vision"]
    output_uri              = "gs://example-results/notraining"
  }

  assert {
    condition     = strcontains(output.user_data, "requirements=\"$house/requirements-gcs-vision.txt\"")
    error_message = "The recipe must install the wheelhouse's requirements for the extras it needs (vision, and gcs for a gs:// output_uri)."
  }
}

run "an_index_version_is_pinned_and_hashed" {
  command = plan
  variables { pip_index_url = "https://us-python.pkg.dev/example-project/agents/simple" }

  assert {
    condition = alltrue([
      strcontains(output.user_data, "notraining-agent==0.1.0 \\\n          --hash=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"),
      strcontains(output.user_data, "--index-url 'https://us-python.pkg.dev/example-project/agents/simple/'"),
      strcontains(output.user_data, "python3 - 'https://us-python.pkg.dev/example-project/agents/simple/uv/'"),
      strcontains(output.user_data, "--require-hashes -r /usr/local/share/notraining-agent/requirements.txt"),
      !strcontains(output.user_data, "apt-get"),
    ])
    error_message = "agent_version must be installed pinned to agent_wheel_sha256 from pip_index_url, uv and every dependency by the lock's hashes."
  }

  assert {
    condition     = output.wheelhouse_bucket == null
    error_message = "Without a gs:// wheelhouse no bucket is read."
  }
}

run "names_follow_the_prefix" {
  command = plan
  variables { name_prefix = "nt-prod" }

  assert {
    condition = alltrue([
      output.service_account_id == "nt-prod-agent",
      output.secret_id == "nt-prod-agent-auth",
      output.custom_role_id == "nt_prod_agent_self_stop",
      strcontains(output.instance_name_condition, ".startsWith(\"nt-prod-\")"),
    ])
    error_message = "Resource names and the IAM condition must follow name_prefix."
  }
}

# --- Network: every link in full, in the project that holds it -----------------------

run "default_network_is_in_project_id_and_has_no_subnetwork" {
  command = plan

  assert {
    condition = (
      output.network_self_link == "https://www.googleapis.com/compute/v1/projects/example-project/global/networks/default" &&
      output.network_project == "example-project" &&
      output.subnetwork_self_link == null
    )
    error_message = "Without Shared VPC inputs the network must be project_id's and the subnetwork left to GCE."
  }
}

run "host_project_subnetwork_by_name_with_subnetwork_project" {
  command = plan
  variables {
    network            = "shared"
    subnetwork         = "jobs"
    subnetwork_project = "host-project"
    region             = "us-east1"
  }

  assert {
    condition = (
      output.subnetwork_self_link == "https://www.googleapis.com/compute/v1/projects/host-project/regions/us-east1/subnetworks/jobs" &&
      output.network_self_link == "https://www.googleapis.com/compute/v1/projects/host-project/global/networks/shared" &&
      output.network_project == "host-project"
    )
    error_message = "A subnetwork and a network given by name must both resolve in subnetwork_project, with the region given."
  }
}

run "host_project_subnetwork_by_self_link_without_subnetwork_project" {
  command = plan
  variables {
    network    = "shared"
    subnetwork = "projects/host-project/regions/us-east1/subnetworks/jobs"
  }

  assert {
    condition = (
      output.subnetwork_self_link == "https://www.googleapis.com/compute/v1/projects/host-project/regions/us-east1/subnetworks/jobs" &&
      output.network_self_link == "https://www.googleapis.com/compute/v1/projects/host-project/global/networks/shared" &&
      output.network_project == "host-project"
    )
    error_message = "A subnetwork self link must put the network and the firewall rule in its own project, not project_id."
  }
}

run "host_project_subnetwork_by_self_link_with_subnetwork_project" {
  command = plan
  variables {
    network            = "shared"
    subnetwork         = "https://www.googleapis.com/compute/v1/projects/host-project/regions/us-east1/subnetworks/jobs"
    subnetwork_project = "host-project"
  }

  assert {
    condition = (
      output.subnetwork_self_link == "https://www.googleapis.com/compute/v1/projects/host-project/regions/us-east1/subnetworks/jobs" &&
      output.network_project == "host-project"
    )
    error_message = "A full subnetwork self link must be kept as is."
  }
}

run "subnetwork_by_name_without_subnetwork_project_is_in_project_id" {
  command = plan
  variables {
    subnetwork = "jobs"
    region     = "europe-west1"
  }

  assert {
    condition = (
      output.subnetwork_self_link == "https://www.googleapis.com/compute/v1/projects/example-project/regions/europe-west1/subnetworks/jobs" &&
      output.network_project == "example-project"
    )
    error_message = "With no subnetwork_project a named subnetwork is project_id's, never the provider's project."
  }
}

run "network_self_link_names_the_project_of_a_named_subnetwork" {
  command = plan
  variables {
    network    = "projects/host-project/global/networks/shared"
    subnetwork = "jobs"
    region     = "us-east1"
  }

  assert {
    condition = (
      output.subnetwork_self_link == "https://www.googleapis.com/compute/v1/projects/host-project/regions/us-east1/subnetworks/jobs" &&
      output.network_project == "host-project"
    )
    error_message = "A named subnetwork of a network given by self link must be looked up in that network's project."
  }
}
