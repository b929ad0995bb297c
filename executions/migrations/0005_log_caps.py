from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("executions", "0004_execution_definition"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="log_lines",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="execution",
            name="log_bytes",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="execution",
            name="log_cut",
            field=models.BooleanField(default=False),
        ),
    ]
