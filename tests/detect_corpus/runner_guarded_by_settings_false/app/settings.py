from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="")

    database_url: str = "sqlite:///./app.db"
    AUTO_MIGRATE: bool = Field(default=False, description="run alembic at start-up")


@lru_cache
def get_settings() -> Settings:
    return Settings()
