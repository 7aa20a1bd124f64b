package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"unicode"
)

// WriteTable writes the findings as a table: location, kind, variable,
// masked preview, where it is used, which policy provides it, then a
// summary line. Text from the scanned files is printed with control
// characters escaped.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCATION\tKIND\tVARIABLE\tPREVIEW\tUSED AT\tPROVIDED BY")
	for _, f := range r.Findings {
		var used []string
		for _, u := range f.UsedAt {
			used = append(used, fmt.Sprintf("%s:%d %s", u.File, u.Line, u.What))
		}
		provided := "none: swarmkey import"
		if f.Provided != nil {
			provided = f.Provided.Policy + " (" + f.Provided.By + ")"
		}
		kind := string(f.Kind)
		if f.Kind == KindToken {
			kind = strings.TrimPrefix(f.Rule, "gitleaks/")
		}
		if f.Baselined {
			kind += " (baseline)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", escape(f.Location()), kind, orDash(escape(f.Variable)), escape(f.Preview),
			orDash(escape(strings.Join(used, ", "))), escape(provided))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notices {
		fmt.Fprintln(w, "note: "+escape(n))
	}
	_, err := fmt.Fprintf(w, "%d findings (%d not in the baseline) in %d files\n", len(r.Findings), len(r.New()), r.Files)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// escape writes control characters as \xNN, so a file's content cannot
// pass for a line of swarmkey's own.
func escape(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// jsonReport is WriteJSON's document.
type jsonReport struct {
	Files    int       `json:"files"`
	Findings []Finding `json:"findings"`
	New      int       `json:"new"`
	Notices  []string  `json:"notices"`
}

// WriteJSON writes the report as one JSON object: files, findings (each
// without its value), new (how many no baseline accepts) and notices.
func WriteJSON(w io.Writer, r *Report) error {
	doc := jsonReport{Files: r.Files, Findings: r.Findings, New: len(r.New()), Notices: r.Notices}
	if doc.Findings == nil {
		doc.Findings = []Finding{}
	}
	if doc.Notices == nil {
		doc.Notices = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// SARIF 2.1.0, as code-scanning tools read it: one run, one rule per rule
// id that fired, one result per finding.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	Name             string       `json:"name"`
	ShortDescription sarifMessage `json:"shortDescription"`
	Help             sarifMessage `json:"help"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifMessage      `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	RelatedLocations    []sarifLocation   `json:"relatedLocations,omitempty"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	BaselineState       string            `json:"baselineState"`
}

type sarifLocation struct {
	ID               int           `json:"id,omitempty"`
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
	Message          *sarifMessage `json:"message,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

// ruleHelp describes each Locust rule for SARIF readers.
var ruleHelp = map[Kind]string{
	KindHeader:           "A credential sent in an HTTP header (Authorization, X-API-Key, …).",
	KindAuthTuple:        "The password of an auth=(user, password) tuple or HTTPBasicAuth.",
	KindLoginPayload:     "A password, secret or token field of a request body or a call's argument.",
	KindConnectionString: "The password in a connection string's userinfo.",
	KindHostUserinfo:     "The password in a Locust host URL's userinfo.",
	KindEnvDefault:       "A credential as the fallback of os.environ.get or os.getenv.",
	KindLocustConf:       "A credential in locust.conf.",
	KindClassAttribute:   "A credential-named class attribute.",
	KindAssignment:       "A credential-named variable or config key.",
	KindToken:            "A known token format or a high-entropy value near a credential word (gitleaks' default rules).",
}

// WriteSARIF writes the report as SARIF 2.1.0. Messages show the masked
// preview only; the fingerprint goes to partialFingerprints, and a finding
// the baseline accepts is a note with baselineState "unchanged".
func WriteSARIF(w io.Writer, r *Report) error {
	driver := sarifDriver{Name: "swarmkey", InformationURI: "https://github.com/swarmkey/swarmkey/blob/main/docs/scan.md", Rules: []sarifRule{}}
	index := map[string]int{}
	results := []sarifResult{}
	for _, f := range r.Findings {
		i, ok := index[f.Rule]
		if !ok {
			i = len(driver.Rules)
			index[f.Rule] = i
			help := ruleHelp[f.Kind]
			driver.Rules = append(driver.Rules, sarifRule{ID: f.Rule, Name: ruleName(f.Rule),
				ShortDescription: sarifMessage{Text: "Hardcoded credential: " + string(f.Kind)},
				Help:             sarifMessage{Text: help + " Move it into swarmkey: swarmkey import --finding FILE:LINE --policy NAME (docs/scan.md)."}})
		}
		msg := fmt.Sprintf("Hardcoded credential (%s)", f.Kind)
		if f.Variable != "" {
			msg += " in " + f.Variable
		}
		msg += ": " + f.Preview
		if f.Provided != nil {
			msg += "; policy " + f.Provided.Policy + " already provides it (" + f.Provided.By + ")"
		}
		res := sarifResult{RuleID: f.Rule, RuleIndex: i, Level: "error", Message: sarifMessage{Text: msg},
			Locations:           []sarifLocation{{PhysicalLocation: physical(f.File, f.Line, f.Column)}},
			PartialFingerprints: map[string]string{"swarmkey/v1": f.Fingerprint}, BaselineState: "new"}
		if f.Baselined {
			res.Level, res.BaselineState = "note", "unchanged"
		}
		for j, u := range f.UsedAt {
			res.RelatedLocations = append(res.RelatedLocations, sarifLocation{ID: j + 1,
				PhysicalLocation: physical(u.File, u.Line, 0), Message: &sarifMessage{Text: "used as " + u.What}})
		}
		results = append(results, res)
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0",
		Runs: []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

func physical(file string, line, col int) sarifPhysical {
	return sarifPhysical{ArtifactLocation: sarifArtifact{URI: (&url.URL{Path: file}).String()}, Region: sarifRegion{StartLine: line, StartColumn: col}}
}

// ruleName turns "locust/env-default" into "LocustEnvDefault".
func ruleName(id string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(id, func(r rune) bool { return r == '/' || r == '-' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}
