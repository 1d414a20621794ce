from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    database_url: str = "sqlite:///app.db"
    AUTO_MIGRATE: bool = True


settings = Settings()
