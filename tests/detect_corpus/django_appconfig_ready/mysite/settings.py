INSTALLED_APPS = ["notes.apps.NotesConfig"]
