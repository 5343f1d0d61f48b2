"""The ``aigre-policy`` command line: one module per command, all behaviour in the library."""
