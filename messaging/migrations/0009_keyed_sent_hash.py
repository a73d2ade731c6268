"""Key sent_hash with SECRET_KEY, and keep none for messages whose first text is gone.

A plain SHA-256 of a short message can be reversed by trying likely texts, so a database
dump told what deleted messages had said. Rows that are neither deleted nor edited still
hold the text first sent: their hash is made again, keyed (Message.hash_body). Deleted,
hidden and purged rows lose their hash, as they now do when that happens.

Edited rows lose it too: their first text is gone, so it cannot be hashed again with the
key. A retry of an edited message's client_id is then acked as the message is now without
comparing bodies (a retry with another body is no longer a `conflict`); retries come within
minutes of a send, so this only touches a client retrying across the upgrade.

Rows written by the previous release while this runs keep a plain hash, and a retry of one
of them with the same body is answered `conflict`: again only across the upgrade.
"""

import hashlib

from django.conf import settings
from django.db import migrations
from django.utils.crypto import salted_hmac

# Message.hash_body's salt when this migration was written.
SENT_HASH_SALT = "messaging.Message.sent_hash"
BATCH = 1000


def _rehash(apps, hash_body) -> None:
    Message = apps.get_model("messaging", "Message")
    Message.objects.exclude(deleted_at=None, edited_at=None).exclude(sent_hash="").update(
        sent_hash=""
    )
    kept = Message.objects.filter(deleted_at=None, edited_at=None).order_by("pk")
    last = 0
    while True:
        rows = list(kept.filter(pk__gt=last).only("pk", "body")[:BATCH])
        if not rows:
            return
        for row in rows:
            row.sent_hash = hash_body(row.body)
        Message.objects.bulk_update(rows, ["sent_hash"])
        last = rows[-1].pk


def key_the_hashes(apps, schema_editor) -> None:
    """Hash the first text of untouched rows with the key; empty the others' hashes."""
    _rehash(
        apps,
        lambda body: salted_hmac(
            SENT_HASH_SALT, body, secret=settings.SECRET_KEY, algorithm="sha256"
        ).hexdigest(),
    )


def unkey_the_hashes(apps, schema_editor) -> None:
    """Go back to plain SHA-256 for untouched rows; the others keep no hash."""
    _rehash(apps, lambda body: hashlib.sha256(body.encode("utf-8")).hexdigest())


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0008_privacy_and_token_expiry"),
    ]

    operations = [
        migrations.RunPython(key_the_hashes, unkey_the_hashes, elidable=True),
    ]
