"""worker.dedupe.content."""
