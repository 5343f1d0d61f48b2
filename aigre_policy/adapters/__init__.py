"""Adapters: the formats operations tools already emit, turned into proposed actions.

One module per format, each a pure function from the payload to the actions a pack
judges and from the verdicts back to the format's answer (``docs/adapters.md``):
``terraform`` (plan JSON), ``kubernetes`` (AdmissionReview), ``github`` (deployment
protection rules). None of them imports a web framework: a server mounts them.
"""
