"""worker.store.state."""
