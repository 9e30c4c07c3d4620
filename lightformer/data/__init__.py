"""Data: dictionaries, prepared (memory-mapped) splits, token-bucketed batching, synthetic tasks."""
