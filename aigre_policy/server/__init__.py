"""``aigre-policy serve``: the gate as an HTTP policy decision point.

A thin face over ``aigre_policy.gate.Gate``: it never judges on its own. Modules, one
concern each: ``config`` (the server file, validated), ``identity`` (who is calling,
from the credentials, never the body), ``runtime`` (the gate in use, swapped whole
on reload), ``http`` (bodies, limits, JSON answers), and one module of routes per API
family: ``native`` (``/v1/check``, ``/v1/data``), ``authzen`` (AuthZEN 1.0),
``approvals`` (``/v1/approvals``), ``health``; ``app`` puts them together.

Starlette and uvicorn are imported only here, never by the CLI's entry point.
"""
