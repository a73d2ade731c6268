"""Presence kept alive by one heartbeat row per process instead of one write per socket.

Rows of sockets open during the migration get no process: the next sweep removes them,
and their clients, reconnecting after the deploy, are recorded again.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("messaging", "0006_search_index_without_pending_list")]

    operations = [
        migrations.CreateModel(
            name="PresenceProcess",
            fields=[
                ("id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("heartbeat_at", models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.RemoveIndex(
            model_name="socketpresence", name="messaging_s_user_id_d883e7_idx"
        ),
        migrations.RemoveField(model_name="socketpresence", name="heartbeat_at"),
        migrations.AddField(
            model_name="socketpresence",
            name="process",
            field=models.CharField(db_index=True, default="", max_length=64),
            preserve_default=False,
        ),
    ]
