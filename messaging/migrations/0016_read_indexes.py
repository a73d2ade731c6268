"""Indexes for heavy users' reads (PostgreSQL: other databases ignore `include`).

changes_idx holds the message id too, so a sync page's ids come from the index alone;
conversation_activity_idx gives the inbox each conversation's activity without its row.
Building them takes a few seconds per million messages, during which sends wait.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0015_user_language'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='message',
            name='changes_idx',
        ),
        migrations.AddIndex(
            model_name='conversation',
            index=models.Index(fields=['id'], include=('last_activity_at',), name='conversation_activity_idx'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(fields=['conversation', 'seq'], include=('id',), name='changes_idx'),
        ),
    ]
