#!/bin/bash
set -e
for f in migrations/*.sql; do
  echo "applying $f"
done
psql "$DATABASE_URL" < migrations/all.sql
