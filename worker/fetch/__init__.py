"""worker.fetch.client."""
