from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("executions", "0005_log_caps"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="redispatches",
            field=models.PositiveIntegerField(
                default=0,
                help_text="times it was dispatched again since it was last queued to run",
            ),
        ),
    ]
