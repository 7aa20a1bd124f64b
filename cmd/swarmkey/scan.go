package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/scan"
	"github.com/swarmkey/swarmkey/termtext"
)

func newScanCommand(g *globals) *cobra.Command {
	var output, baseline, writeBaseline string
	var genericOnly bool
	cmd := &cobra.Command{
		Use:   "scan [PATH…]",
		Short: "Find hardcoded credentials in a load-test repository (exit 1 when one is not in the baseline)",
		Long: `scan reads locustfiles and other Python, .env files, YAML, JSON, TOML and INI
configs, CI files, shell scripts and Dockerfiles under each PATH (default .)
and lists every hardcoded credential: file:line, kind, the variable that holds
it, a masked preview (never the value), where it is used, and the policy that
already provides it (the credential inventory, when a config is found).

Exit 0 when every finding is in the --baseline file, 1 when one is not, 2 on
bad input. "# swarmkey:ignore" on a line leaves it out. Move a finding into
swarmkey with: swarmkey import --finding FILE:LINE --policy NAME.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			opts := scan.Options{}
			if genericOnly {
				opts.Rules = scan.GenericRules
			}
			switch output {
			case "table", "json", "sarif":
			default:
				return usageError("-o %q: use table, json or sarif", output)
			}
			if baseline != "" {
				b, err := scan.LoadBaseline(baseline)
				if err != nil {
					return usageError("%v", err)
				}
				opts.Baseline = b
			}
			provided, err := g.inventory()
			if err != nil {
				return err
			}
			opts.Provided = provided
			report, err := scan.Scan(args, opts)
			if err != nil {
				return usageError("%v", err)
			}
			if writeBaseline != "" {
				var buf bytes.Buffer
				if err := scan.WriteBaseline(&buf, report.Findings); err != nil {
					return err
				}
				if err := os.WriteFile(writeBaseline, buf.Bytes(), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "wrote %s: %d findings accepted\n", termtext.Printable(writeBaseline), len(report.Findings))
				return nil
			}
			switch output {
			case "json":
				err = scan.WriteJSON(g.stdout, report)
			case "sarif":
				err = scan.WriteSARIF(g.stdout, report)
			default:
				err = scan.WriteTable(g.stdout, report)
			}
			if err != nil {
				return err
			}
			if n := len(report.New()); n > 0 {
				return &exitError{code: exitFailed, err: fmt.Errorf("%d hardcoded credentials not in the baseline: move them into swarmkey (swarmkey import --finding FILE:LINE --policy NAME), or accept them with --baseline", n)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or sarif (SARIF 2.1.0)")
	cmd.Flags().StringVar(&baseline, "baseline", "", "JSON file of accepted findings (see --write-baseline)")
	cmd.Flags().StringVar(&writeBaseline, "write-baseline", "", "write a baseline accepting every finding to this file, and exit 0")
	cmd.Flags().BoolVar(&genericOnly, "generic-only", false, "run only the generic rule set (gitleaks' default rules), for comparison")
	return cmd
}

// inventory is what the configured policies provide, for the scan's
// inventory column: none when no config is given and the default file does
// not exist (a scan needs no config); a config given that does not load is
// bad input.
func (g *globals) inventory() ([]scan.Provided, error) {
	if len(g.configPaths) == 0 && os.Getenv("SWARMKEY_CONFIG") == "" {
		if _, err := os.Stat(defaultConfigPath); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	return app.Inventory(cfg), nil
}

// printableDiff escapes control characters in a diff's lines, keeping tabs
// and line ends: the lines come from the scanned file.
func printableDiff(diff string) string {
	lines := strings.Split(diff, "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = termtext.Printable(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}
