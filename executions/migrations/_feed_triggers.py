"""The feed's SQLite triggers (migration 0009), for migrations that remake
executions_execution on SQLite and so drop them."""

import importlib

TRIGGERS = (
    "executions_feed_mark_keep",
    "executions_feed_mark_update",
    "executions_feed_mark_insert",
)


def recreate_on_sqlite(apps, schema_editor) -> None:
    """Create the feed's triggers again on SQLite (dropping any left); elsewhere nothing."""
    if schema_editor.connection.vendor != "sqlite":
        return
    feed_marks = importlib.import_module("executions.migrations.0009_feed_marks")
    for name in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)
    # Migration 0009's statements after the clock table and its row: the triggers.
    for statement in feed_marks.SQLITE[2:]:
        schema_editor.execute(statement, params=None)
