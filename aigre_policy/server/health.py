"""``/healthz`` (the process answers) and ``/readyz`` (a pack is loaded, the ledger answers).

A reload that failed keeps the old version serving: ``/readyz`` stays 200 and names
the failure under ``reload``, so a broken push never takes every replica out at once.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.routing import Route

from aigre_policy.server.http import JSONResponse, runtime_of


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    served = runtime.served
    pack = served.pack
    ledger = await asyncio.to_thread(runtime.ledger_problem)
    body = {
        "ready": ledger is None,
        "pack": {"name": pack.name, "version": pack.version, "digest": pack.digest},
        "ledger": "ok" if ledger is None else ledger,
        "reload": {"ok": runtime.reload_error is None, "error": runtime.reload_error},
    }
    return JSONResponse(body, status_code=200 if ledger is None else 503)


ROUTES = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
