"""The ASGI application for uvicorn workers: settings from the environment."""

from api.app import create_app

app = create_app()
