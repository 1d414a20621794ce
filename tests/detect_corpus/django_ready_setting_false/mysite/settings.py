import os

INSTALLED_APPS = ["notes"]
AUTO_MIGRATE = os.environ.get("AUTO_MIGRATE", "") == "1"
