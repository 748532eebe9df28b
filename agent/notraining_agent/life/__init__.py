"""The agent's life: start-up wiring, the lifecycle, durable state, reports to Saturno."""
