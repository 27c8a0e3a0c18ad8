"""worker.service."""
