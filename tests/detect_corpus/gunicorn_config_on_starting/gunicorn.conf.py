import subprocess

bind = "0.0.0.0:8000"
workers = 2


def on_starting(server):
    subprocess.run(["alembic", "upgrade", "head"], check=True)
