# Each index of messaging_message is one more write for every message sent. The
# conversation's and the sender's lead other indexes already (history_idx, changes_idx,
# one_message_per_client_id); reply_to is never looked up; hidden_by is indexed where set.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The foreign keys' own indexes, named as Django named them.
DROPPED = [
    ("conversation_id", "3db4d3d1"),
    ("hidden_by_id", "26b22d98"),
    ("reply_to_id", "f28e3285"),
    ("sender_id", "7a7088e6"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0016_read_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The indexes go, the foreign keys stay: AlterField alone would drop and re-add each
        # key, checking every message again under a lock.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="messaging.conversation",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="hidden_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="reply_to",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="messaging.message",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="sender",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages_sent",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "messaging_message_{column}_{suffix}"',
                    reverse_sql=(
                        f'CREATE INDEX "messaging_message_{column}_{suffix}" '
                        f'ON "messaging_message" ("{column}")'
                    ),
                )
                for column, suffix in DROPPED
            ],
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("hidden_by__isnull", False)),
                fields=["hidden_by"],
                name="hidden_by_idx",
            ),
        ),
    ]
