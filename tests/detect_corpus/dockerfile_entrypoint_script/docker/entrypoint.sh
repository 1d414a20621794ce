#!/bin/sh
set -e

wait_for_db() {
  until pg_isready -d "$DATABASE_URL"; do sleep 1; done
}

wait_for_db
alembic upgrade head

exec "$@"
