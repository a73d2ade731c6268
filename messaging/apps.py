from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from django.conf import settings

        from messaging.delivery import fanout
        from messaging.domain import events, signals  # noqa: F401  (signals: session-ending hooks)
        from messaging.jobs import embedded, gauges

        # The domain publishes committed changes; the delivery layer above it delivers them.
        events.deliver_committed_with(fanout.publish_from_sync_code)
        gauges.register()
        # One process is a whole chat with the embedded defaults: it runs the jobs too.
        if settings.CHAT_EMBEDDED_WORKER and embedded.under_daphne():
            embedded.start_embedded_worker()
