package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/scan"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/termtext"
)

// maxImportInput caps what import reads from standard input.
const maxImportInput = 64 << 10

func newImportCommand(g *globals) *cobra.Command {
	var finding, variable, fromEnv, policy string
	var write, plugin bool
	cmd := &cobra.Command{
		Use:   "import --policy NAME [--finding FILE:LINE [--write] | --from-env NAME | < value]",
		Short: "Store a hardcoded credential as the first current version of a policy's secret",
		Long: `import turns a finding of "swarmkey scan" into a managed credential: it writes
the value as the first current version of the policy's secret (after the
target's canary accepts it), never echoing it, and records credential.imported
in the audit log. With --finding it then prints the change to make in the file
as a unified diff (the old value masked): the variable "swarmkey exec" sets, or
with --plugin the plugin's credential() call; --write applies it. The value
may also come from an environment variable (--from-env) or standard input.
The first scheduled rotation then replaces the imported value.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if policy == "" {
				return usageError("--policy is required: the policy whose secret receives the value")
			}
			sources := 0
			for _, s := range []string{finding, fromEnv} {
				if s != "" {
					sources++
				}
			}
			if sources > 1 {
				return usageError("give --finding or --from-env, not both")
			}
			if finding == "" && (write || plugin || variable != "") {
				return usageError("--write, --plugin and --variable go with --finding")
			}
			var value secret.Secret
			var source string
			var found *scan.Finding
			var file string
			var src []byte
			switch {
			case finding != "":
				var err error
				file, src, found, err = findingAt(finding, variable)
				if err != nil {
					return err
				}
				value = found.Value
				source = fmt.Sprintf("finding %s (%s)", found.Location(), found.Kind)
			case fromEnv != "":
				v, ok := os.LookupEnv(fromEnv)
				if !ok || v == "" {
					return usageError("--from-env %s: the variable is unset or empty", fromEnv)
				}
				value, source = secret.FromString(v), "environment variable "+fromEnv
			default:
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxImportInput+1))
				if err != nil {
					return fmt.Errorf("read standard input: %w", err)
				}
				if len(b) > maxImportInput {
					return usageError("standard input holds more than %d KiB: give the credential alone", maxImportInput>>10)
				}
				b = bytes.TrimRight(b, "\r\n")
				if len(b) == 0 {
					return usageError("nothing to import: give --finding FILE:LINE, --from-env NAME, or the value on standard input")
				}
				value, source = secret.New(b), "standard input"
			}

			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			res, err := sess.Import(cmd.Context(), app.ImportRequest{Policy: policy, Value: value, Source: source, Actor: "operator:" + lease.OperatorName()})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "imported %s: version %s is current (from %s); the first rotation replaces it\n",
				policy, termtext.Printable(res.VersionID), termtext.Printable(source))
			if found == nil {
				fmt.Fprintf(g.stdout, "scripts read it as %s under `swarmkey exec --policy %s`, or as credential(%q)[%q] with the plugin\n",
					res.EnvVar, policy, policy, res.Field)
				return nil
			}
			r := scan.Replacement{EnvVar: res.EnvVar}
			if plugin {
				r = scan.Replacement{Policy: policy, Field: res.Field}
			}
			change, err := scan.RewriteDiff(file, src, *found, r)
			if err != nil {
				return fmt.Errorf("the value is imported, but the file cannot be changed: %w", err)
			}
			fmt.Fprint(g.stdout, printableDiff(change.Diff))
			if !write {
				fmt.Fprintf(g.stdout, "apply it with --write, or edit %s by hand; run the script under `swarmkey exec --policy %s`\n", termtext.Printable(file), policy)
				return nil
			}
			info, err := os.Stat(file)
			if err != nil {
				return err
			}
			if err := os.WriteFile(file, change.New, info.Mode().Perm()); err != nil {
				return fmt.Errorf("the value is imported, but %s could not be written: %w", termtext.Printable(file), err)
			}
			fmt.Fprintf(g.stdout, "wrote %s; run it under `swarmkey exec --policy %s`\n", termtext.Printable(file), policy)
			return nil
		},
	}
	cmd.Flags().StringVar(&policy, "policy", "", "the policy whose secret receives the value")
	cmd.Flags().StringVar(&finding, "finding", "", "FILE:LINE of a `swarmkey scan` finding")
	cmd.Flags().StringVar(&variable, "variable", "", "with --finding: the finding's variable, when the line has several")
	cmd.Flags().StringVar(&fromEnv, "from-env", "", "read the value from this environment variable")
	cmd.Flags().BoolVar(&write, "write", false, "with --finding: apply the change to the file")
	cmd.Flags().BoolVar(&plugin, "plugin", false, "with --finding in Python: read it with the plugin's credential() instead of exec's variable")
	return cmd
}

// findingAt scans the file of FILE:LINE and returns its content and the
// finding at that line (the one of variable, when the line has several).
func findingAt(spec, variable string) (string, []byte, *scan.Finding, error) {
	i := strings.LastIndexByte(spec, ':')
	if i <= 0 {
		return "", nil, nil, usageError("--finding %q: use FILE:LINE, as swarmkey scan prints it", spec)
	}
	file := spec[:i]
	line, err := strconv.Atoi(spec[i+1:])
	if err != nil || line < 1 {
		return "", nil, nil, usageError("--finding %q: %q is not a line number", spec, spec[i+1:])
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return "", nil, nil, usageError("--finding %s: %v", spec, err)
	}
	findings, _, err := scan.ScanFile(file, src, scan.AllRules)
	if err != nil {
		return "", nil, nil, err
	}
	var at []scan.Finding
	var names []string
	for _, f := range findings {
		if f.Line == line && (variable == "" || f.Variable == variable) {
			at = append(at, f)
			names = append(names, strconv.Quote(f.Variable))
		}
	}
	switch {
	case len(at) == 0 && variable != "":
		return "", nil, nil, usageError("--finding %s --variable %s: no finding of that variable on that line: `swarmkey scan %s` lists the findings", spec, variable, file)
	case len(at) == 0:
		return "", nil, nil, usageError("--finding %s: no finding on that line: `swarmkey scan %s` lists the findings", spec, file)
	case len(at) > 1:
		return "", nil, nil, usageError("--finding %s: the line has %d findings (%s): choose one with --variable", spec, len(at), strings.Join(names, ", "))
	}
	return file, src, &at[0], nil
}
