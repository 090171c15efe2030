"""The bare endpoint: the least a Flask app under our gunicorn config can do.

    BIND=127.0.0.1:9000 gunicorn -c deploy/gunicorn.conf.py 'bench.bare_app:app'

Its requests/s is the HTTP ceiling the services' endpoints are compared with.
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "ok\n"
