"""worker.publish.render."""
