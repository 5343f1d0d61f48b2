"""AuthZEN 1.0 routes (filled in with the mapping)."""

from __future__ import annotations

from starlette.routing import Route

ROUTES: list[Route] = []
