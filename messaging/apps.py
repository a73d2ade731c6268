from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from messaging.delivery import fanout
        from messaging.domain import events, signals  # noqa: F401  (signals: session-ending hooks)

        # The domain publishes committed changes; the delivery layer above it delivers them.
        events.deliver_committed_with(fanout.publish_from_sync_code)
