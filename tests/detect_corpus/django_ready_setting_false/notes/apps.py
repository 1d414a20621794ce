from django.apps import AppConfig
from django.conf import settings
from django.core.management import call_command


class NotesConfig(AppConfig):
    name = "notes"

    def ready(self) -> None:
        if settings.AUTO_MIGRATE:
            call_command("migrate")
