"""worker.listing.lister."""
