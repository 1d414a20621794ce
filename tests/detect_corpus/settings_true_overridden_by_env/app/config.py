from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    auto_migrate: bool = True


settings = Settings()
