from django.apps import AppConfig
from django.core.management import call_command


class NotesConfig(AppConfig):
    name = "notes"

    def ready(self) -> None:
        call_command("migrate", interactive=False)
