log() { echo "[release] $*"; }

run_migrations() {
  python manage.py migrate --noinput
}
