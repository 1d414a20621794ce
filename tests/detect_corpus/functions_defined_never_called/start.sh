#!/bin/sh
migrate() {
  alembic upgrade head
}
exec uvicorn app.main:app --port "$PORT"
