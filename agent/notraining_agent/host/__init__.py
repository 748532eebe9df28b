"""Edges with the host: systemd, powering off, the guest-attribute state, metadata watches."""
