from django.db import migrations, models

# Each stream learns the conversation of its last stamp where one of the user's
# conversations holds a change with that stamp: one step down (conversation, seq) per
# membership. A stream left empty (raised by after_restore, or its change removed) is
# filled by the user's next change; until then its reader takes the long way.
LAST_CONVERSATION_FILL = """
UPDATE messaging_changestream SET last_conversation_id = (
    SELECT m.conversation_id FROM messaging_membership m
    WHERE m.user_id = messaging_changestream.user_id AND EXISTS (
        SELECT 1 FROM messaging_message g
        WHERE g.conversation_id = m.conversation_id AND g.seq = messaging_changestream.last_seq
    )
    LIMIT 1
)
WHERE last_seq > 0
"""


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0017_message_fewer_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="changestream",
            name="last_conversation_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunSQL(LAST_CONVERSATION_FILL, migrations.RunSQL.noop),
    ]
