"""The review desk at `/review`, served by `triage serve`: people clear the review queue here.

Server-rendered pages (Jinja2, autoescaped) and a little plain JavaScript for the keys; every
form works without it. Sign-in exchanges a `review`-scoped API token for a session cookie
(`signin`, `sessions`, `access`); the queue and ticket pages (`desk`) claim, answer and skip
items of the ledger, and an answer is a person's label on the one write-back path; the stats
page (`stats_page`) shows precision measured from audits. docs/review.md is the guide.

This package's own import is light (`state` takes `handle.LedgerHandle` from it); `install`
loads the routes.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Mount the desk's routes and its answers to a missing sign-in and to its own errors."""
    from producer.http.review.routes import install as mount

    mount(app)
