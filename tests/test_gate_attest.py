"""The trust boundary on the gate side: what the gate attests (actor, approvals, clock)
comes from its own sources, overwriting any claim; approvals dated ahead of the clock
are refused, enforced allows use their approvals up, and replay of a gate's own log
against the pack that wrote it changes nothing."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import gate_action as act

from aigre_policy.cli.main import main
from aigre_policy.gate import (
    ApprovalRejected,
    ApprovalRequired,
    FakeClock,
    FunctionReviewer,
    Gate,
    ReviewAnswer,
    StaticDirectory,
)
from aigre_policy.gate.log import DecisionLog, read_log
from aigre_policy.gate.replay import replay_log
from aigre_policy.inputs import builtin_schema
from aigre_policy.models.action import Actor, ActorKind

START = "2025-03-10T12:00:00Z"

# approvals resolved after evaluation, by the gate (the pack's schema has no attested fields)
RESOLVED = """
rule costly {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
rule no-grants {
  deny when action.kind == "iam_grant"
}
rule big-patch {
  escalate to ["llm-judge"] when action.change.lines > 400
}
"""

# approvals and trust read by the pack itself, from the attested context
ATTESTING = """
rule admin-grant {
  require_approval by ["security"]
    when action.kind == "iam_grant" and not any(a in context.approvals: a.group == "security")
}
rule untrusted-actor {
  deny when (context.actor.trust ?? 0) < 2
}
"""

DIRECTORY = StaticDirectory({"finops": ["fay"], "security": ["sue", "olga"], "llm-judge": []})


def attesting_schema() -> dict[str, Any]:
    """The built-in schema with ``context.actor`` and ``context.approvals`` declared."""
    schema = copy.deepcopy(builtin_schema("builtin:proposed-action/v1"))
    context = schema["properties"]["context"]
    context["properties"]["actor"] = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "kind": {"enum": ["human", "llm", "automation"]},
            "trust": {"type": "integer", "minimum": 0, "maximum": 5},
            "on_behalf_of": {"type": "string"},
        },
        "required": ["id", "kind", "trust"],
        "additionalProperties": False,
    }
    context["properties"]["approvals"] = {
        "type": "array",
        "default": [],
        "items": {
            "type": "object",
            "properties": {
                "by": {"type": "string"},
                "group": {"type": "string"},
                "at": {"type": "string", "format": "date-time"},
                "reusable": {"type": "boolean"},
            },
            "required": ["by", "group", "at"],
            "additionalProperties": False,
        },
    }
    return schema


COSTLY = {"cost": {"estimated_usd": 500}}
AGENT = {"id": "agent-7", "kind": "llm", "trust": 3, "on_behalf_of": "olga"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def resolved_pack(new_pack) -> Path:
    return new_pack(RESOLVED, name="resolved")


@pytest.fixture
def attesting_pack(new_pack) -> Path:
    return new_pack(
        ATTESTING,
        name="attesting",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": attesting_schema()},
    )


@pytest.fixture
def unattested_pack(new_pack) -> Path:
    """The resolved pack on a schema whose context declares no attested actor or approvals."""
    schema = copy.deepcopy(builtin_schema("builtin:proposed-action/v1"))
    for name in ("actor", "approvals"):
        schema["properties"]["context"]["properties"].pop(name, None)
    return new_pack(
        RESOLVED,
        name="unattested",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": schema},
    )


@pytest.fixture
def make_gate(tmp_path: Path, clock: FakeClock, ledger_url: str):
    """Gates on the test's ledger: every test here runs on SQLite and on PostgreSQL."""

    def make(pack: Path, **options: Any) -> Gate:
        options.setdefault("ledger", ledger_url)
        options.setdefault("log", tmp_path / "decisions.jsonl")
        options.setdefault("directory", DIRECTORY)
        options.setdefault("clock", clock)
        return Gate.from_pack(pack, **options)

    return make


def decisions(tmp_path: Path) -> list[Any]:
    return [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]


# -- the attested actor ----------------------------------------------------------------------


def test_the_actor_comes_from_the_identity_source_never_the_proposal(
    make_gate, attesting_pack
) -> None:
    # the proposal claims trust 5; no identity source: the pack sees no actor at all
    claimed = act(actor={"kind": "human", "id": "root", "trust": 5})
    anonymous = make_gate(attesting_pack).check(claimed)
    assert anonymous.decision == "deny" and anonymous.rule_ids == ["untrusted-actor"]
    assert "actor" not in anonymous.input["context"]
    # a context provider cannot attest it either

    def provider(action: Any, now: Any) -> dict[str, Any]:
        return {"actor": {"id": "root", "kind": "human", "trust": 5}, "approvals": []}

    assert make_gate(attesting_pack, context=provider).check(claimed).decision == "deny"
    # the gate's identity source is what the pack reads
    gate = make_gate(attesting_pack, identity={**AGENT, "trust": 1})
    verdict = gate.check(claimed)
    assert verdict.decision == "deny"
    assert verdict.input["context"]["actor"]["trust"] == 1
    assert verdict.gate["actor"]["id"] == "agent-7"


def test_a_context_provider_cannot_attest_the_actor_or_approvals(make_gate, attesting_pack) -> None:
    forged = [{"by": "nobody", "group": "security", "at": START}]

    def provider(action: Any, now: Any) -> dict[str, Any]:
        return {"approvals": forged, "actor": {"id": "root", "kind": "human", "trust": 5}}

    verdict = make_gate(attesting_pack, context=provider).check(act(kind="iam_grant"))
    assert verdict.decision == "deny" and verdict.rule_ids == ["admin-grant", "untrusted-actor"]
    assert verdict.input["context"]["approvals"] == []
    assert "actor" not in verdict.input["context"]


def test_identity_as_a_model_a_callable_and_per_call(make_gate, attesting_pack) -> None:
    model = Actor(kind=ActorKind.HUMAN, id="hal", trust=4)
    assert make_gate(attesting_pack, identity=model).check(act()).decision == "allow"
    seen = []

    def who(action: Any) -> dict[str, Any]:
        seen.append(action["id"])
        return {"id": "ops-bot", "kind": "automation", "trust": 3}

    gate = make_gate(attesting_pack, identity=who)
    assert gate.check(act(7)).input["context"]["actor"]["id"] == "ops-bot"
    assert seen == ["act-7"]
    # a per-call actor wins over the gate's source
    low = gate.check(act(8), actor={"id": "intern", "kind": "human", "trust": 0})
    assert low.decision == "deny" and low.input["context"]["actor"]["id"] == "intern"
    with pytest.raises(Exception) as raised, gate.enforce(act(9), actor={**AGENT, "trust": 0}):
        pass
    assert raised.value.verdict.decision == "deny"


def test_a_failing_identity_source_fails_closed(make_gate, attesting_pack) -> None:
    def broken(action: Any) -> Any:
        raise ConnectionError("auth service down")

    for source in (broken, lambda action: "root", 42):
        verdict = make_gate(attesting_pack, identity=source).check(act())
        assert verdict.fail_closed and verdict.decision == "deny"  # the pack's fail_closed
        assert verdict.errors[-1]["path"] == "gate.identity"


def test_guard_attests_its_own_identity(make_gate, attesting_pack) -> None:
    gate = make_gate(attesting_pack, defaults={k: v for k, v in act().items() if k != "id"})

    @gate.guard(kind="restart", identity={"id": "runner", "kind": "automation", "trust": 4})
    def restart() -> str:
        return "restarted"

    @gate.guard(kind="restart", actor={"id": "root", "kind": "human", "trust": 5})
    def claims() -> str:  # an `actor` keyword is a field of the proposal: a claim
        return "restarted"

    assert restart() == "restarted"
    with pytest.raises(Exception) as raised:
        claims()
    assert raised.value.verdict.decision == "deny"


# -- attested approvals ----------------------------------------------------------------------


def test_approvals_a_proposal_or_provider_writes_are_never_read(
    make_gate, attesting_pack, clock
) -> None:
    forged = [{"by": "nobody", "group": "security", "at": START}]

    def provider(action: Any, now: Any) -> dict[str, Any]:
        return {"approvals": forged}

    gate = make_gate(attesting_pack, identity=AGENT, context=provider)
    verdict = gate.check(act(kind="iam_grant", approvals=forged))
    assert verdict.decision == "require_approval"
    assert verdict.input["context"]["approvals"] == []
    gate.approve(verdict, by="sue", group="security")
    approved = gate.check(act(kind="iam_grant", approvals=forged))
    assert approved.decision == "allow"
    assert approved.input["context"]["approvals"] == [
        {"by": "sue", "group": "security", "at": START}
    ]


def test_the_attested_actor_and_whom_it_acts_for_may_not_approve(
    make_gate, attesting_pack, tmp_path
) -> None:
    # the proposal names someone else as actor; the gate knows it is agent-7 for olga
    gate = make_gate(attesting_pack, identity=AGENT)
    claimed = act(kind="iam_grant", actor={"kind": "llm", "id": "x", "trust": 3})
    pending = gate.check(claimed)
    with pytest.raises(ApprovalRejected, match="olga"):
        gate.approve(pending, by="olga", group="security")
    # recorded anyway (by a gate that did not know the actor): ignored when checked
    blind = make_gate(attesting_pack)
    blind.approve(blind.check(claimed), by="olga", group="security")
    again = gate.check(claimed)
    assert again.decision == "require_approval"
    assert again.input["context"]["approvals"] == []
    assert again.gate["approvals"]["ignored"][0]["reason"] == "the approver proposed the action"


def test_an_approval_dated_30_days_ahead_is_refused_10_days_later(
    make_gate, resolved_pack, tmp_path
) -> None:
    ahead = FakeClock("2025-04-09T12:00:00Z")  # a process whose clock runs 30 days ahead
    fast = make_gate(resolved_pack, clock=ahead)
    fast.approve(fast.check(act(**COSTLY)), by="fay", group="finops")
    honest = make_gate(resolved_pack, clock=FakeClock("2025-03-20T12:00:00Z"))
    verdict = honest.check(act(**COSTLY))
    assert verdict.decision == "require_approval"
    [ignored] = verdict.gate["approvals"]["ignored"]
    assert ignored["by"] == "fay" and "after the gate's clock" in ignored["reason"]
    assert "clock skew" in ignored["reason"]


@pytest.mark.parametrize(
    ("ahead", "counts"),
    [(timedelta(minutes=5), True), (timedelta(minutes=5, microseconds=1), False)],
)
def test_the_clock_skew_bounds_how_far_ahead_an_approval_may_be(
    make_gate, resolved_pack, clock, ahead, counts
) -> None:
    fast = make_gate(resolved_pack, clock=FakeClock(clock() + ahead))
    fast.approve(fast.check(act(**COSTLY)), by="fay", group="finops")
    decision = make_gate(resolved_pack).check(act(**COSTLY)).decision
    assert decision == ("allow" if counts else "require_approval")
    wider = make_gate(resolved_pack, clock_skew=timedelta(minutes=10))
    assert wider.check(act(**COSTLY)).decision == "allow"


def test_only_approvals_that_count_reach_the_pack(make_gate, attesting_pack, clock) -> None:
    moving = {"security": ["sue", "olga"]}
    gate = make_gate(attesting_pack, identity=AGENT, directory=StaticDirectory(moving))
    grant = act(kind="iam_grant")
    pending = gate.check(grant)
    gate.approve(pending, by="sue", group="security")
    clock.advance(hours=25)  # past the 24 h lifetime
    expired = gate.check(grant)
    assert expired.decision == "require_approval"
    assert expired.input["context"]["approvals"] == []
    assert expired.gate["approvals"]["ignored"][0]["reason"] == "expired"
    gate.approve(expired, by="sue", group="security")  # approving again renews it
    assert gate.check(grant).decision == "allow"
    left = make_gate(attesting_pack, identity=AGENT, directory=StaticDirectory({"security": []}))
    lapsed = left.check(grant)
    assert lapsed.decision == "require_approval"
    assert lapsed.gate["approvals"]["ignored"][0]["reason"] == "not a member of `security`"


# -- approvals are used up ---------------------------------------------------------------------


def test_an_approval_lets_one_enforced_run_through(make_gate, resolved_pack, ledger_sql) -> None:
    gate = make_gate(resolved_pack)
    with pytest.raises(ApprovalRequired) as raised, gate.enforce(act(**COSTLY)):
        pass
    gate.approve(raised.value.verdict, by="fay", group="finops")
    assert gate.check(act(**COSTLY)).decision == "allow"  # a plain check uses nothing up
    runs = 0
    with gate.enforce(act(**COSTLY)) as run:
        runs += 1
    for _ in range(2):
        with pytest.raises(ApprovalRequired) as again, gate.enforce(act(**COSTLY)):
            runs += 1
        [ignored] = again.value.verdict.gate["approvals"]["ignored"]
        assert ignored["reason"] == f"used up by decision {run.verdict.decision_id}"
    assert runs == 1
    assert run.verdict.gate["approvals"]["used"] == [{"by": "fay", "group": "finops"}]
    uses = ledger_sql("SELECT approver, decision_id FROM approval_uses")
    assert uses == [("fay", run.verdict.decision_id)]
    # approving again gives one more run
    gate.approve(again.value.verdict, by="fay", group="finops")
    with gate.enforce(act(**COSTLY)):
        runs += 1
    assert runs == 2


def test_an_approval_marked_reusable_is_not_used_up(make_gate, resolved_pack) -> None:
    gate = make_gate(resolved_pack)
    gate.approve(gate.check(act(**COSTLY)), by="fay", group="finops", reusable=True)
    for _ in range(3):
        with gate.enforce(act(**COSTLY)) as run:
            pass
        assert "used" not in run.verdict.gate["approvals"]


def test_a_pack_marks_a_group_reusable(make_gate, new_pack) -> None:
    pack = new_pack(RESOLVED, manifest={"reusable_approvals": ["finops"]})
    gate = make_gate(pack)
    gate.approve(gate.check(act(**COSTLY)), by="fay", group="finops")
    for _ in range(3):
        with gate.enforce(act(**COSTLY)):
            pass


def test_an_attested_approval_the_pack_reads_is_used_up_too(make_gate, attesting_pack) -> None:
    gate = make_gate(attesting_pack, identity=AGENT)
    grant = act(kind="iam_grant")
    gate.approve(gate.check(grant), by="sue", group="security")
    with gate.enforce(grant):
        pass
    with pytest.raises(ApprovalRequired) as raised, gate.enforce(grant):
        pass
    assert raised.value.verdict.input["context"]["approvals"] == []


def test_a_use_rolls_back_with_a_decision_that_was_not_recorded(
    make_gate, resolved_pack, tmp_path, monkeypatch
) -> None:
    import errno

    from aigre_policy.gate import log as log_module

    gate = make_gate(resolved_pack)
    gate.approve(gate.check(act(**COSTLY)), by="fay", group="finops")

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(log_module.os, "write", full)
    with pytest.raises(Exception) as raised, gate.enforce(act(**COSTLY)):
        pass
    monkeypatch.undo()
    assert raised.value.verdict.fail_closed
    assert "used" not in raised.value.verdict.gate["approvals"]
    with gate.enforce(act(**COSTLY)):  # the approval was not used up
        pass


# -- replay against the pack that wrote the log ------------------------------------------------


def test_an_approved_action_replays_unchanged(make_gate, resolved_pack, tmp_path) -> None:
    gate = make_gate(resolved_pack)
    gate.approve(gate.check(act(**COSTLY)), by="fay", group="finops")
    assert gate.check(act(**COSTLY)).decision == "allow"
    report = replay_log(resolved_pack, tmp_path / "decisions.jsonl")
    assert (report.replayed, report.changed) == (2, 0), report.transitions


def test_replaying_a_gate_log_against_its_own_pack_changes_nothing(
    make_gate, resolved_pack, tmp_path, capsys
) -> None:
    judge = FunctionReviewer("llm-judge", lambda request: ReviewAnswer("allow", "small enough"))
    gate = make_gate(resolved_pack, reviewers=[judge])
    with pytest.raises(ApprovalRequired) as raised, gate.enforce(act(**COSTLY)):
        pass
    gate.approve(raised.value.verdict, by="fay", group="finops")
    with gate.enforce(act(**COSTLY)):  # approved: allow
        pass
    with pytest.raises(ApprovalRequired), gate.enforce(act(**COSTLY)):  # used up
        pass
    assert gate.check(act(2, kind="iam_grant")).decision == "deny"
    assert gate.check(act(3, change={"type": "code", "lines": 900})).decision == "allow"
    assert gate.check(act(4, environment="prodution")).fail_closed  # breaks the schema
    failing = FunctionReviewer("llm-judge", lambda request: 1 / 0)
    assert (
        make_gate(resolved_pack, reviewers=[failing])
        .check(act(5, change={"type": "code", "lines": 900}))
        .fail_closed
    )

    def down(action: Any, now: Any) -> Any:
        raise ConnectionError("incident feed down")

    assert make_gate(resolved_pack, context=down).check(act(6)).fail_closed
    logged = [e.body["verdict"]["decision"] for e in decisions(tmp_path)]
    assert logged.count("allow") == 2 and "deny" in logged
    report = replay_log(resolved_pack, tmp_path / "decisions.jsonl")
    assert report.changed == 0, report.transitions
    assert report.decisions == len(logged)
    assert report.unreadable == 1  # the check the pack never judged (context provider down)
    assert main(["replay", str(resolved_pack), "--log", str(tmp_path / "decisions.jsonl"),
                 "--fail-on", "any"]) == 0  # fmt: skip


def test_replay_of_a_pack_that_reads_attested_approvals_changes_nothing(
    make_gate, attesting_pack, tmp_path
) -> None:
    gate = make_gate(attesting_pack, identity=AGENT)
    grant = act(kind="iam_grant")
    gate.approve(gate.check(grant), by="sue", group="security")
    with gate.enforce(grant):
        pass
    with pytest.raises(ApprovalRequired), gate.enforce(grant):
        pass
    gate.check(act(2), actor={**AGENT, "trust": 0})
    assert [e.body["verdict"]["decision"] for e in decisions(tmp_path)] == [
        "require_approval",
        "allow",
        "require_approval",
        "deny",
    ]
    report = replay_log(attesting_pack, tmp_path / "decisions.jsonl")
    assert (report.replayed, report.changed) == (4, 0), report.transitions


def test_replay_still_sees_a_candidate_that_drops_an_approval_group(
    make_gate, resolved_pack, new_pack, tmp_path
) -> None:
    gate = make_gate(resolved_pack)
    gate.approve(gate.check(act(**COSTLY)), by="fay", group="finops")
    with gate.enforce(act(**COSTLY)):
        pass
    stricter = new_pack(RESOLVED.replace('["finops"]', '["cfo"]'), name="stricter")
    report = replay_log(stricter, tmp_path / "decisions.jsonl")
    assert report.transitions == {"allow->require_approval": 1}
    [*_, last] = decisions(tmp_path)
    assert last.body["verdict"]["gate"]["resolved_decision"] == "allow"


def test_a_shadow_pack_gets_the_attested_fields_its_schema_declares(
    make_gate, unattested_pack, attesting_pack
) -> None:
    from aigre_policy import load_pack

    gate = make_gate(unattested_pack, identity=AGENT, shadow=load_pack(attesting_pack))
    grant = act(kind="scale", cost={"estimated_usd": 10})
    verdict = gate.check(grant)
    assert verdict.decision == "allow"
    assert verdict.gate["shadow"]["decision"] == "allow"  # it saw the attested actor
    assert not verdict.gate["shadow"]["fail_closed"]
    assert "actor" not in verdict.input["context"]  # the enforced schema has no such field
    reverse = make_gate(attesting_pack, identity=AGENT, shadow=load_pack(unattested_pack))
    shadowed = reverse.check(grant)
    assert not shadowed.gate["shadow"]["fail_closed"]  # no undeclared field broke its schema
    assert shadowed.gate["shadow"]["agrees"]


def test_gates_racing_on_one_approval_let_one_run_through(make_gate, resolved_pack) -> None:
    import threading

    first = make_gate(resolved_pack)
    first.approve(first.check(act(**COSTLY)), by="fay", group="finops")
    gates = [make_gate(resolved_pack) for _ in range(6)]
    ran: list[int] = []
    refused: list[str] = []
    start = threading.Barrier(len(gates))

    def run(n: int, gate: Gate) -> None:
        start.wait()
        try:
            with gate.enforce(act(**COSTLY)):
                ran.append(n)
        except Exception as exc:  # ApprovalRequired, or a fail-closed Denied
            refused.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(n, g)) for n, g in enumerate(gates)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ran) == 1 and len(refused) == len(gates) - 1


def test_a_guard_whose_identity_fails_refuses_the_call(make_gate, attesting_pack) -> None:
    from aigre_policy.gate import Denied

    gate = make_gate(attesting_pack, defaults={k: v for k, v in act().items() if k != "id"})

    def down(action: Any) -> Any:
        raise ConnectionError("auth service down")

    @gate.guard(kind="restart", identity=down)
    def restart() -> str:
        return "restarted"

    with pytest.raises(Denied) as raised:
        restart()
    assert raised.value.verdict.errors[-1]["path"] == "gate.identity"


def test_a_log_written_before_resolved_decision_replays_unchanged(
    make_gate, resolved_pack, tmp_path
) -> None:
    judge = FunctionReviewer("llm-judge", lambda request: ReviewAnswer("allow", "small enough"))
    gate = make_gate(resolved_pack, reviewers=[judge])
    gate.approve(gate.check(act(**COSTLY)), by="fay", group="finops")
    with gate.enforce(act(**COSTLY)):
        pass
    gate.check(act(2, change={"type": "code", "lines": 900}))  # settled by the reviewer
    failing = FunctionReviewer("llm-judge", lambda request: 1 / 0)
    broken = make_gate(resolved_pack, reviewers=[failing])
    assert broken.check(act(3, change={"type": "code", "lines": 900})).fail_closed
    # the same entries as an older gate wrote them: no resolved_decision
    old = tmp_path / "old.jsonl"
    with DecisionLog(old, fsync="none") as log:
        for entry in decisions(tmp_path):
            body = copy.deepcopy(entry.body)
            del body["verdict"]["gate"]["resolved_decision"]
            log.append("decision", body)
    report = replay_log(resolved_pack, old)
    assert (report.replayed, report.changed) == (4, 0), report.transitions
