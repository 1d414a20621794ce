#!/bin/sh
set -e
echo "Running release tasks"
alembic upgrade head
