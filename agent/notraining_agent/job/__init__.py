"""One job: its spec, the guarded downloads, safe extraction, the processor run and the output."""
