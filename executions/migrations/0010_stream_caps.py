"""The counts of what an execution's nodes stream (``ctx.stream``), and the
``chunk`` event type.

SQLite remakes executions_execution to add a column, which drops the feed's
triggers (migration 0009): they are created again after the change, and
again after its reversal.
"""

from django.db import migrations, models

from executions.migrations import _feed_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("executions", "0009_feed_marks"),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, _feed_triggers.recreate_on_sqlite),
        migrations.AddField(
            model_name="execution",
            name="stream_bytes",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="execution",
            name="stream_cut",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name="executionevent",
            name="type",
            field=models.CharField(
                choices=[
                    ("status", "Status"),
                    ("node", "Node"),
                    ("log", "Log"),
                    ("chunk", "Chunk"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(_feed_triggers.recreate_on_sqlite, migrations.RunPython.noop),
    ]
