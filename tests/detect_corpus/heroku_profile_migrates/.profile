# runs before every dyno
export FLASK_APP=app
flask db upgrade
