from tests.test_rego_emit import *
def test_dbg(new_pack):
    policy = open("/tmp/hp/policies/main.aigre").read()
    root = new_pack(policy)
    import subprocess; print(subprocess.run(["diff", "-r", str(root), "/tmp/hp"], capture_output=True, text=True).stdout)
    native, rego = load_pack(root), load_pack(root, engine="rego")
    action = {"id": "a","kind": "rollback","target": "`raw`","environment": "production","actor": {"kind": "llm", "id": "x", "trust": 3},"change": {"type": "code", "lines": 1},"reversible": True,"blast_radius": {"users_share": 0.1, "services": []},"cost": {"estimated_usd": 0},"requested_at": "2026-11-20T10:00:00Z"}
    context = {"now": "2026-11-20T10:00:00Z"}
    b = rego.evaluate(action, context)
    print(b.to_dict())
    assert 0
