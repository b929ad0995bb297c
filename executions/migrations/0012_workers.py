"""The service's processes as their heartbeats describe them, and each run of an
execution with the process that ran it: new tables only, so the feed's
triggers on executions_execution (migration 0009) stay as they are.
"""

import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('executions', '0011_request_id'),
    ]

    operations = [
        migrations.CreateModel(
            name='Worker',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=200)),
                ('kind', models.CharField(choices=[('server', 'Server'), ('worker', 'Worker')], max_length=16)),
                ('runs_executions', models.BooleanField(default=True, help_text='it runs executions (a worker, or a server in the embedded mode)')),
                ('host', models.CharField(max_length=200)),
                ('pid', models.PositiveIntegerField()),
                ('version', models.CharField(blank=True, default='', max_length=64)),
                ('started_at', models.DateTimeField()),
                ('last_seen_at', models.DateTimeField(help_text='its latest heartbeat')),
                ('executions_running', models.PositiveIntegerField(default=0, help_text='the executions it ran at its latest heartbeat')),
                ('stopped_at', models.DateTimeField(blank=True, help_text='when it said it stopped; empty if it never did', null=True)),
            ],
            options={
                'ordering': ['-started_at'],
                'indexes': [models.Index(fields=['last_seen_at'], name='worker_last_seen_idx'), models.Index(fields=['name', 'started_at'], name='worker_name_idx')],
            },
        ),
        migrations.CreateModel(
            name='ExecutionRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveSmallIntegerField(help_text='1 for the first run, as Execution.runs')),
                ('worker_name', models.CharField(blank=True, default='', max_length=200)),
                ('started_at', models.DateTimeField()),
                ('ended_at', models.DateTimeField(blank=True, null=True)),
                ('outcome', models.CharField(blank=True, choices=[('completed', 'Completed'), ('failed', 'Failed'), ('cancelled', 'Cancelled'), ('requeued', 'Requeued')], default='', max_length=16)),
                ('reason', models.CharField(blank=True, default='', max_length=500)),
                ('execution', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='run_rows', to='executions.execution')),
                ('worker', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='runs', to='executions.worker')),
            ],
            options={
                'ordering': ['execution', 'number'],
                'constraints': [models.UniqueConstraint(fields=('execution', 'number'), name='unique_execution_run')],
            },
        ),
    ]
