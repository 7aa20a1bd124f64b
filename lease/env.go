package lease

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/swarmkey/swarmkey/secret"
)

// Variables ReadEnv sets besides the credentials' fields, for the Locust
// plugin and for scripts: the lease held, and each policy with its prefix
// (NAME=PREFIX, comma-separated).
const (
	EnvLeaseID  = "SWARMKEY_LEASE_ID"
	EnvPolicies = "SWARMKEY_POLICIES"
)

// Policy is one policy whose credential is read, and the prefix of its
// fields' variables.
type Policy struct {
	Name, Prefix string
}

// Names returns the policies' names, in order.
func Names(policies []Policy) []string {
	names := make([]string, len(policies))
	for i, p := range policies {
		names[i] = p.Name
	}
	return names
}

// Mapping is one --env-map rule: the variable Field goes to, "" to leave it
// out. Policy "" means the field of every policy.
type Mapping struct {
	Policy, Field, Variable string
}

var envNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// EnvName turns a policy or field name into the part of a variable name
// it stands for: upper case, every character but A-Z and 0-9 as _, and a
// leading _ before a digit.
func EnvName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

// ParsePolicies parses --policy flags, NAME or NAME=PREFIX; the prefix
// defaults to EnvName(NAME). At least one is required, and no policy twice.
func ParsePolicies(flags []string) ([]Policy, error) {
	if len(flags) == 0 {
		return nil, Inputf("--policy is required: the policies whose credentials the command gets")
	}
	var out []Policy
	for _, f := range flags {
		name, prefix, hasPrefix := strings.Cut(f, "=")
		if name == "" {
			return nil, Inputf("--policy %q: give a policy name, as NAME or NAME=PREFIX", f)
		}
		if !hasPrefix {
			prefix = EnvName(name)
		} else if !envNameRE().MatchString(prefix) {
			return nil, Inputf("--policy %q: the prefix %q is not a variable name: use letters, digits and _, not starting with a digit", f, prefix)
		}
		if slices.ContainsFunc(out, func(p Policy) bool { return p.Name == name }) {
			return nil, Inputf("--policy %q: the policy is given twice", f)
		}
		out = append(out, Policy{Name: name, Prefix: prefix})
	}
	return out, nil
}

// ParseMappings parses --env-map rules, FIELD=VAR or POLICY:FIELD=VAR
// (VAR empty to leave the field out); POLICY must be one of policies.
// Whether some policy has FIELD is known only once the credentials are
// read: ReadEnv checks it.
func ParseMappings(rules []string, policies []Policy) ([]Mapping, error) {
	var out []Mapping
	for _, r := range rules {
		lhs, variable, ok := strings.Cut(r, "=")
		if !ok || lhs == "" {
			return nil, Inputf("--env-map %q: use FIELD=VAR or POLICY:FIELD=VAR (FIELD= leaves the field out)", r)
		}
		if variable != "" && !envNameRE().MatchString(variable) {
			return nil, Inputf("--env-map %q: %q is not a variable name: use letters, digits and _, not starting with a digit", r, variable)
		}
		m := Mapping{Field: lhs, Variable: variable}
		if policy, field, qualified := strings.Cut(lhs, ":"); qualified {
			if !slices.ContainsFunc(policies, func(p Policy) bool { return p.Name == policy }) {
				return nil, Inputf("--env-map %q: policy %q is not one of the --policy flags", r, policy)
			}
			m.Policy, m.Field = policy, field
		}
		out = append(out, m)
	}
	return out, nil
}

// envBuilder gathers the variables of one policy's fields at a time, so
// that a collision is found before the next policy is read.
type envBuilder struct {
	maps   []Mapping
	used   []bool // per maps: some field went through it
	env    map[string]secret.Secret
	from   map[string]string // variable → what sets it, for collisions
	listed []string          // NAME=PREFIX per policy added
}

func newEnvBuilder(leaseID string, maps []Mapping) *envBuilder {
	return &envBuilder{
		maps: maps,
		used: make([]bool, len(maps)),
		env:  map[string]secret.Secret{EnvLeaseID: secret.FromString(leaseID)},
		from: map[string]string{EnvLeaseID: "exec itself", EnvPolicies: "exec itself"},
	}
}

// add sets the variables of p's fields; two fields (or a field and one of
// exec's own variables) that would set one variable are an InputError.
func (b *envBuilder) add(p Policy, fields map[string]secret.Secret) error {
	b.listed = append(b.listed, p.Name+"="+p.Prefix)
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	// Sorted, so that the same credential gives the same collision error.
	sort.Strings(names)
	for _, f := range names {
		variable := p.Prefix + "_" + EnvName(f)
		// The last rule that matches wins, as when flags repeat.
		for i, m := range b.maps {
			if m.Field == f && (m.Policy == "" || m.Policy == p.Name) {
				variable, b.used[i] = m.Variable, true
			}
		}
		if variable == "" {
			continue
		}
		source := fmt.Sprintf("field %q of policy %q", f, p.Name)
		if other, taken := b.from[variable]; taken {
			return Inputf("%s and %s would both set %s: choose another prefix (--policy NAME=PREFIX) or --env-map", other, source, variable)
		}
		b.from[variable] = source
		b.env[variable] = fields[f]
	}
	return nil
}

// vars returns the variables, once every policy is added; a mapping that
// no field went through is an InputError (a typo, most likely).
func (b *envBuilder) vars() (map[string]secret.Secret, error) {
	for i, m := range b.maps {
		if !b.used[i] {
			of := ""
			if m.Policy != "" {
				of = " (policy " + m.Policy + ")"
			}
			return nil, Inputf("--env-map: no policy given has a field %q%s", m.Field, of)
		}
	}
	b.env[EnvPolicies] = secret.FromString(strings.Join(b.listed, ","))
	return b.env, nil
}

// OwnPrefix starts the name of every variable of swarmkey's own: its
// settings (SWARMKEY_DATABASE_URL, SWARMKEY_CONFIG), the plugin's
// (SWARMKEY_API, SWARMKEY_TOKEN), and the two exec sets for the command.
const OwnPrefix = "SWARMKEY_"

// Withhold says which variables of exec's own environment the command does
// not inherit. The zero value withholds swarmkey's own (OwnPrefix).
type Withhold struct {
	// Referenced are the variables the configuration reads (its env:
	// references: the database URL, admin credentials, API tokens), withheld
	// too.
	Referenced []string
	// Pass are passed on even though they would be withheld (--pass-env).
	Pass []string
	// Nothing passes the whole environment on (--inherit-env).
	Nothing bool
}

// Withholds reports whether the command does not inherit the variable name.
func (w Withhold) Withholds(name string) bool {
	if w.Nothing || slices.Contains(w.Pass, name) {
		return false
	}
	return strings.HasPrefix(name, OwnPrefix) || slices.Contains(w.Referenced, name)
}

// ParsePassEnv checks --pass-env flags: each must be a variable name.
func ParsePassEnv(flags []string) ([]string, error) {
	for _, f := range flags {
		if !envNameRE().MatchString(f) {
			return nil, Inputf("--pass-env %q: give the name of a variable (letters, digits and _, not starting with a digit), one per flag", f)
		}
	}
	return flags, nil
}

// ChildEnv is the command's environment: base (KEY=VALUE entries, as
// os.Environ) without what w withholds and without the variables of set,
// then those.
func ChildEnv(base []string, w Withhold, set map[string]secret.Secret) []string {
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := set[name]; !ours && !w.Withholds(name) {
			out = append(out, kv)
		}
	}
	for name, v := range set {
		// The one place the values leave swarmkey: the child's environment.
		out = append(out, name+"="+v.RevealString())
	}
	return out
}
