package scan

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Provided is what one policy already provides to load tests: the
// environment variables `swarmkey exec` sets from it, and its fields, which
// the plugin's credential("POLICY") returns.
type Provided struct {
	Policy  string
	EnvVars []string
	Fields  []string
}

// pluginCall finds the locust plugin's credential("POLICY") calls.
var pluginCall = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bcredential\(\s*["']([^"']+)["']`) })

// provider tells which policy already provides a finding's credential:
// one whose exec variable is the finding's variable (or the environment
// variable whose default it is), or one the finding's file reads through
// the plugin whose field the variable names.
func provider(f Finding, provided []Provided) *Provider {
	if f.Variable == "" {
		return nil
	}
	v := envName(f.Variable)
	for _, p := range provided {
		if slices.Contains(p.EnvVars, v) {
			return &Provider{Policy: p.Policy, By: fmt.Sprintf("exec sets %s", v)}
		}
	}
	for _, p := range provided {
		if !slices.Contains(f.plugin, p.Policy) {
			continue
		}
		for _, field := range p.Fields {
			if v == envName(field) || strings.HasSuffix(v, "_"+envName(field)) {
				return &Provider{Policy: p.Policy, By: fmt.Sprintf("credential(%q) in this file", p.Policy)}
			}
		}
	}
	return nil
}

// pluginPolicies lists the policies a file reads through the plugin.
func pluginPolicies(src []byte) []string {
	var out []string
	for _, m := range pluginCall().FindAllSubmatch(src, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// envName turns a name into the variable name it stands for, as exec
// spells variables: upper case, every character but A-Z and 0-9 as _.
func envName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
