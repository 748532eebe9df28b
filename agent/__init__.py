"""notraining-agent: one GCE VM, one job, then the VM stops."""
