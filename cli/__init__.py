"""The `triage` command line and the demo; it may import anything, and nothing imports it."""
