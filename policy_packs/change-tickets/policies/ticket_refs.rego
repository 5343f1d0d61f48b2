# change-tickets: ticket references, checked with Rego's regular expressions.
#
# Contract (docs/rego.md): the package names the pack and the file; the sets
# deny, require_approval, escalate and warn hold objects with an id and a
# message, and optionally category, severity, tags, groups and bindings.
package aigre.change_tickets.custom.ticket_refs

limits := data.aigre.change_tickets.envelopes.tickets

ticket_ref := ref if {
	input.action.environment == "production"
	input.action.justification.signal == "ticket"
	ref := object.get(input.action.justification, "ref", "")
}

deny contains {
	"id": "malformed-ticket-ref",
	"message": concat("", [input.action.kind, " on ", input.action.target, " cites ticket '", ticket_ref, "', which is not a reference like PAY-123"]),
	"category": "compliance",
	"severity": "medium",
	"tags": ["tickets"],
	"bindings": {"action.justification.ref": ticket_ref},
} if {
	not regex.match(`^[A-Z][A-Z0-9]*-[0-9]+$`, ticket_ref)
}

require_approval contains {
	"id": "restricted-project-ticket",
	"message": concat("", [input.action.kind, " on ", input.action.target, " works on ", project, " ticket ", ticket_ref, "; the change board approves ", project, " changes"]),
	"category": "compliance",
	"severity": "high",
	"tags": ["tickets", "change-board"],
	"groups": ["change-board"],
	"bindings": {"action.justification.ref": ticket_ref, "tickets.restricted_projects": limits.restricted_projects},
} if {
	regex.match(`^[A-Z][A-Z0-9]*-[0-9]+$`, ticket_ref)
	project := split(ticket_ref, "-")[0]
	project in limits.restricted_projects
	not approved_by_board
}

approved_by_board if {
	some approval in object.get(input.action, "approvals", [])
	approval.group == "change-board"
	approval.by != input.action.actor.id
}

warn contains {
	"id": "ticket-without-summary",
	"message": concat("", ["ticket ", ticket_ref, " is cited without a summary of the change"]),
	"category": "compliance",
	"severity": "low",
} if {
	regex.match(`^[A-Z][A-Z0-9]*-[0-9]+$`, ticket_ref)
	object.get(input.action.change, "summary", "") == ""
}
