from flask import Flask
from flask_migrate import Migrate, upgrade


def create_app() -> Flask:
    app = Flask(__name__)
    Migrate(app)

    @app.cli.command("deploy")
    def deploy() -> None:
        """Run by hand: flask deploy."""
        upgrade()

    return app
