"""Report formats shared by ``check``, ``test`` and ``ci``: SARIF, GitHub annotations, JUnit.

Each command turns what it found into ``findings.Finding`` values; the writers
here turn findings into a format. ``FORMATS`` lists the names ``--format`` takes.
"""

FORMATS = ("text", "json", "sarif", "github", "junit")
