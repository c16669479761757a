"""Operations: the queue where producers meet the dispatcher, the journal, routes, and
the tasks that dispatch, roll out and reconcile (see docs/architecture.md)."""
