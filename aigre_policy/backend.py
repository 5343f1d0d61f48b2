"""The backend seam: each engine turns a ``CheckedPack`` into an ``Evaluator``.

A backend is a function from a ``CheckedPack`` (all it reads) to an object with the
small protocol ``checked.Evaluator``; ``Pack`` receives that evaluator when it is built and calls
``decide`` on every input its validator passed. docs/compiler.md#backends describes
the protocol for a new backend.
"""

from __future__ import annotations

from collections.abc import Callable

from aigre_policy import interpreter, native
from aigre_policy.checked import CheckedPack, Evaluator

Backend = Callable[[CheckedPack], Evaluator]

# the engines that need nothing beyond the package; Rego engines are added by name
BACKENDS: dict[str, Backend] = {
    "native": native.build,
    "interpreter": interpreter.InterpreterEvaluator,
}


def build(checked: CheckedPack, engine: str) -> Evaluator:
    """The evaluator of ``engine`` for ``checked``.

    ``native`` and ``interpreter`` are built here; any other name is a Rego engine
    (``rego``, or one added with ``rego.engine.register_engine``), built by the Rego
    backend. Hand-written Rego modules (``policies/*.rego``) on a Python engine are
    evaluated with regopy and merged. Raises ``CompileError`` when the backend cannot
    run the pack, ``ValueError`` for an unknown engine.
    """
    backend = BACKENDS.get(engine)
    if backend is not None and not checked.handwritten:
        return backend(checked)
    # lazy: regopy (a native library) is loaded only by packs that run Rego
    from aigre_policy.rego import attach

    if backend is not None:
        return attach.with_handwritten(backend(checked), checked)
    return attach.build(checked, engine)
