# Every input of the notraining-agent module, with its validation. The root module
# (../../variables.tf) declares the same variables without validation and passes them
# here, so the rules live once, where `terraform test` can exercise them offline.
# tests/infra/test_terraform_hcl.py checks that both declarations agree.

# --- Project and names -------------------------------------------------------------

variable "project_id" {
  description = "ID of the project that holds the template, the service account, the secret and the firewall rule."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6 to 30 lowercase letters, digits or hyphens, starting with a letter), not a project number or name."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name. Saturno must name each VM it creates `<name_prefix>-<something>`: the self-stop permission is granted only on instances whose names start that way."
  type        = string
  default     = "notraining"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$", var.name_prefix))
    error_message = "name_prefix must be 1 to 24 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (it prefixes instance and service account names)."
  }
}

variable "labels" {
  description = "Labels set on the VMs, their boot disks and the secret."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "labels must have keys of 1 to 63 lowercase letters, digits, '_' or '-' starting with a letter, and values of at most 63 such characters."
  }
}

# --- The VM --------------------------------------------------------------------------

variable "machine_type" {
  description = "Machine type of each VM."
  type        = string
  default     = "e2-standard-2"

  validation {
    condition     = can(regex("^[a-z0-9]+(-[a-z0-9]+)+$", var.machine_type))
    error_message = "machine_type must be a machine type name such as e2-standard-2."
  }
}

variable "source_image" {
  description = "Boot image: an Ubuntu LTS release of 24.04 or later (the agent needs Python 3.11 or later), as an image or image family path."
  type        = string
  default     = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"

  validation {
    condition     = can(regex("(^|/)ubuntu-(minimal-)?(2[468]|[3-9][02468])04(-|$)", var.source_image))
    error_message = "source_image must be an Ubuntu LTS image or family of 24.04 or later (for example projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64): older releases lack Python 3.11."
  }
}

variable "boot_disk_size_gb" {
  description = "Size of the boot disk in GB. It holds the OS, the agent's venv and the job's downloads (max_download_bytes)."
  type        = number
  default     = 20

  validation {
    condition     = var.boot_disk_size_gb == floor(var.boot_disk_size_gb) && var.boot_disk_size_gb >= 10 && var.boot_disk_size_gb <= 2048
    error_message = "boot_disk_size_gb must be a whole number from 10 to 2048."
  }
}

variable "boot_disk_type" {
  description = "Type of the boot disk. It must fit machine_type's series (checked): C4, N4 and the other fourth-generation series boot from hyperdisk-balanced only, E2, N1, N2 and N2D from pd-* disks only."
  type        = string
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-balanced", "pd-ssd", "pd-standard", "hyperdisk-balanced"], var.boot_disk_type)
    error_message = "boot_disk_type must be one of pd-balanced, pd-ssd, pd-standard or hyperdisk-balanced."
  }

  # GCE checks the pair only when it inserts a VM, long after the plan: fourth-generation
  # series take Hyperdisk only, the older general-purpose ones Persistent Disk only, and
  # C3/C3D no pd-standard. The series is the machine type's first word (N1 custom types
  # are custom-CPUS-MEMORY). Series not listed here are not checked.
  validation {
    condition = !(
      (contains(["c4", "c4a", "c4d", "n4", "n4a", "n4d", "h4d", "m4", "x4", "a4", "a4x"], split("-", var.machine_type)[0]) && startswith(var.boot_disk_type, "pd-")) ||
      (contains(["e2", "n1", "custom", "n2", "n2d", "c2", "c2d", "t2d", "t2a", "a2", "g2", "f1", "g1"], split("-", var.machine_type)[0]) && startswith(var.boot_disk_type, "hyperdisk-")) ||
      (contains(["c3", "c3d"], split("-", var.machine_type)[0]) && var.boot_disk_type == "pd-standard")
    )
    error_message = "boot_disk_type does not fit machine_type: C4, C4A, C4D, N4, N4A, N4D, H4D, M4, X4 and A4 boot only from hyperdisk-balanced; E2, N1, N2, N2D, C2, C2D, T2D, T2A, A2 and G2 only from pd-* disks; C3 and C3D not from pd-standard. GCE would refuse every VM at insert time."
  }
}

variable "spot" {
  description = "Run the VMs as Spot VMs (cheaper, may be preempted: the agent then reports the job as `preempted`)."
  type        = bool
  default     = false
}

variable "termination_action" {
  description = "What GCE does to a VM it ends, on Spot preemption and when max_run_duration is reached: STOP (the disk stays for inspection) or DELETE."
  type        = string
  default     = "STOP"

  validation {
    condition     = contains(["STOP", "DELETE"], var.termination_action)
    error_message = "termination_action must be STOP or DELETE."
  }
}

variable "enable_max_run_duration" {
  description = "Let GCE itself end each VM after max_run_duration: the last guard, when Saturno, the agent and the dead-man's switch all failed."
  type        = bool
  default     = true
}

variable "max_run_duration" {
  description = "How long GCE lets a VM run, as seconds or a number with s, m or h. Null: the dead-man's switch deadline plus 15 minutes. Must be later than the dead-man's switch."
  type        = string
  default     = null

  validation {
    condition     = var.max_run_duration == null || can(regex("^[0-9]+[smh]?$", var.max_run_duration))
    error_message = "max_run_duration must be seconds or a whole number with s, m or h (for example 4h)."
  }
}

variable "deadman_margin" {
  description = "Time added to job_timeout + idle_timeout for the systemd dead-man's switch that powers a VM off after boot. It must cover boot, install, notify_deadline and shutdown_grace (checked)."
  type        = string
  default     = "30m"

  validation {
    condition     = can(regex("^[0-9]+[smh]?$", var.deadman_margin))
    error_message = "deadman_margin must be seconds or a whole number with s, m or h (for example 30m)."
  }
}

# --- Network -------------------------------------------------------------------------

variable "network" {
  description = "Network (name or self link) of the VMs and of the firewall rule. A name is looked up in the subnetwork's project (Shared VPC: the host project). With a subnetwork the VMs join the subnetwork's network, which must be this one."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^([a-z]([-a-z0-9]{0,61}[a-z0-9])?|(https://[a-z.]+/compute/(v1|beta)/)?projects/[a-z][-a-z0-9.:]*[a-z0-9]/global/networks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?)$", var.network))
    error_message = "network must be a network name (such as default) or a self link projects/PROJECT/global/networks/NAME."
  }

  validation {
    condition = alltrue([
      for p in compact([try(regex("projects/([^/]+)/regions/", var.subnetwork)[0], ""), var.subnetwork_project == null ? "" : var.subnetwork_project]) :
      try(regex("projects/([^/]+)/global/", var.network)[0], p) == p
    ])
    error_message = "network is in another project than the subnetwork (self link or subnetwork_project): a VM's network is its subnetwork's, so give the network of that project (Shared VPC: the host project)."
  }
}

variable "subnetwork" {
  description = "Subnetwork (name or self link) of the VMs; null uses the network's subnetwork in the VM's region. Without an external IP the subnetwork needs Private Google Access (Google APIs) and Cloud NAT or a package mirror (install)."
  type        = string
  default     = null

  validation {
    condition     = var.subnetwork == null || can(regex("^([a-z]([-a-z0-9]{0,61}[a-z0-9])?|(https://[a-z.]+/compute/(v1|beta)/)?projects/[a-z][-a-z0-9.:]*[a-z0-9]/regions/[a-z]+-[a-z]+[0-9]+/subnetworks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?)$", var.subnetwork))
    error_message = "subnetwork must be null, a subnetwork name (then set region) or a self link projects/PROJECT/regions/REGION/subnetworks/NAME."
  }
}

variable "subnetwork_project" {
  description = "Project of the network, the subnetwork and the firewall rule (Shared VPC host project); null means the project named by a subnetwork or network self link, else project_id."
  type        = string
  default     = null

  validation {
    condition     = var.subnetwork_project == null || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", coalesce(var.subnetwork_project, "x")))
    error_message = "subnetwork_project must be null or a project ID."
  }

  validation {
    condition = (
      var.subnetwork_project == null || var.subnetwork == null ||
      try(regex("projects/([^/]+)/regions/", var.subnetwork)[0], var.subnetwork_project) == var.subnetwork_project
    )
    error_message = "subnetwork_project differs from the project in the subnetwork's self link; drop one of them."
  }
}

variable "region" {
  description = "Region of the subnetwork, needed when subnetwork is a name (a self link names its region); Saturno creates the VMs in zones of this region."
  type        = string
  default     = null

  validation {
    condition     = var.region == null || can(regex("^[a-z]+-[a-z]+[0-9]+$", coalesce(var.region, "x")))
    error_message = "region must be null or a region name such as us-east1."
  }

  validation {
    condition     = !can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.subnetwork)) || var.region != null
    error_message = "region must be set when subnetwork is a name: a subnetwork is regional, and without it the provider stops with \"Cannot determine region\". Or give subnetwork as projects/PROJECT/regions/REGION/subnetworks/NAME."
  }

  validation {
    condition = (
      var.region == null || var.subnetwork == null ||
      try(regex("/regions/([^/]+)/", var.subnetwork)[0], var.region) == var.region
    )
    error_message = "region differs from the region in the subnetwork's self link; drop one of them."
  }
}

variable "network_tags" {
  description = "Network tags of the VMs (the receiver's firewall rule targets the service account, not these)."
  type        = list(string)
  default     = ["notraining-agent"]

  validation {
    condition     = alltrue([for t in var.network_tags : can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", t))])
    error_message = "network_tags must be lowercase RFC 1035 names of at most 63 characters."
  }
}

variable "assign_external_ip" {
  description = "Give each VM an ephemeral external IP. Off by default: Saturno reaches the receiver on the internal IP."
  type        = bool
  default     = false
}

variable "create_firewall" {
  description = "Create the firewall rule that lets Saturno reach the receiver. Off when jobs arrive only as the `notraining-job` metadata attribute, which needs no inbound port."
  type        = bool
  default     = true
}

variable "saturno_source_ranges" {
  description = "CIDR ranges Saturno calls the receiver from; the only sources the firewall rule admits. Required when create_firewall is true; 0.0.0.0/0 and ::/0 are refused."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for r in var.saturno_source_ranges : can(cidrhost(r, 0)) && can(regex("/([1-9][0-9]*)$", r))
    ])
    error_message = "saturno_source_ranges must be CIDR ranges with a prefix length above 0: the receiver is never open to the whole internet (0.0.0.0/0, ::/0)."
  }

  validation {
    condition     = !var.create_firewall || length(var.saturno_source_ranges) > 0
    error_message = "saturno_source_ranges must list Saturno's ranges when create_firewall is true."
  }
}

# --- The agent package ---------------------------------------------------------------

variable "agent_wheelhouse_url" {
  description = "The release's wheelhouse (`make dist` writes dist/notraining_agent-VERSION-wheelhouse[-EXTRAS].tar): `gs://BUCKET/PATH/NAME.tar`, read with the VM's service account, or an https URL. The VM installs the agent and every locked dependency from it with no index and no apt. Set this or agent_version."
  type        = string
  default     = null

  validation {
    condition     = var.agent_wheelhouse_url == null || can(regex("^(gs|https)://[a-z0-9][-a-z0-9_.]*[a-z0-9](:[0-9]+)?/([-A-Za-z0-9_.+/]*/)?[-A-Za-z0-9_.+]+\\.tar$", coalesce(var.agent_wheelhouse_url, "x")))
    error_message = "agent_wheelhouse_url must be a gs:// or https:// URL of a .tar wheelhouse (make dist writes dist/notraining_agent-VERSION-wheelhouse.tar)."
  }

  validation {
    condition     = (var.agent_wheelhouse_url == null) != (var.agent_version == null)
    error_message = "Set exactly one of agent_wheelhouse_url (the release's wheelhouse, installed offline) and agent_version (a pinned version from pip_index_url)."
  }
}

variable "agent_wheelhouse_sha256" {
  description = "SHA-256 of the wheelhouse at agent_wheelhouse_url (hex, its line in dist/SHA256SUMS); the boot recipe refuses any other file. Required with agent_wheelhouse_url."
  type        = string
  default     = null

  validation {
    condition     = var.agent_wheelhouse_sha256 == null || can(regex("^[0-9a-f]{64}$", coalesce(var.agent_wheelhouse_sha256, "x")))
    error_message = "agent_wheelhouse_sha256 must be 64 lowercase hex digits (sha256sum's output)."
  }

  validation {
    condition     = (var.agent_wheelhouse_url == null) == (var.agent_wheelhouse_sha256 == null)
    error_message = "agent_wheelhouse_sha256 must be set together with agent_wheelhouse_url, and only then."
  }
}

variable "agent_version" {
  description = "Pinned version of the notraining-agent distribution to install from pip_index_url, with its dependencies pinned and hashed by the repository's lock (requirements/). Set this or agent_wheelhouse_url."
  type        = string
  default     = null

  validation {
    condition     = var.agent_version == null || can(regex("^[0-9]+(\\.[0-9]+)*((a|b|rc)[0-9]+)?(\\.post[0-9]+)?(\\.dev[0-9]+)?$", coalesce(var.agent_version, "x")))
    error_message = "agent_version must be an exact PEP 440 version such as 0.1.0 (no ranges: every VM runs the same agent)."
  }
}

variable "agent_wheel_sha256" {
  description = "SHA-256 of the agent's wheel of agent_version on pip_index_url (hex, its line in dist/SHA256SUMS): the index install refuses any other file. Required with agent_version."
  type        = string
  default     = null

  validation {
    condition     = var.agent_wheel_sha256 == null || can(regex("^[0-9a-f]{64}$", coalesce(var.agent_wheel_sha256, "x")))
    error_message = "agent_wheel_sha256 must be 64 lowercase hex digits (sha256sum's output)."
  }

  validation {
    condition     = (var.agent_version == null) == (var.agent_wheel_sha256 == null)
    error_message = "agent_wheel_sha256 must be set together with agent_version, and only then: the index install is hashed."
  }
}

variable "pip_index_url" {
  description = "Package index (PEP 503 simple API) for the index install (agent_version): the agent, uv and the locked dependencies, all checked against their hashes; null means PyPI. Unused with agent_wheelhouse_url."
  type        = string
  default     = null

  validation {
    condition     = var.pip_index_url == null || can(regex("^https://[^\\s/]+(/\\S*)?$", coalesce(var.pip_index_url, "x")))
    error_message = "pip_index_url must be an https:// URL."
  }
}

variable "agent_extras" {
  description = "Extras of the agent to install (`vision`, `gcs`). `gcs` is added by itself when output_uri is gs://. With agent_wheelhouse_url the wheelhouse must hold them (`make dist EXTRAS=gcs,vision`)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.agent_extras : contains(["gcs", "vision"], e)])
    error_message = "agent_extras may only list gcs and vision."
  }
}

# --- The agent's configuration (notraining-* metadata attributes) --------------------

variable "register_url" {
  description = "Saturno URL that receives the boot report (agent key register_url)."
  type        = string

  validation {
    condition     = can(regex("^https?://[^\\s/]+(/\\S*)?$", var.register_url))
    error_message = "register_url must be an http:// or https:// URL."
  }
}

variable "done_url" {
  description = "Saturno URL that receives the end report (agent key done_url)."
  type        = string

  validation {
    condition     = can(regex("^https?://[^\\s/]+(/\\S*)?$", var.done_url))
    error_message = "done_url must be an http:// or https:// URL."
  }
}

variable "auth_mode" {
  description = "How the receiver checks Saturno's token: `jwt` (HS256, the secret is the JWT key) or `static` (the secret is the token)."
  type        = string
  default     = "jwt"

  validation {
    condition     = contains(["jwt", "static"], var.auth_mode)
    error_message = "auth_mode must be jwt or static."
  }
}

variable "jwt_audience" {
  description = "When set, JWTs from Saturno must carry this `aud` (agent key jwt_audience)."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_audience == null || length(trimspace(coalesce(var.jwt_audience, " "))) > 0
    error_message = "jwt_audience must be null or a non-empty string."
  }
}

variable "identity_audience" {
  description = "When set, the boot report carries the VM's Google-signed identity token for this audience, so Saturno can verify which VM calls (agent key identity_audience)."
  type        = string
  default     = null

  validation {
    condition     = var.identity_audience == null || length(trimspace(coalesce(var.identity_audience, " "))) > 0
    error_message = "identity_audience must be null or a non-empty string."
  }
}

variable "port" {
  description = "TCP port of the receiver (agent key port); the firewall rule opens it."
  type        = number
  default     = 80

  validation {
    condition     = var.port == floor(var.port) && var.port >= 1 && var.port <= 65535
    error_message = "port must be a whole number from 1 to 65535."
  }
}

variable "idle_timeout" {
  description = "With no job this long after the receiver is ready, the agent reports and ends (agent key idle_timeout). Seconds or a number with s, m or h."
  type        = string
  default     = "30m"

  validation {
    condition     = can(regex("^[0-9]*[1-9][0-9]*[smh]?$", var.idle_timeout))
    error_message = "idle_timeout must be above zero, as seconds or a whole number with s, m or h (for example 30m)."
  }
}

variable "job_timeout" {
  description = "A job running longer is cancelled and reported `timeout` (agent key job_timeout). Seconds or a number with s, m or h."
  type        = string
  default     = "2h"

  validation {
    condition     = can(regex("^[0-9]*[1-9][0-9]*[smh]?$", var.job_timeout))
    error_message = "job_timeout must be above zero, as seconds or a whole number with s, m or h (for example 2h)."
  }
}

variable "shutdown_grace" {
  description = "Time Saturno has to stop the VM after the end report, before the agent stops it (agent key shutdown_grace). Seconds or a number with s, m or h."
  type        = string
  default     = "2m"

  validation {
    condition     = can(regex("^[0-9]+[smh]?$", var.shutdown_grace))
    error_message = "shutdown_grace must be seconds or a whole number with s, m or h (for example 2m)."
  }
}

variable "notify_deadline" {
  description = "How long a report to Saturno is retried (agent key notify_deadline). Seconds or a number with s, m or h."
  type        = string
  default     = "15m"

  validation {
    condition     = can(regex("^[0-9]*[1-9][0-9]*[smh]?$", var.notify_deadline))
    error_message = "notify_deadline must be above zero, as seconds or a whole number with s, m or h (for example 15m)."
  }
}

variable "self_stop" {
  description = "How the agent ends its VM after shutdown_grace (agent key self_stop): `stop` or `delete` through the Compute API (the service account gets only that permission), `poweroff` or `none` (then systemd powers the VM off when the agent exits)."
  type        = string
  default     = "stop"

  validation {
    condition     = contains(["stop", "delete", "poweroff", "none"], var.self_stop)
    error_message = "self_stop must be stop, delete, poweroff or none."
  }
}

variable "output_uri" {
  description = "Where results go (agent key output_uri): `gs://BUCKET/PREFIX` (the service account may write there) or `file://PATH`; null keeps the agent's default under its state directory."
  type        = string
  default     = null

  validation {
    condition     = var.output_uri == null || can(regex("^(gs://[a-z0-9][-a-z0-9_.]{1,220}[a-z0-9](/\\S*)?|file:///\\S*)$", coalesce(var.output_uri, "x")))
    error_message = "output_uri must be gs://BUCKET[/PREFIX] or file:///PATH."
  }
}

variable "allowed_url_hosts" {
  description = "host[:port] entries that job URLs may name even when they resolve to private addresses (agent key allowed_url_hosts)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for h in var.allowed_url_hosts : can(regex("^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?$", h))
    ])
    error_message = "allowed_url_hosts must be host or host:port entries (IPv6 literals in brackets), without scheme or path."
  }
}

variable "max_body_bytes" {
  description = "Receiver request body limit in bytes (agent key max_body_bytes); null keeps the agent's default."
  type        = number
  default     = null

  validation {
    condition     = var.max_body_bytes == null || try(var.max_body_bytes == floor(var.max_body_bytes) && var.max_body_bytes > 0, false)
    error_message = "max_body_bytes must be null or a whole number above zero."
  }
}

variable "max_download_bytes" {
  description = "Limit in bytes on all downloads of one job together (agent key max_download_bytes); null keeps the agent's default. Keep it well under the boot disk."
  type        = number
  default     = null

  validation {
    condition     = var.max_download_bytes == null || try(var.max_download_bytes == floor(var.max_download_bytes) && var.max_download_bytes > 0, false)
    error_message = "max_download_bytes must be null or a whole number above zero."
  }
}

variable "processor" {
  description = "Which processor runs the job (agent key processor); null keeps the agent's default."
  type        = string
  default     = null

  validation {
    condition     = var.processor == null || can(regex("^[a-z][a-z0-9_.-]*$", coalesce(var.processor, "x")))
    error_message = "processor must be null or a processor name (lowercase letters, digits, '_', '.', '-')."
  }
}

# --- Secrets and IAM -----------------------------------------------------------------

variable "secret_version" {
  description = "Version of the auth secret the agent reads at start (`latest` or a version number). Add versions outside Terraform so the value never lands in the state: `gcloud secrets versions add`."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.secret_version))
    error_message = "secret_version must be latest or a version number."
  }
}

variable "saturno_service_account" {
  description = "Email of the service account Saturno creates VMs with; it is allowed to attach the agent's service account (roles/iam.serviceAccountUser on that account only). Null: grant it yourself."
  type        = string
  default     = null

  validation {
    condition     = var.saturno_service_account == null || can(regex("^[a-z0-9][-a-z0-9_.]*@[-a-z0-9.]+$", coalesce(var.saturno_service_account, "x")))
    error_message = "saturno_service_account must be null or a service account email."
  }
}

variable "grant_bucket_access" {
  description = "Grant the agent's service account read access to the wheelhouse's bucket (gs:// agent_wheelhouse_url) and object read/write access to the output bucket (gs:// output_uri)."
  type        = bool
  default     = true
}

variable "serial_port_logging" {
  description = "Send each VM's serial console, the agent's JSON log lines included, to Cloud Logging (metadata serial-port-logging-enable), so they outlive the VM. Turn off only where the project's policy forbids it."
  type        = bool
  default     = true
}
