#!/bin/sh
set -e
case "$1" in
  migrate)
    exec alembic upgrade head
    ;;
  *)
    exec "$@"
    ;;
esac
