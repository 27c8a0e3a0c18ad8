"""worker.commands."""
