from django.conf import settings


def chat_settings(request) -> dict:
    """Expose the settings templates need."""
    return {"registration_open": settings.CHAT_REGISTRATION_OPEN}
