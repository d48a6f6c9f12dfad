"""`triage demo`: the whole job on one machine (embedded Redis, local Qdrant, packaged model)."""
