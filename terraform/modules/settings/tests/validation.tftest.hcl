# Every validation rule of variables.tf, with a value it accepts and values it refuses,
# and the two cross-value checks on outputs.tf. Offline: this module has no provider.
# Run: cd terraform/modules/settings && terraform init -backend=false && terraform test

variables {
  project_id            = "example-project"
  register_url          = "https://saturno.example.com/api/vm/register/"
  done_url              = "https://saturno.example.com/api/vm/done/"
  agent_version         = "0.1.0"
  saturno_source_ranges = ["10.10.0.0/24"]
}

run "baseline_is_valid" {
  command = plan
}

# --- Project and names ---------------------------------------------------------------

run "project_id_accepts_an_id" {
  command = plan
  variables { project_id = "my-project-123" }
}

run "project_id_refuses_a_project_number" {
  command = plan
  variables { project_id = "123456789012" }
  expect_failures = [var.project_id]
}

run "project_id_refuses_uppercase" {
  command = plan
  variables { project_id = "My_Project" }
  expect_failures = [var.project_id]
}

run "name_prefix_accepts_a_short_name" {
  command = plan
  variables { name_prefix = "nt-a1" }
}

run "name_prefix_refuses_a_trailing_hyphen" {
  command = plan
  variables { name_prefix = "notraining-" }
  expect_failures = [var.name_prefix]
}

run "name_prefix_refuses_25_characters" {
  command = plan
  variables { name_prefix = "abcdefghijklmnopqrstuvwxy" }
  expect_failures = [var.name_prefix]
}

run "labels_accept_gce_labels" {
  command = plan
  variables { labels = { team = "ml", env = "" } }
}

run "labels_refuse_an_uppercase_key" {
  command = plan
  variables { labels = { Team = "ml" } }
  expect_failures = [var.labels]
}

run "labels_refuse_a_value_with_spaces" {
  command = plan
  variables { labels = { team = "machine learning" } }
  expect_failures = [var.labels]
}

# --- The VM --------------------------------------------------------------------------

run "machine_type_accepts_a_type" {
  command = plan
  variables { machine_type = "n2-highmem-4" }
}

run "machine_type_refuses_a_word" {
  command = plan
  variables { machine_type = "big" }
  expect_failures = [var.machine_type]
}

run "source_image_accepts_later_lts_and_minimal_images" {
  command = plan
  variables { source_image = "projects/ubuntu-os-cloud/global/images/ubuntu-minimal-2604-resolute-amd64-v20260501" }
}

run "source_image_accepts_a_short_family" {
  command = plan
  variables { source_image = "ubuntu-os-cloud/ubuntu-2404-lts-arm64" }
}

run "source_image_refuses_22_04" {
  command = plan
  variables { source_image = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts" }
  expect_failures = [var.source_image]
}

run "source_image_refuses_an_interim_release" {
  command = plan
  variables { source_image = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2410-amd64" }
  expect_failures = [var.source_image]
}

run "source_image_refuses_debian" {
  command = plan
  variables { source_image = "projects/debian-cloud/global/images/family/debian-12" }
  expect_failures = [var.source_image]
}

run "boot_disk_size_accepts_the_minimum" {
  command = plan
  variables { boot_disk_size_gb = 10 }
}

run "boot_disk_size_refuses_below_10" {
  command = plan
  variables { boot_disk_size_gb = 9 }
  expect_failures = [var.boot_disk_size_gb]
}

run "boot_disk_size_refuses_a_fraction" {
  command = plan
  variables { boot_disk_size_gb = 20.5 }
  expect_failures = [var.boot_disk_size_gb]
}

run "boot_disk_type_accepts_ssd" {
  command = plan
  variables { boot_disk_type = "pd-ssd" }
}

run "boot_disk_type_refuses_local_ssd" {
  command = plan
  variables { boot_disk_type = "local-ssd" }
  expect_failures = [var.boot_disk_type]
}

run "boot_disk_type_accepts_hyperdisk_on_c4" {
  command = plan
  variables {
    machine_type   = "c4-standard-8"
    boot_disk_type = "hyperdisk-balanced"
  }
}

run "boot_disk_type_accepts_hyperdisk_on_c3" {
  command = plan
  variables {
    machine_type   = "c3-standard-4"
    boot_disk_type = "hyperdisk-balanced"
  }
}

run "boot_disk_type_refuses_pd_balanced_on_c4" {
  command = plan
  variables {
    machine_type   = "c4-standard-8"
    boot_disk_type = "pd-balanced"
  }
  expect_failures = [var.boot_disk_type]
}

run "boot_disk_type_refuses_pd_ssd_on_n4" {
  command = plan
  variables {
    machine_type   = "n4-highmem-4"
    boot_disk_type = "pd-ssd"
  }
  expect_failures = [var.boot_disk_type]
}

run "boot_disk_type_refuses_hyperdisk_on_e2" {
  command = plan
  variables {
    machine_type   = "e2-standard-2"
    boot_disk_type = "hyperdisk-balanced"
  }
  expect_failures = [var.boot_disk_type]
}

run "boot_disk_type_refuses_hyperdisk_on_an_n1_custom_type" {
  command = plan
  variables {
    machine_type   = "custom-4-8192"
    boot_disk_type = "hyperdisk-balanced"
  }
  expect_failures = [var.boot_disk_type]
}

run "boot_disk_type_refuses_pd_standard_on_c3" {
  command = plan
  variables {
    machine_type   = "c3-standard-4"
    boot_disk_type = "pd-standard"
  }
  expect_failures = [var.boot_disk_type]
}

run "termination_action_accepts_delete" {
  command = plan
  variables { termination_action = "DELETE" }
}

run "termination_action_refuses_lowercase" {
  command = plan
  variables { termination_action = "stop" }
  expect_failures = [var.termination_action]
}

run "max_run_duration_accepts_hours" {
  command = plan
  variables { max_run_duration = "4h" }
}

run "max_run_duration_refuses_words" {
  command = plan
  variables { max_run_duration = "4 hours" }
  expect_failures = [var.max_run_duration]
}

run "max_run_duration_refuses_fractions" {
  command = plan
  variables { max_run_duration = "3.5h" }
  expect_failures = [var.max_run_duration]
}

run "deadman_margin_accepts_seconds" {
  command = plan
  variables { deadman_margin = "1800" }
}

run "deadman_margin_refuses_min" {
  command = plan
  variables { deadman_margin = "30min" }
  expect_failures = [var.deadman_margin]
}

# --- Network -------------------------------------------------------------------------

run "network_refuses_blank" {
  command = plan
  variables { network = "  " }
  expect_failures = [var.network]
}

run "network_accepts_a_host_project_self_link" {
  command = plan
  variables {
    network            = "https://www.googleapis.com/compute/v1/projects/host-project/global/networks/shared"
    subnetwork         = "projects/host-project/regions/us-east1/subnetworks/jobs"
    subnetwork_project = "host-project"
  }
}

run "network_refuses_a_name_with_a_slash_that_is_no_link" {
  command = plan
  variables { network = "host-project/shared" }
  expect_failures = [var.network]
}

run "network_refuses_another_project_than_the_subnetworks" {
  command = plan
  variables {
    network    = "projects/service-project/global/networks/shared"
    subnetwork = "projects/host-project/regions/us-east1/subnetworks/jobs"
  }
  expect_failures = [var.network]
}

run "network_refuses_another_project_than_subnetwork_project" {
  command = plan
  variables {
    network            = "projects/service-project/global/networks/shared"
    subnetwork_project = "host-project"
  }
  expect_failures = [var.network]
}

run "subnetwork_accepts_a_self_link" {
  command = plan
  variables { subnetwork = "projects/host-project/regions/us-east1/subnetworks/jobs" }
}

run "subnetwork_accepts_a_name_with_a_region" {
  command = plan
  variables {
    subnetwork = "jobs"
    region     = "us-east1"
  }
}

run "subnetwork_refuses_empty" {
  command = plan
  variables { subnetwork = "" }
  expect_failures = [var.subnetwork]
}

run "subnetwork_refuses_a_regionless_path" {
  command = plan
  variables { subnetwork = "projects/host-project/subnetworks/jobs" }
  expect_failures = [var.subnetwork]
}

run "subnetwork_project_accepts_an_id" {
  command = plan
  variables { subnetwork_project = "host-project" }
}

run "subnetwork_project_refuses_a_name" {
  command = plan
  variables { subnetwork_project = "Host Project" }
  expect_failures = [var.subnetwork_project]
}

run "subnetwork_project_refuses_another_project_than_the_self_links" {
  command = plan
  variables {
    subnetwork         = "projects/host-project/regions/us-east1/subnetworks/jobs"
    subnetwork_project = "other-host-project"
  }
  expect_failures = [var.subnetwork_project]
}

run "region_refuses_a_zone" {
  command = plan
  variables { region = "us-east1-b" }
  expect_failures = [var.region]
}

run "region_is_required_by_a_subnetwork_name" {
  command = plan
  variables { subnetwork = "jobs" }
  expect_failures = [var.region]
}

run "region_refuses_another_region_than_the_self_links" {
  command = plan
  variables {
    subnetwork = "projects/host-project/regions/us-east1/subnetworks/jobs"
    region     = "europe-west1"
  }
  expect_failures = [var.region]
}

run "network_tags_accept_rfc1035_names" {
  command = plan
  variables { network_tags = ["notraining-agent", "egress-nat"] }
}

run "network_tags_refuse_underscores" {
  command = plan
  variables { network_tags = ["bad_tag"] }
  expect_failures = [var.network_tags]
}

run "saturno_source_ranges_accept_ipv4_and_ipv6" {
  command = plan
  variables { saturno_source_ranges = ["10.0.0.0/8", "2001:db8::/32"] }
}

run "saturno_source_ranges_refuse_the_whole_ipv4_internet" {
  command = plan
  variables { saturno_source_ranges = ["10.0.0.0/8", "0.0.0.0/0"] }
  expect_failures = [var.saturno_source_ranges]
}

run "saturno_source_ranges_refuse_the_whole_ipv6_internet" {
  command = plan
  variables { saturno_source_ranges = ["::/0"] }
  expect_failures = [var.saturno_source_ranges]
}

run "saturno_source_ranges_refuse_a_bare_address" {
  command = plan
  variables { saturno_source_ranges = ["10.1.2.3"] }
  expect_failures = [var.saturno_source_ranges]
}

run "saturno_source_ranges_refuse_garbage" {
  command = plan
  variables { saturno_source_ranges = ["saturno.internal/24"] }
  expect_failures = [var.saturno_source_ranges]
}

run "saturno_source_ranges_are_required_with_the_firewall" {
  command = plan
  variables { saturno_source_ranges = [] }
  expect_failures = [var.saturno_source_ranges]
}

run "saturno_source_ranges_may_be_empty_without_the_firewall" {
  command = plan
  variables {
    create_firewall       = false
    saturno_source_ranges = []
  }
}

# --- The agent package ---------------------------------------------------------------

run "agent_wheel_url_accepts_gcs_with_its_sha256" {
  command = plan
  variables {
    agent_version      = null
    agent_wheel_url    = "gs://example-artifacts/notraining_agent-0.1.0-py3-none-any.whl"
    agent_wheel_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
}

run "agent_wheel_url_accepts_https" {
  command = plan
  variables {
    agent_version      = null
    agent_wheel_url    = "https://artifacts.example.com:8443/dist/notraining_agent-1.2.0+build.7-py3-none-any.whl"
    agent_wheel_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
}

run "agent_wheel_url_refuses_another_wheel" {
  command = plan
  variables {
    agent_version      = null
    agent_wheel_url    = "gs://example-artifacts/requests-2.31.0-py3-none-any.whl"
    agent_wheel_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  expect_failures = [var.agent_wheel_url]
}

run "agent_wheel_url_refuses_plain_http" {
  command = plan
  variables {
    agent_version      = null
    agent_wheel_url    = "http://artifacts.example.com/notraining_agent-0.1.0-py3-none-any.whl"
    agent_wheel_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  expect_failures = [var.agent_wheel_url]
}

run "agent_wheel_url_and_agent_version_are_exclusive" {
  command = plan
  variables {
    agent_wheel_url    = "gs://example-artifacts/notraining_agent-0.1.0-py3-none-any.whl"
    agent_wheel_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  expect_failures = [var.agent_wheel_url]
}

run "agent_wheel_url_or_agent_version_is_required" {
  command = plan
  variables { agent_version = null }
  expect_failures = [var.agent_wheel_url]
}

run "agent_wheel_sha256_refuses_uppercase_hex" {
  command = plan
  variables {
    agent_version      = null
    agent_wheel_url    = "gs://example-artifacts/notraining_agent-0.1.0-py3-none-any.whl"
    agent_wheel_sha256 = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
  }
  expect_failures = [var.agent_wheel_sha256]
}

run "agent_wheel_sha256_is_required_with_the_wheel" {
  command = plan
  variables {
    agent_version   = null
    agent_wheel_url = "gs://example-artifacts/notraining_agent-0.1.0-py3-none-any.whl"
  }
  expect_failures = [var.agent_wheel_sha256]
}

run "agent_wheel_sha256_is_refused_without_the_wheel" {
  command = plan
  variables { agent_wheel_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  expect_failures = [var.agent_wheel_sha256]
}

run "agent_version_accepts_a_release_candidate" {
  command = plan
  variables { agent_version = "1.2.0rc1" }
}

run "agent_version_refuses_a_range" {
  command = plan
  variables { agent_version = ">=0.1" }
  expect_failures = [var.agent_version]
}

run "agent_version_refuses_latest" {
  command = plan
  variables { agent_version = "latest" }
  expect_failures = [var.agent_version]
}

run "pip_index_url_accepts_https" {
  command = plan
  variables { pip_index_url = "https://us-python.pkg.dev/example-project/agents/simple/" }
}

run "pip_index_url_refuses_http" {
  command = plan
  variables { pip_index_url = "http://pypi.internal/simple/" }
  expect_failures = [var.pip_index_url]
}

run "agent_extras_accept_vision" {
  command = plan
  variables { agent_extras = ["vision"] }
}

run "agent_extras_refuse_unknown_extras" {
  command = plan
  variables { agent_extras = ["all"] }
  expect_failures = [var.agent_extras]
}

# --- The agent's configuration -------------------------------------------------------

run "register_url_accepts_http" {
  command = plan
  variables { register_url = "http://10.0.0.5:8000/register" }
}

run "register_url_refuses_a_path" {
  command = plan
  variables { register_url = "saturno/register" }
  expect_failures = [var.register_url]
}

run "done_url_refuses_ftp" {
  command = plan
  variables { done_url = "ftp://saturno.example.com/done" }
  expect_failures = [var.done_url]
}

run "auth_mode_accepts_static" {
  command = plan
  variables { auth_mode = "static" }
}

run "auth_mode_refuses_none" {
  command = plan
  variables { auth_mode = "none" }
  expect_failures = [var.auth_mode]
}

run "jwt_audience_accepts_a_value" {
  command = plan
  variables { jwt_audience = "notraining" }
}

run "jwt_audience_refuses_empty" {
  command = plan
  variables { jwt_audience = "" }
  expect_failures = [var.jwt_audience]
}

run "identity_audience_accepts_a_url" {
  command = plan
  variables { identity_audience = "https://saturno.example.com" }
}

run "identity_audience_refuses_blank" {
  command = plan
  variables { identity_audience = " " }
  expect_failures = [var.identity_audience]
}

run "port_accepts_8080" {
  command = plan
  variables { port = 8080 }
}

run "port_refuses_0" {
  command = plan
  variables { port = 0 }
  expect_failures = [var.port]
}

run "port_refuses_70000" {
  command = plan
  variables { port = 70000 }
  expect_failures = [var.port]
}

run "idle_timeout_accepts_bare_seconds" {
  command = plan
  variables { idle_timeout = "900" }
}

run "idle_timeout_refuses_zero" {
  command = plan
  variables { idle_timeout = "0m" }
  expect_failures = [var.idle_timeout]
}

run "job_timeout_accepts_seconds" {
  command = plan
  variables { job_timeout = "5400s" }
}

run "job_timeout_refuses_days" {
  command = plan
  variables { job_timeout = "1d" }
  expect_failures = [var.job_timeout]
}

run "shutdown_grace_accepts_zero" {
  command = plan
  variables { shutdown_grace = "0" }
}

run "shutdown_grace_refuses_a_space" {
  command = plan
  variables { shutdown_grace = "2 m" }
  expect_failures = [var.shutdown_grace]
}

run "notify_deadline_refuses_negative" {
  command = plan
  variables { notify_deadline = "-5m" }
  expect_failures = [var.notify_deadline]
}

run "self_stop_accepts_poweroff" {
  command = plan
  variables { self_stop = "poweroff" }
}

run "self_stop_refuses_halt" {
  command = plan
  variables { self_stop = "halt" }
  expect_failures = [var.self_stop]
}

run "output_uri_accepts_gcs" {
  command = plan
  variables { output_uri = "gs://example-results/notraining" }
}

run "output_uri_accepts_a_file_uri" {
  command = plan
  variables { output_uri = "file:///var/lib/notraining-agent/results" }
}

run "output_uri_refuses_s3" {
  command = plan
  variables { output_uri = "s3://example-results/notraining" }
  expect_failures = [var.output_uri]
}

run "output_uri_refuses_an_invalid_bucket" {
  command = plan
  variables { output_uri = "gs://Example_Results" }
  expect_failures = [var.output_uri]
}

run "allowed_url_hosts_accept_hosts_ports_and_ipv6" {
  command = plan
  variables { allowed_url_hosts = ["art.internal:8080", "10.1.2.3", "[fd00::1]:443"] }
}

run "allowed_url_hosts_refuse_urls" {
  command = plan
  variables { allowed_url_hosts = ["http://art.internal"] }
  expect_failures = [var.allowed_url_hosts]
}

run "max_body_bytes_accepts_a_size" {
  command = plan
  variables { max_body_bytes = 65536 }
}

run "max_body_bytes_refuses_zero" {
  command = plan
  variables { max_body_bytes = 0 }
  expect_failures = [var.max_body_bytes]
}

run "max_download_bytes_refuses_a_fraction" {
  command = plan
  variables { max_download_bytes = 1.5 }
  expect_failures = [var.max_download_bytes]
}

run "processor_accepts_a_name" {
  command = plan
  variables { processor = "manifest" }
}

run "processor_refuses_uppercase" {
  command = plan
  variables { processor = "Manifest" }
  expect_failures = [var.processor]
}

# --- Secrets and IAM -----------------------------------------------------------------

run "secret_version_accepts_a_number" {
  command = plan
  variables { secret_version = "3" }
}

run "secret_version_refuses_zero" {
  command = plan
  variables { secret_version = "0" }
  expect_failures = [var.secret_version]
}

run "saturno_service_account_accepts_an_email" {
  command = plan
  variables { saturno_service_account = "saturno@example-project.iam.gserviceaccount.com" }
}

run "saturno_service_account_refuses_a_name" {
  command = plan
  variables { saturno_service_account = "saturno" }
  expect_failures = [var.saturno_service_account]
}

# --- Cross-value checks (outputs.tf preconditions) ------------------------------------

run "deadman_margin_must_cover_the_end_report_and_grace" {
  command = plan
  variables { deadman_margin = "10m" }
  expect_failures = [output.deadman_seconds]
}

run "max_run_duration_must_outlast_the_deadman_switch" {
  command = plan
  variables { max_run_duration = "1h" }
  expect_failures = [output.max_run_duration_seconds]
}

run "max_run_duration_is_not_checked_when_disabled" {
  command = plan
  variables {
    enable_max_run_duration = false
    max_run_duration        = "1h"
  }
}
