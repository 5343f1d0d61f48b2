"""Exit codes and the usage error: all the command line needs before it knows the command."""

from __future__ import annotations

# Exit codes. Documented in docs/cli.md; a shell script gates on them.
EXIT_ALLOW = 0
EXIT_FAILURES = 1  # check: the pack has errors
EXIT_USAGE = 2  # misuse, unreadable file, a pack that does not compile
EXIT_ESCALATE = 3
EXIT_APPROVAL = 4
EXIT_DENY = 5
EXIT_FAIL_CLOSED = 6  # the verdict failed closed: invalid input or an engine fault
EXIT_INTERNAL = 70  # a fault inside aigre-policy itself (sysexits EX_SOFTWARE)
EXIT_IO = 74  # reading or writing failed: a full disk, a closed pipe (sysexits EX_IOERR)

DECISION_EXIT = {
    "allow": EXIT_ALLOW,
    "escalate": EXIT_ESCALATE,
    "require_approval": EXIT_APPROVAL,
    "deny": EXIT_DENY,
}


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit code 2."""
