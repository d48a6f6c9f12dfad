"""The HTTP app (`triage serve`): webhooks and our ticket API. Imports FastAPI; `producer` does not.

uvicorn --factory producer.http:create_app
"""

from producer.http.app import create_app

__all__ = ["create_app"]
