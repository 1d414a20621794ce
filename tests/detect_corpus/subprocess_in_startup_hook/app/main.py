import subprocess

from fastapi import FastAPI


def migrate() -> None:
    subprocess.run(["alembic", "upgrade", "head"], check=True)


app = FastAPI(on_startup=[migrate])
