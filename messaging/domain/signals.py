"""End sockets when their session ends (logout, password change, deactivation); remove a
file's bytes when its row goes."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from messaging.domain.events import close_event, publish_on_commit, session_group, user_group
from messaging.domain.languages import language_from_browser
from messaging.domain.tokens import tokens_revoke
from messaging.domain.uploads import remove_files
from messaging.models import Upload

log = logging.getLogger(__name__)
User = get_user_model()

CLOSE_SESSION_ENDED = 4401


def _close_groups_on_commit(groups: list[str]) -> None:
    publish_on_commit(close_event(group, CLOSE_SESSION_ENDED) for group in groups)


@receiver(user_logged_in)
def remember_browser_language(sender, request, user, **kwargs) -> None:
    """Keep the language of the browser logged in with (sign-up logs in too), for emails."""
    if request is not None:
        language_from_browser(user=user, request=request)


@receiver(user_logged_out)
def close_session_sockets(sender, request, user, **kwargs) -> None:
    """Close the sockets opened with the session that is logging out."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        _close_groups_on_commit([session_group(session_key)])


@receiver(pre_save, sender=User)
def remember_credentials(sender, instance, **kwargs) -> None:
    """Note the stored password and active flag, to tell afterwards what changed."""
    if instance.pk is None:
        instance._stored_credentials = None
        return
    instance._stored_credentials = (
        User.objects.filter(pk=instance.pk).values_list("password", "is_active").first()
    )


@receiver(post_save, sender=User)
def end_sessions_on_credential_change(sender, instance, created, **kwargs) -> None:
    """On a password change or deactivation, revoke tokens and close every socket."""
    stored = getattr(instance, "_stored_credentials", None)
    if created or stored is None:
        return
    password, was_active = stored
    # Django re-hashes a password at login when its hasher settings change; it clears
    # _password for that save, which is no password change.
    changed_password = password != instance.password and instance._password is not None
    if changed_password or (was_active and not instance.is_active):
        tokens_revoke(user=instance)
        _close_groups_on_commit([user_group(instance.pk)])


@receiver(post_delete, sender=Upload)
def remove_bytes_of_deleted_upload(sender, instance, **kwargs) -> None:
    """Remove an upload's bytes once its row is gone for good, however it went.

    A person deleted, a conversation deleted: the rows go by cascade, and so, after the
    commit, do their files. The purges remove bytes themselves as well; a second delete of
    a name already gone does nothing.
    """
    transaction.on_commit(lambda: remove_files([instance]))
