"""The write-back targets, each one step with one interface (`base.Target`): the result store,
the event stream, the signed callback, the ticket's own system (GitHub, Zendesk, Jira) and the
neighbour index. `worker.writeback.path` runs them in that order."""
