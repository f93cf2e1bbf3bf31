"""The HTTP API: one module per resource's routes, plus auth, errors, OpenAPI and the server."""

from __future__ import annotations

from jobs.shells.http.app import create_app, make_server, running, serve

__all__ = ["create_app", "make_server", "running", "serve"]
