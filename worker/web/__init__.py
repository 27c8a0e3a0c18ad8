"""worker.web."""
