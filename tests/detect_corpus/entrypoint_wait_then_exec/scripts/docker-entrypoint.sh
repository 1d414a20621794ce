#!/bin/sh
set -e
if [ -n "$DATABASE_URL" ]; then
  until pg_isready -d "$DATABASE_URL"; do echo waiting; sleep 1; done
fi
exec "$@"
