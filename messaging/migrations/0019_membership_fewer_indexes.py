# Who sees whom is read from the memberships of the users online, at every handshake and
# presence change: with whether each member is shown in the index, from the index alone.
# The foreign keys' own indexes repeat the first column of one_membership and of
# memberships_of_user, and each is one more write for every member added.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The foreign keys' own indexes, named as Django named them.
DROPPED = [
    ("conversation_id", "36fa1e7e"),
    ("user_id", "7a7ab7d8"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0018_changestream_last_conversation"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The new index first: lookups by user are never without one.
        migrations.AddIndex(
            model_name="membership",
            index=models.Index(
                fields=["user", "conversation"],
                include=("visible_to_members",),
                name="memberships_of_user",
            ),
        ),
        migrations.RemoveIndex(
            model_name="membership",
            name="messaging_m_user_id_2e93f5_idx",
        ),
        # The indexes go, the foreign keys stay: AlterField alone would drop and re-add each
        # key, checking every membership again under a lock.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="membership",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="messaging.conversation",
                    ),
                ),
                migrations.AlterField(
                    model_name="membership",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "messaging_membership_{column}_{suffix}"',
                    reverse_sql=(
                        f'CREATE INDEX "messaging_membership_{column}_{suffix}" '
                        f'ON "messaging_membership" ("{column}")'
                    ),
                )
                for column, suffix in DROPPED
            ],
        ),
    ]
