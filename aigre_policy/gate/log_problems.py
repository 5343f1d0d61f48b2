"""What ``verify_log`` reports: a problem at a line of a log or checkpoint file."""

from __future__ import annotations

from dataclasses import dataclass

from aigre_policy.codes import UnregisteredCode, lookup

TORN = "V007"  # a torn last line: a writer stopped mid-entry, the next one repairs it
# Not a problem but a note in the report's `recoveries`: where a writer repaired a torn line.
RECOVERY_NOTE = "recovery"


@dataclass(frozen=True, slots=True)
class LogProblem:
    file: str
    line: int
    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code == RECOVERY_NOTE:
            return
        if lookup(self.code).category != "log":
            raise UnregisteredCode(f"{self.code} is not a log-verify code")

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "code": self.code, "message": self.message}


def span(first: int, last: int) -> str:
    """``seq 4`` or ``seq 4-7``: the entries from ``first`` to ``last``."""
    return f"seq {first}" if first == last else f"seq {first}-{last}"
