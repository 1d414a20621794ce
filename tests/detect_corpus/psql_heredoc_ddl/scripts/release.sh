#!/bin/bash
set -euo pipefail
psql "$DATABASE_URL" <<'SQL'
ALTER TABLE notes ADD COLUMN IF NOT EXISTS body text;
SQL
