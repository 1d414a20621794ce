from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env")

    auto_migrate: bool = True


settings = Settings()
app = FastAPI()


@app.on_event("startup")
def startup() -> None:
    if settings.auto_migrate:
        command.upgrade(Config("alembic.ini"), "head")
