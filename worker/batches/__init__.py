"""Classify batches: how they fill, how they are sent again when a process dies, and the first
pass over one batch."""
