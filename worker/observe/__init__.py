"""Watching the workers: the log format, task timing, ticket events, metrics, the heartbeat,
`triage status` and the traffic `triage drift` reads."""
