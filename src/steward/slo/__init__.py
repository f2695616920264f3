"""Service-level objectives from `slo.toml`: figures over rolling windows of stored runs, and
multi-window multi-burn-rate alerts sent as signed webhooks."""
