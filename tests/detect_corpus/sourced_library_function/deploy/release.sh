#!/bin/sh
set -e
. ./deploy/lib.sh
log "release starting"
run_migrations
