# The module's inputs. Their validation rules live in modules/settings/variables.tf,
# which declares the same variables (tests/infra/test_terraform_hcl.py checks both agree):
# there `terraform test` exercises every rule offline, and a bad value stops the plan.

# --- Project and names -------------------------------------------------------------

variable "project_id" {
  description = "ID of the project that holds the template, the service account, the secret and the firewall rule."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name. Saturno must name each VM it creates `<name_prefix>-<something>`: the self-stop permission is granted only on instances whose names start that way."
  type        = string
  default     = "notraining"
}

variable "labels" {
  description = "Labels set on the VMs, their boot disks and the secret."
  type        = map(string)
  default     = {}
}

# --- The VM --------------------------------------------------------------------------

variable "machine_type" {
  description = "Machine type of each VM."
  type        = string
  default     = "e2-standard-2"
}

variable "source_image" {
  description = "Boot image: an Ubuntu LTS release of 24.04 or later (the agent needs Python 3.11 or later), as an image or image family path."
  type        = string
  default     = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
}

variable "boot_disk_size_gb" {
  description = "Size of the boot disk in GB. It holds the OS, the agent's venv and the job's downloads (max_download_bytes)."
  type        = number
  default     = 20
}

variable "boot_disk_type" {
  description = "Type of the boot disk. It must fit machine_type's series (checked): C4, N4 and the other fourth-generation series boot from hyperdisk-balanced only, E2, N1, N2 and N2D from pd-* disks only."
  type        = string
  default     = "pd-balanced"
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
}

variable "deadman_margin" {
  description = "Time added to job_timeout + idle_timeout for the systemd dead-man's switch that powers a VM off after boot. It must cover boot, install, notify_deadline and shutdown_grace (checked)."
  type        = string
  default     = "30m"
}

# --- Network -------------------------------------------------------------------------

variable "network" {
  description = "Network (name or self link) of the VMs and of the firewall rule. A name is looked up in the subnetwork's project (Shared VPC: the host project). With a subnetwork the VMs join the subnetwork's network, which must be this one."
  type        = string
  default     = "default"
}

variable "subnetwork" {
  description = "Subnetwork (name or self link) of the VMs; null uses the network's subnetwork in the VM's region. Without an external IP the subnetwork needs Private Google Access (Google APIs) and Cloud NAT or a package mirror (install)."
  type        = string
  default     = null
}

variable "subnetwork_project" {
  description = "Project of the network, the subnetwork and the firewall rule (Shared VPC host project); null means the project named by a subnetwork or network self link, else project_id."
  type        = string
  default     = null
}

variable "region" {
  description = "Region of the subnetwork, needed when subnetwork is a name (a self link names its region); Saturno creates the VMs in zones of this region."
  type        = string
  default     = null
}

variable "network_tags" {
  description = "Network tags of the VMs (the receiver's firewall rule targets the service account, not these)."
  type        = list(string)
  default     = ["notraining-agent"]
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
}

# --- The agent package ---------------------------------------------------------------

variable "agent_wheelhouse_url" {
  description = "The release's wheelhouse (`make dist` writes dist/notraining_agent-VERSION-wheelhouse[-EXTRAS].tar): `gs://BUCKET/PATH/NAME.tar`, read with the VM's service account, or an https URL. The VM installs the agent and every locked dependency from it with no index and no apt. Set this or agent_version."
  type        = string
  default     = null
}

variable "agent_wheelhouse_sha256" {
  description = "SHA-256 of the wheelhouse at agent_wheelhouse_url (hex, its line in dist/SHA256SUMS); the boot recipe refuses any other file. Required with agent_wheelhouse_url."
  type        = string
  default     = null
}

variable "agent_version" {
  description = "Pinned version of the notraining-agent distribution to install from pip_index_url, with its dependencies pinned and hashed by the repository's lock (requirements/). Set this or agent_wheelhouse_url."
  type        = string
  default     = null
}

variable "agent_wheel_sha256" {
  description = "SHA-256 of the agent's wheel of agent_version on pip_index_url (hex, its line in dist/SHA256SUMS): the index install refuses any other file. Required with agent_version."
  type        = string
  default     = null
}

variable "pip_index_url" {
  description = "Package index (PEP 503 simple API) for the index install (agent_version): the agent, uv and the locked dependencies, all checked against their hashes; null means PyPI. Unused with agent_wheelhouse_url."
  type        = string
  default     = null
}

variable "agent_extras" {
  description = "Extras of the agent to install (`vision`, `gcs`). `gcs` is added by itself when output_uri is gs://. With agent_wheelhouse_url the wheelhouse must hold them (`make dist EXTRAS=gcs,vision`)."
  type        = list(string)
  default     = []
}

# --- The agent's configuration (notraining-* metadata attributes) --------------------

variable "register_url" {
  description = "Saturno URL that receives the boot report (agent key register_url)."
  type        = string
}

variable "done_url" {
  description = "Saturno URL that receives the end report (agent key done_url)."
  type        = string
}

variable "auth_mode" {
  description = "How the receiver checks Saturno's token: `jwt` (HS256, the secret is the JWT key) or `static` (the secret is the token)."
  type        = string
  default     = "jwt"
}

variable "jwt_audience" {
  description = "When set, JWTs from Saturno must carry this `aud` (agent key jwt_audience)."
  type        = string
  default     = null
}

variable "identity_audience" {
  description = "When set, the boot report carries the VM's Google-signed identity token for this audience, so Saturno can verify which VM calls (agent key identity_audience)."
  type        = string
  default     = null
}

variable "port" {
  description = "TCP port of the receiver (agent key port); the firewall rule opens it."
  type        = number
  default     = 80
}

variable "idle_timeout" {
  description = "With no job this long after the receiver is ready, the agent reports and ends (agent key idle_timeout). Seconds or a number with s, m or h."
  type        = string
  default     = "30m"
}

variable "job_timeout" {
  description = "A job running longer is cancelled and reported `timeout` (agent key job_timeout). Seconds or a number with s, m or h."
  type        = string
  default     = "2h"
}

variable "shutdown_grace" {
  description = "Time Saturno has to stop the VM after the end report, before the agent stops it (agent key shutdown_grace). Seconds or a number with s, m or h."
  type        = string
  default     = "2m"
}

variable "notify_deadline" {
  description = "How long a report to Saturno is retried (agent key notify_deadline). Seconds or a number with s, m or h."
  type        = string
  default     = "15m"
}

variable "self_stop" {
  description = "How the agent ends its VM after shutdown_grace (agent key self_stop): `stop` or `delete` through the Compute API (the service account gets only that permission), `poweroff` or `none` (then systemd powers the VM off when the agent exits)."
  type        = string
  default     = "stop"
}

variable "output_uri" {
  description = "Where results go (agent key output_uri): `gs://BUCKET/PREFIX` (the service account may write there) or `file://PATH`; null keeps the agent's default under its state directory."
  type        = string
  default     = null
}

variable "allowed_url_hosts" {
  description = "host[:port] entries that job URLs may name even when they resolve to private addresses (agent key allowed_url_hosts)."
  type        = list(string)
  default     = []
}

variable "max_body_bytes" {
  description = "Receiver request body limit in bytes (agent key max_body_bytes); null keeps the agent's default."
  type        = number
  default     = null
}

variable "max_download_bytes" {
  description = "Limit in bytes on all downloads of one job together (agent key max_download_bytes); null keeps the agent's default. Keep it well under the boot disk."
  type        = number
  default     = null
}

variable "processor" {
  description = "Which processor runs the job (agent key processor); null keeps the agent's default."
  type        = string
  default     = null
}

# --- Secrets and IAM -----------------------------------------------------------------

variable "secret_version" {
  description = "Version of the auth secret the agent reads at start (`latest` or a version number). Add versions outside Terraform so the value never lands in the state: `gcloud secrets versions add`."
  type        = string
  default     = "latest"
}

variable "saturno_service_account" {
  description = "Email of the service account Saturno creates VMs with; it is allowed to attach the agent's service account (roles/iam.serviceAccountUser on that account only). Null: grant it yourself."
  type        = string
  default     = null
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
