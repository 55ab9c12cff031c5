"""HTTP routes: inference, the model catalogue, and operations (health, readiness, metrics)."""
