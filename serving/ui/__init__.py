"""The memory inspector: HTML pages under /ui showing what Engram knows about a user and why it
ranks what it ranks (docs/inspector.md). Server-rendered from the services the API uses; its
templates and static files ship in the package."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import Flask

from core.settings import Settings
from serving.ui import session, views
from serving.ui.user_page import Inspector, Offline


def init_app(app: Flask, settings: Settings) -> None:
    """Mount the inspector on the app: its session cookie and its pages."""
    session.configure(app, settings)
    app.register_blueprint(views.bp)
    # A page's reads run side by side (user_page.UserPage.gather): a few threads per process.
    pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="engram-ui")
    app.extensions[views.UI] = Inspector(pool, Offline(app.extensions["engram"]))
