#!/bin/bash
set -e
RUN_MIGRATIONS="${RUN_MIGRATIONS:-1}"
if [ "$RUN_MIGRATIONS" = "1" ]; then
  echo "applying migrations"
  alembic upgrade head
fi
exec "$@"
