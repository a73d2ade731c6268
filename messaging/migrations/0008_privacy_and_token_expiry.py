"""Privacy by default (who may see a member's presence and reading), settings, token expiry.

Additive only: new columns are nullable or have a database default, so the code of the
previous release keeps inserting rows while this one rolls out.
"""

from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

# Tokens issued before expiry existed keep working this long after the upgrade.
LEGACY_TOKEN_DAYS = 90


def reveal_members_who_spoke(apps, schema_editor):
    """Mark the members who created a conversation or wrote in it as visible to the others."""
    Membership = apps.get_model("messaging", "Membership")
    Message = apps.get_model("messaging", "Message")
    wrote = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"), sender_id=OuterRef("user_id")
    )
    Membership.objects.filter(
        Q(conversation__created_by_id=models.F("user_id")) | Exists(wrote)
    ).update(visible_to_members=True)


def expire_legacy_tokens(apps, schema_editor):
    """Give tokens issued before expiry existed a lifetime from now."""
    AuthToken = apps.get_model("messaging", "AuthToken")
    AuthToken.objects.filter(expires_at__isnull=True).update(
        expires_at=timezone.now() + timedelta(days=LEGACY_TOKEN_DAYS)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("messaging", "0007_presence_per_process"),
    ]

    operations = [
        migrations.CreateModel(
            name="UserSettings",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="chat_settings",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("show_presence", models.BooleanField(default=True)),
                ("send_read_receipts", models.BooleanField(default=True)),
                ("push", models.BooleanField(default=True)),
                ("email", models.BooleanField(default=True)),
                ("email_delay_minutes", models.PositiveSmallIntegerField(default=10)),
                ("previews", models.BooleanField(default=True)),
            ],
        ),
        migrations.AddField(
            model_name="authtoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="membership",
            name="visible_to_members",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunPython(reveal_members_who_spoke, migrations.RunPython.noop),
        migrations.RunPython(expire_legacy_tokens, migrations.RunPython.noop),
    ]
