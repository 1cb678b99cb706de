"""The official networks, one per file; attribute names equal the checkpoint keys."""
