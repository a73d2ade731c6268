from django.apps import AppConfig


class TchatConfig(AppConfig):
    name = "tchat"
