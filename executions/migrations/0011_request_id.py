"""The id of the request that created an execution, for the logs of its runs.

SQLite remakes executions_execution to add a column, which drops the feed's
triggers (migration 0009): they are created again after the change, and
again after its reversal.
"""

from django.db import migrations, models

from executions.migrations import _feed_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("executions", "0010_stream_caps"),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, _feed_triggers.recreate_on_sqlite),
        migrations.AddField(
            model_name="execution",
            name="request_id",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.RunPython(_feed_triggers.recreate_on_sqlite, migrations.RunPython.noop),
    ]
