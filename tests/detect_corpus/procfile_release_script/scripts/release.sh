#!/usr/bin/env bash
set -euo pipefail
echo "==> release $HEROKU_RELEASE_VERSION"
# migrations
alembic -c alembic.ini upgrade head
echo "done"
