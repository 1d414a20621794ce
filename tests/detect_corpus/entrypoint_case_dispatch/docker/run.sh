#!/bin/bash
case "$1" in
  worker)
    exec celery -A app.tasks worker
    ;;
  web)
    alembic upgrade head
    exec uvicorn app.main:app --host 0.0.0.0
    ;;
  *)
    exec "$@"
    ;;
esac
