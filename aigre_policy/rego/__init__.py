"""The Rego target: packs as OPA Rego v1 modules, and engines that evaluate them."""
