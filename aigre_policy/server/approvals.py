"""Approvals over HTTP (filled in with identity)."""

from __future__ import annotations

from starlette.routing import Route

ROUTES: list[Route] = []
