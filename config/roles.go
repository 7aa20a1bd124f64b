package config

import (
	"strconv"
	"strings"

	"github.com/swarmkey/swarmkey/targets"
)

// roleClaim is a PostgreSQL role that a policy rotates or makes its login
// roles members of.
type roleClaim struct {
	role string
	// key is the target.postgres key that gives it: username,
	// alternate_username (given, or the default) or group_role.
	key string
}

// claims lists the roles of a PostgreSQL policy: username; with
// alternating, alternate_username (ForStrategy filled in the default when
// the file gave none) and group_role.
func (p *Policy) claims() []roleClaim {
	o := p.Target.Postgres.Options
	cs := []roleClaim{{o.Username, "username"}}
	if p.Strategy != targets.Alternating {
		return cs
	}
	if o.AlternateUsername != "" {
		cs = append(cs, roleClaim{o.AlternateUsername, "alternate_username"})
	}
	if o.GroupRole != "" {
		cs = append(cs, roleClaim{o.GroupRole, "group_role"})
	}
	return cs
}

// serverKey names the server of a PostgreSQL policy: its host and port.
// Roles are server-wide in PostgreSQL (every database of the server shares
// them), so dbname is not part of it. Host names compare without regard to
// case or a trailing dot; two names for one server (an address and a host
// name, localhost and 127.0.0.1) are not recognised as one.
func serverKey(p *Policy) string {
	o := p.Target.Postgres.Options
	host := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o.Host)), ".")
	return host + ":" + strconv.Itoa(o.Port)
}

// roleClaims holds the first claim of each role, by server and role.
type roleClaims map[string]firstClaim

type firstClaim struct {
	policy, file string
	line         int
	as           string
}

// checkRoleClaims refuses a role that two policies claim on one server
// (serverKey): a policy that rotates another policy's login role undoes its
// rotations, and one whose group_role is another policy's login role (or
// whose login role is another's group_role) hands its logins that role's
// privileges, or sets a password on the role that holds them. Each further
// claim is an error at its key, naming the policy, file and line of the
// first. checkAll calls it for each PostgreSQL policy, in file order, once
// the policy has passed every other check; c is the policy's check.
//
// Two policies may name one group_role: it is the operator's (the target
// never changes it, only makes its own login roles members), so sharing it
// shares privileges the operator gave it, and takes nothing over.
func (c check) checkRoleClaims(claimed roleClaims, p *Policy) {
	c = c.sub("target.postgres")
	server := serverKey(p)
	for _, cl := range p.claims() {
		as, rel := cl.key, cl.key
		if !c.src.has(c.path(cl.key)) {
			// The default alternate_username: username gives it.
			as, rel = "the default "+cl.key, "username"
		}
		key := server + "/" + cl.role
		prev, dup := claimed[key]
		switch {
		case !dup:
			claimed[key] = firstClaim{policy: p.Name, file: p.File, line: p.Line, as: as}
		case prev.as == "group_role" && cl.key == "group_role":
		case prev.policy != p.Name: // one role twice in a policy: the target's rules say so
			c.errf(rel, "role %q (%s) on server %s is already claimed by policy %q (%s) at %s:%d; "+
				"a policy may not take over a role another policy owns: give each policy its own roles",
				cl.role, as, server, prev.policy, prev.as, prev.file, prev.line)
		}
	}
}
