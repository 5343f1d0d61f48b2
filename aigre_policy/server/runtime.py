"""What a running server holds: the config, the callers, and the version of the pack in use.

``Served`` is one version of the pack with the gate built over it; ``Runtime.served``
is replaced whole when a new version compiles (``reload``), so a request reads one
consistent version from start to end. Every version shares the one ledger store and
the one decision log, opened once; only the last gate closes them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aigre_policy.diagnostics import Severity
from aigre_policy.gate import Gate, open_ledger
from aigre_policy.gate.held import HeldDecisions
from aigre_policy.gate.log import DecisionLog
from aigre_policy.pack import load_pack
from aigre_policy.rego.names import package_of
from aigre_policy.server import sources
from aigre_policy.server.approvals_store import PendingApprovals, SharedApprovals
from aigre_policy.server.authzen_mapping import load_mapping
from aigre_policy.server.config import ServerConfig
from aigre_policy.server.identity import Authenticator, Caller
from aigre_policy.verdict import Verdict


@dataclass(frozen=True)
class Served:
    """One version of the pack, the gate over it, and what the APIs derive from it."""

    pack: Any
    gate: Gate
    entrypoint: str  # the Data API path of the decision: "aigre/<pkg>/decision"
    data: dict[str, Any]  # the pack's data as OPA would hold it (envelopes)
    authzen: Any = None  # the AuthZEN mapping, when the pack or the config has one
    loaded_at: float = field(default_factory=time.time)

    def failed_closed(self, document: Any, message: str) -> dict[str, Any]:
        """The pack's fail-closed verdict document for a fault of the server itself."""
        pack = self.pack
        ref = {"name": pack.name, "version": pack.version, "digest": pack.digest}
        approvers = list(pack.checked.policy.fail_closed_approvers)
        problem = {"kind": "engine", "path": "server", "message": message}
        verdict = Verdict.given(
            pack.fail_closed, ref, document, fail_closed=True, errors=[problem], approvers=approvers
        )
        return verdict.to_dict()


class ReloadRefused(Exception):
    """A new version the running server cannot take without a restart."""


class Busy(Exception):
    """Too many checks waiting: this one fails closed at once rather than queue further
    (the reason of the refusal ``Runtime.check`` records)."""


class Runtime:
    """The server's state: config, authenticator, ledger, log, and the pack version served."""

    def __init__(self, pack_path: str | Path, config: ServerConfig, *, clock: Any = None):
        self.pack_path = Path(pack_path)
        self.config = config
        self.authenticator = Authenticator(config.auth)
        self.ledger = open_ledger(config.ledger)
        self.claimed = sources.claimed_groups(config)  # groups from approvers' tokens
        self.directory = sources.directory_for(config, self.claimed)
        self.notifier = sources.notifier_for(config, self.ledger)
        self.context = sources.context_for(config)  # incidents, error budget
        self.clock = clock
        self.reload_error: str | None = None
        # decisions waiting for people: in the ledger, shared by every replica on it
        self.held = HeldDecisions(self.ledger) if self.ledger is not None else None
        self.pending: Any = (
            SharedApprovals(self.held) if self.held is not None else PendingApprovals()
        )
        self.session_secret = _session_secret(config.inbox.session_secret_file)
        # checks run one after the other on one thread: each takes the ledger's write lock
        # for its whole transaction, so more threads of one process would only queue on it
        # (in SQLite's busy handler, which sleeps) and cost a thread hop each
        self._checks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigre-check")
        self.metrics: Any = None  # a ``metrics.Metrics`` when /metrics is served
        self.telemetry: Any = None  # a ``telemetry.Telemetry`` when spans and records go out
        self.inflight = 0
        self._inflight_lock = threading.Lock()
        self._idle = threading.Condition(self._inflight_lock)
        pack = load_pack(self.pack_path)
        # the one log every version writes, redacting what the pack marks sensitive
        self.sensitive = dict(pack.sensitive)
        self.log = self._open_log()
        self.served = self.load(pack)

    # -- versions of the pack --------------------------------------------------------------

    def _open_log(self) -> DecisionLog | None:
        """The decision log, as ``Gate`` opens one from a path: the pack's ``sensitive``
        fields redacted, checkpoints copied to the ledger."""
        if self.config.log is None:
            return None
        store = self.ledger if hasattr(self.ledger, "add_checkpoint") else None
        options: dict[str, Any] = {"sensitive": self.sensitive or None, "checkpoint_store": store}
        if self.clock is not None:
            options["clock"] = self.clock
        return DecisionLog(self.config.log, **options)

    def load(self, pack: Any = None) -> Served:
        """Compile the pack (unless given) and build a gate over it; raises on a pack that
        does not compile, or one whose ``sensitive`` fields differ from the log's."""
        pack = load_pack(self.pack_path) if pack is None else pack
        if dict(pack.sensitive) != self.sensitive:
            raise ReloadRefused(
                "the new version changes the pack's `sensitive` fields, which the open "
                "decision log redacts; restart the server to apply them"
            )
        shadow = load_pack(self.config.shadow) if self.config.shadow is not None else None
        lifetime = self.config.approval_lifetime_hours
        options: dict[str, Any] = {
            "ledger": self.ledger,
            "log": self.log,
            "directory": self.directory,
            "notify": self.notifier,
            "context": self.context,
            "shadow": shadow,
            "approval_lifetime": None if lifetime is None else timedelta(hours=lifetime),
            "held": self.held,
        }
        if self.clock is not None:
            options["clock"] = self.clock
        gate = Gate(pack, **options)
        package = package_of(pack.name)
        base = package.replace(".", "/")
        data = {"aigre": {package.split(".", 1)[1]: {"envelopes": pack.envelopes}}}
        return Served(pack, gate, f"{base}/decision", data, self._authzen(pack))

    def _authzen(self, pack: Any) -> Any:
        explicit = self.config.authzen
        root = getattr(pack, "root", None)
        path = explicit or (Path(root) / "authzen.yaml" if root is not None else None)
        if path is None or (explicit is None and not path.is_file()):
            return None
        return load_mapping(path)

    def reload(self) -> bool:
        """Compile the pack again beside the one serving and swap it in; on failure keep
        the old one and remember why (``/readyz`` shows it). True when swapped."""
        try:
            fresh = self.load()
        except Exception as exc:
            self.reload_error = _described(exc)
            return False
        self.served = fresh  # one assignment: requests read either the old or the new
        self.reload_error = None
        return True

    async def check(
        self,
        served: Served,
        action: Any,
        actor: Any,
        api: str = "check",
        requested_by: str | None = None,
    ) -> Any:
        """``gate.check`` off the event loop; the server plugs in no reviewer, so the
        synchronous check is the whole decision. A span covers it when telemetry is on.
        ``requested_by``: the caller's name, kept with a decision held for approvers.
        Past ``limits.max_queued_checks`` the check is refused at once: the pack's
        fail-closed verdict, logged like every answer (``Gate.refuse``)."""
        if self.inflight > self.config.limits.max_queued_checks:
            busy = Busy(f"{self.inflight - 1} checks are already waiting; try again")
            return await served.gate.arefuse(action, [f"Busy: {busy}"], actor=actor)
        call = functools.partial(served.gate.check, action, actor=actor, requested_by=requested_by)
        loop = asyncio.get_running_loop()
        if self.telemetry is None:
            return await loop.run_in_executor(self._checks, call)
        with self.telemetry.span(api) as span:
            verdict = await loop.run_in_executor(self._checks, call)
            self.telemetry.decided(span, verdict, api)
        return verdict

    # -- what the metrics count -----------------------------------------------------------

    def observe(self, verdict: Any, api: str = "check") -> None:
        if self.metrics is not None:
            self.metrics.decided(verdict, api)

    def pending_from(self, verdict: Any, caller: Caller) -> None:
        """Keep a ``require_approval`` verdict for the approvers' inbox."""
        self.pending.add(verdict, caller.name)

    def observe_failure(self, api: str = "check") -> None:
        if self.metrics is not None:
            self.metrics.server_fault(api)

    # -- checks in flight ------------------------------------------------------------------

    def enter(self) -> None:
        with self._inflight_lock:
            self.inflight += 1

    def leave(self) -> None:
        with self._inflight_lock:
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no check is in flight (or ``timeout`` passes); True when drained."""
        with self._idle:
            return self._idle.wait_for(lambda: self.inflight == 0, timeout)

    def ledger_problem(self) -> str | None:
        """Why the ledger cannot be read now, or ``None`` (also when there is none)."""
        if self.ledger is None:
            return None
        # read without the write lock every check takes (where the store offers that): a
        # probe must not queue behind the fleet's checks, nor fail while one holds it long
        unlocked = "lock" in inspect.signature(self.ledger.session).parameters
        try:
            with self.ledger.session(**({"lock": False} if unlocked else {})) as session:
                session.state()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def close(self) -> None:
        self._checks.shutdown(wait=True)
        self.served.gate.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()


def _session_secret(path: Path | None) -> str:
    """The key that signs the inbox's session cookies: the file's, or a fresh random one."""
    if path is None:
        return secrets.token_urlsafe(32)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < 32:
        raise ValueError(f"{path}: a session secret needs 32 characters or more")
    return secret


def _described(exc: Exception) -> str:
    """One line saying why a version did not load: a compile error's first diagnostic."""
    diagnostics = getattr(exc, "diagnostics", None)
    if diagnostics:
        errors = [d for d in diagnostics if getattr(d, "severity", None) is Severity.ERROR]
        diagnostics = errors or diagnostics
        first = diagnostics[0]
        span = getattr(first, "span", None)
        where = f"{span}: " if span is not None else ""
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        return f"{where}{getattr(first, 'code', '')} {getattr(first, 'message', first)}{more}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
