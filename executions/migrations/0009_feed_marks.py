"""Every change of an execution's feed-visible state marks its row (executions.feed).

The marks are written by triggers, so that no statement that changes the
state (a service's save(), a QuerySet.update(), a bulk insert) can leave one
out, and a mark written by the ORM is ignored.

SQLite remakes a table to alter it, which drops its triggers: a later
migration that alters executions_execution on SQLite must create these again
(tests/executions/test_feed.py checks that they exist and work).
"""

from django.conf import settings
from django.db import migrations, models

# The columns whose change the feed sends: executions.feed.FEED_MARKED_FIELDS.
MARKED = ["status", "progress", "message", "execution_time", "started_at", "finished_at"]


def _changed(vendor: str) -> str:
    if vendor == "postgresql":
        new = ", ".join(f"NEW.{column}" for column in MARKED)
        old = ", ".join(f"OLD.{column}" for column in MARKED)
        return f"ROW({new}) IS DISTINCT FROM ROW({old})"
    return " OR ".join(f"NEW.{column} IS NOT OLD.{column}" for column in MARKED)


# PostgreSQL: the mark is the id of the transaction that wrote the change
# (a cursor is a snapshot's xmin; see executions.feed).
POSTGRESQL = [
    f"""
    CREATE FUNCTION executions_feed_mark() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' OR {_changed("postgresql")} THEN
            NEW.feed_mark := pg_current_xact_id()::text::bigint;
        ELSE
            NEW.feed_mark := OLD.feed_mark;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER executions_feed_mark_insert BEFORE INSERT ON executions_execution
    FOR EACH ROW EXECUTE FUNCTION executions_feed_mark()
    """,
    # WHEN spares the function call to the writes that change neither (log lines).
    f"""
    CREATE TRIGGER executions_feed_mark_update BEFORE UPDATE ON executions_execution
    FOR EACH ROW WHEN ({_changed("postgresql")} OR NEW.feed_mark IS DISTINCT FROM OLD.feed_mark)
    EXECUTE FUNCTION executions_feed_mark()
    """,
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER executions_feed_mark_update ON executions_execution",
    "DROP TRIGGER executions_feed_mark_insert ON executions_execution",
    "DROP FUNCTION executions_feed_mark()",
]

# SQLite: writers take turns, so a counter moved inside each write transaction
# is in commit order. Its table is not a model: a test database's flush must
# not set it back.
_NEXT_MARK = """
        UPDATE executions_feed_clock SET value = value + 1 WHERE id = 1;
        UPDATE executions_execution
        SET feed_mark = (SELECT value FROM executions_feed_clock WHERE id = 1)
        WHERE id = NEW.id;
"""
SQLITE = [
    """
    CREATE TABLE executions_feed_clock (
        id integer NOT NULL PRIMARY KEY CHECK (id = 1), value integer NOT NULL
    )
    """,
    "INSERT INTO executions_feed_clock (id, value) VALUES (1, 0)",
    f"""
    CREATE TRIGGER executions_feed_mark_insert AFTER INSERT ON executions_execution
    FOR EACH ROW BEGIN {_NEXT_MARK} END
    """,
    f"""
    CREATE TRIGGER executions_feed_mark_update AFTER UPDATE OF {", ".join(MARKED)}
    ON executions_execution FOR EACH ROW WHEN {_changed("sqlite")}
    BEGIN {_NEXT_MARK} END
    """,
    # A mark the ORM saved goes back to what it was; the triggers' own writes
    # above (the counter's value) are left alone.
    f"""
    CREATE TRIGGER executions_feed_mark_keep AFTER UPDATE OF feed_mark ON executions_execution
    FOR EACH ROW WHEN NEW.feed_mark IS NOT OLD.feed_mark AND NOT ({_changed("sqlite")})
        AND NEW.feed_mark IS NOT (SELECT value FROM executions_feed_clock WHERE id = 1)
    BEGIN
        UPDATE executions_execution SET feed_mark = OLD.feed_mark WHERE id = NEW.id;
    END
    """,
]
SQLITE_REVERSE = [
    "DROP TRIGGER executions_feed_mark_keep",
    "DROP TRIGGER executions_feed_mark_update",
    "DROP TRIGGER executions_feed_mark_insert",
    "DROP TABLE executions_feed_clock",
]


def _run(schema_editor, statements: dict) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in statements:
        raise NotImplementedError(
            f"The executions feed needs PostgreSQL or SQLite, not {vendor}."
        )
    for statement in statements[vendor]:
        schema_editor.execute(statement, params=None)


def create_triggers(apps, schema_editor) -> None:
    _run(schema_editor, {"postgresql": POSTGRESQL, "sqlite": SQLITE})


def drop_triggers(apps, schema_editor) -> None:
    _run(schema_editor, {"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE})


class Migration(migrations.Migration):

    dependencies = [
        ('executions', '0008_execution_tags'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='execution',
            name='feed_mark',
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.AddIndex(
            model_name='execution',
            index=models.Index(fields=['feed_mark', 'id'], name='execution_feed_mark_idx'),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
