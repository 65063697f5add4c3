"""WSGI entry point: ``gunicorn wsgi:app`` (configuration from $SESAME_CONFIG)."""
from idp import create_app

app = create_app()
