from django.db import migrations, models


def copy_workflow_definitions(apps, schema_editor):
    """Give each existing execution its workflow's current definition: the best known
    stand-in for the one it was created with."""
    Workflow = apps.get_model("executions", "Workflow")
    Execution = apps.get_model("executions", "Execution")
    for workflow in Workflow.objects.only("id", "definition").iterator():
        Execution.objects.filter(workflow_id=workflow.id).update(definition=workflow.definition)


class Migration(migrations.Migration):

    dependencies = [
        ("executions", "0003_leases"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="definition",
            field=models.JSONField(
                default=dict, help_text="the workflow's definition when this was created"
            ),
            preserve_default=False,
        ),
        migrations.RunPython(copy_workflow_definitions, migrations.RunPython.noop, elidable=True),
    ]
