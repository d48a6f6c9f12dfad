"""Write-back: the one path that records a decision in every sink, the dead-letter list, and the
targets (result store, event stream, callback, ticket systems, index)."""
