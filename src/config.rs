//! The sidecar's own settings (config/muster.yaml, env, flags).
