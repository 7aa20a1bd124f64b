// Package deploy_test checks the deployment files under deploy/: the systemd
// unit (with systemd-analyze), the container build (statically, plus a real
// static build of the binary) and the Kubernetes CronJob (strict decoding of
// every document, and `swarmkey validate` of the config it ships).
//
// Tools it needs (Debian packages): systemd (systemd-analyze,
// systemd-sysusers) and procps (/bin/kill, named by ExecReload=). A missing
// tool fails the test with the package to install; nothing is skipped.
package deploy_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v3"
)

// The paths the deployment files agree on.
const (
	unitFile       = "systemd/swarmkey.service"
	sysusersFile   = "systemd/swarmkey.sysusers"
	dockerfile     = "container/Dockerfile"
	dockerignore   = "container/Dockerfile.dockerignore"
	cronjobFile    = "k8s/cronjob.yaml"
	installedBin   = "/usr/local/bin/swarmkey"
	configPath     = "/etc/swarmkey/swarmkey.yaml"
	databaseEnvVar = "SWARMKEY_DATABASE_URL"
)

// The flags the Dockerfile builds with; staticBinary builds with the same.
var staticBuildFlags = []string{"-trimpath", "-ldflags", "-s -w"}

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// staticBinary builds ./cmd/swarmkey as the Dockerfile does (CGO_ENABLED=0,
// -trimpath, -ldflags "-s -w"), once per test binary, and returns its path.
func staticBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "swarmkey-deploy-test")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "swarmkey")
		args := append([]string{"build"}, staticBuildFlags...)
		args = append(args, "-o", buildPath, "../cmd/swarmkey")
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("CGO_ENABLED=0 go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	require.NoError(t, buildErr)
	return buildPath
}

// requireCommandParses runs the binary with args plus --help: cobra parses
// the command and every flag before it prints help, so a renamed command or
// flag fails here.
func requireCommandParses(t *testing.T, where string, args []string) {
	t.Helper()
	out, err := exec.Command(staticBinary(t), append(slices.Clone(args), "--help")...).CombinedOutput()
	require.NoError(t, err, "%s: swarmkey %s is not a valid command line:\n%s", where, strings.Join(args, " "), out)
}

// requireTool finds a program or fails the test naming the package to install.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: install the Debian package %q (apt-get install -y %s); "+
			"the deployment checks need it and are never skipped", name, debianPackage, debianPackage)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// --- systemd -----------------------------------------------------------------

// unitLine is one Key=Value of a unit file.
type unitLine struct {
	section, key, value string
	line                int
}

// parseUnit reads a unit file: sections, assignments, comments. Continuation
// lines (a trailing backslash) are joined.
func parseUnit(t *testing.T, text string) []unitLine {
	t.Helper()
	var out []unitLine
	section := ""
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
		default:
			k, v, ok := strings.Cut(l, "=")
			require.True(t, ok, "%s:%d: not Key=Value: %q", unitFile, n, l)
			out = append(out, unitLine{section, strings.TrimSpace(k), strings.TrimSpace(v), n})
		}
	}
	return out
}

// values lists every value assigned to section.key, in order.
func values(lines []unitLine, section, key string) []string {
	var vs []string
	for _, l := range lines {
		if l.section == section && l.key == key {
			vs = append(vs, l.value)
		}
	}
	return vs
}

// unitCopy writes the unit into a temporary directory with ExecStart=
// pointing at a binary that exists (systemd-analyze verify checks that the
// executable is there), and returns the copy's path.
func unitCopy(t *testing.T) string {
	t.Helper()
	bin := staticBinary(t)
	text := readFile(t, unitFile)
	want := "ExecStart=" + installedBin + " "
	require.Equal(t, 1, strings.Count(text, "\n"+want), "%s: expected exactly one line starting with %q", unitFile, want)
	text = strings.Replace(text, "\n"+want, "\nExecStart="+bin+" ", 1)
	path := filepath.Join(t.TempDir(), "swarmkey.service")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// systemdAnalyzeVerify runs `systemd-analyze verify` on a unit file:
//
//   - --man=no: verify would run man(1) for every man: URL in Documentation=;
//     the unit names none, and CI images ship without man pages.
//   - --recursive-errors=no: report problems of this unit only, not of the
//     host's units it is ordered against (network-online.target,
//     postgresql.service, multi-user.target): those are not ours to fix.
//
// verify exits 0 on many problems (unknown keys, unparsable values are only
// logged), so callers must also require empty output.
func systemdAnalyzeVerify(t *testing.T, unit string) (string, error) {
	t.Helper()
	tool := requireTool(t, "systemd-analyze", "systemd")
	cmd := exec.Command(tool, "verify", "--man=no", "--recursive-errors=no", unit)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=cat")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSystemdUnitVerifies(t *testing.T) {
	requireTool(t, "systemd-analyze", "systemd")
	// ExecReload=/bin/kill: verify also checks that this exists.
	if _, err := os.Stat("/bin/kill"); err != nil {
		t.Fatalf("/bin/kill (ExecReload=) is missing: install the Debian package \"procps\" (apt-get install -y procps): %v", err)
	}
	unit := unitCopy(t)
	out, err := systemdAnalyzeVerify(t, unit)
	require.NoError(t, err, "systemd-analyze verify %s:\n%s", unitFile, out)
	require.Empty(t, strings.TrimSpace(out), "systemd-analyze verify %s printed warnings", unitFile)

	// The check has teeth: verify reports a misspelt key and a bad value in a
	// copy of the same unit (so empty output above means verify read ours).
	bad := readFile(t, unit) + "\n[Service]\nProtectSytem=strict\nWatchdogSec=thirty\n"
	badPath := filepath.Join(t.TempDir(), "swarmkey.service")
	require.NoError(t, os.WriteFile(badPath, []byte(bad), 0o644))
	out, _ = systemdAnalyzeVerify(t, badPath)
	require.Contains(t, out, "ProtectSytem", "verify did not report an unknown key")
	require.Contains(t, out, "thirty", "verify did not report an unparsable value")
}

func TestSystemdUnitSecurityExposure(t *testing.T) {
	tool := requireTool(t, "systemd-analyze", "systemd")
	unit := unitCopy(t)
	// --offline=yes reads the file instead of asking a running systemd;
	// --threshold is on a 0..100 scale: 20 means an exposure of at most 2.0
	// ("OK") out of 10.
	cmd := exec.Command(tool, "security", "--offline=yes", "--threshold=20", "--no-pager", unit)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_COLORS=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "systemd-analyze security: exposure above 2.0 (or an error):\n%s", out)
}

// hardening lists the [Service] settings the unit must carry, with their
// exact values; the README's table must explain each.
var hardening = []struct{ key, value string }{
	{"NoNewPrivileges", "yes"},
	{"CapabilityBoundingSet", ""},
	{"AmbientCapabilities", ""},
	{"ProtectSystem", "strict"},
	{"ReadWritePaths", "/var/lib/swarmkey"},
	{"ProtectHome", "yes"},
	{"PrivateTmp", "yes"},
	{"PrivateDevices", "yes"},
	{"ProtectKernelTunables", "yes"},
	{"ProtectKernelModules", "yes"},
	{"ProtectKernelLogs", "yes"},
	{"ProtectControlGroups", "yes"},
	{"ProtectClock", "yes"},
	{"ProtectHostname", "yes"},
	{"ProtectProc", "invisible"},
	{"PrivateMounts", "yes"},
	{"RestrictNamespaces", "yes"},
	{"LockPersonality", "yes"},
	{"MemoryDenyWriteExecute", "yes"},
	{"RestrictRealtime", "yes"},
	{"RestrictSUIDSGID", "yes"},
	{"RemoveIPC", "yes"},
	{"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
	{"SystemCallArchitectures", "native"},
	{"SystemCallFilter", "@system-service"},
	{"SystemCallErrorNumber", "EPERM"},
	{"UMask", "0077"},
}

func TestSystemdUnitSettings(t *testing.T) {
	lines := parseUnit(t, readFile(t, unitFile))
	one := func(section, key, want string) {
		t.Helper()
		got := values(lines, section, key)
		require.Equal(t, []string{want}, got, "%s: [%s] %s=", unitFile, section, key)
	}
	one("Service", "Type", "notify")
	one("Service", "NotifyAccess", "main")
	one("Service", "WatchdogSec", "30s")
	one("Service", "ExecStart", installedBin+" serve --config "+configPath)
	one("Service", "ExecReload", "/bin/kill -HUP $MAINPID")
	one("Service", "Restart", "on-failure")
	one("Service", "TimeoutStopSec", "45s")
	one("Service", "User", "swarmkey")
	one("Service", "Group", "swarmkey")
	one("Service", "StateDirectory", "swarmkey")
	one("Service", "StateDirectoryMode", "0700")
	one("Service", "RuntimeDirectory", "swarmkey")
	one("Service", "ConfigurationDirectory", "swarmkey")
	one("Install", "WantedBy", "multi-user.target")
	requireCommandParses(t, unitFile+" ExecStart=", strings.Fields(values(lines, "Service", "ExecStart")[0])[1:])
	require.Empty(t, values(lines, "Service", "DynamicUser"), "DynamicUser= does not fit the file store (see the comment in the unit)")
	for _, h := range hardening {
		require.Contains(t, values(lines, "Service", h.key), h.value, "%s: [Service] %s=%s", unitFile, h.key, h.value)
	}
	// An empty assignment resets a list; nothing may add capabilities back.
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		require.Equal(t, []string{""}, values(lines, "Service", key), "%s must be assigned once, empty", key)
	}
	// The unit and the sysusers file agree on the user.
	require.Contains(t, readFile(t, sysusersFile), "\nu swarmkey ")
}

func TestSystemdREADMEExplainsHardening(t *testing.T) {
	readme := readFile(t, "systemd/README.md")
	for _, h := range hardening {
		require.Contains(t, readme, "`"+h.key+"=", "systemd/README.md: the hardening table must explain %s=", h.key)
	}
	for _, s := range []string{"swarmkey keygen", "systemctl enable --now swarmkey", "systemctl reload swarmkey", "journalctl -u swarmkey", "systemd-sysusers"} {
		require.Contains(t, readme, s)
	}
}

func TestSysusers(t *testing.T) {
	var fields []string
	for _, l := range strings.Split(readFile(t, sysusersFile), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			require.Nil(t, fields, "%s: one user line expected", sysusersFile)
			fields = regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(l, -1)
		}
	}
	require.Len(t, fields, 6, "%s: u NAME ID GECOS HOME SHELL", sysusersFile)
	require.Equal(t, []string{"u", "swarmkey", "-"}, fields[:3], "a system user with an automatic UID")
	require.Equal(t, "/var/lib/swarmkey", fields[4], "home: the state directory")
	require.Equal(t, "/usr/sbin/nologin", fields[5], "no login shell")

	// systemd-sysusers itself parses it, against an empty root.
	tool := requireTool(t, "systemd-sysusers", "systemd")
	abs, err := filepath.Abs(sysusersFile)
	require.NoError(t, err)
	out, err := exec.Command(tool, "--dry-run", "--root="+t.TempDir(), abs).CombinedOutput()
	require.NoError(t, err, "systemd-sysusers --dry-run:\n%s", out)
	require.Contains(t, string(out), "Creating user 'swarmkey'")
}

// --- container ---------------------------------------------------------------

type instruction struct {
	cmd  string // upper case
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions, joining lines that
// end in a backslash and dropping comments and parser directives.
func parseDockerfile(t *testing.T, text string) []instruction {
	t.Helper()
	var out []instruction
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue
			}
			l = strings.TrimSuffix(l, "\\") + " " + next
		}
		cmd, args, _ := strings.Cut(l, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), n})
	}
	return out
}

func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	require.NoError(t, json.Unmarshal([]byte(in.args), &v),
		"%s:%d: %s must use the exec form (a JSON array): the final image has no shell", dockerfile, in.line, in.cmd)
	return v
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, readFile(t, dockerfile))
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		require.NotEmpty(t, stages, "%s:%d: %s before the first FROM", dockerfile, in.line, in.cmd)
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	require.Len(t, stages, 2, "multi-stage: a build stage and a run stage")
	build, final := stages[0], stages[1]

	require.Equal(t, "golang:1.26-bookworm AS build", build[0].args)
	var buildRun string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildRun = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath -ldflags \"-s -w\"", "-o /out/swarmkey ./cmd/swarmkey"} {
		require.Contains(t, buildRun, want, "the build stage's go build")
	}

	// The run stage: distroless/static (no shell, no libc), nothing run in it,
	// a non-root user, exec-form entry point.
	require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", final[0].args)
	var user string
	var entrypoint, command []string
	copied := false
	for _, in := range final[1:] {
		switch in.cmd {
		case "RUN", "SHELL":
			t.Fatalf("%s:%d: %s in the final stage: it has no shell", dockerfile, in.line, in.cmd)
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = execForm(t, in)
		case "CMD":
			command = execForm(t, in)
		case "COPY":
			copied = copied || in.args == "--from=build /out/swarmkey /swarmkey"
		}
	}
	require.True(t, copied, "the final stage copies /out/swarmkey from the build stage to /swarmkey")
	require.Equal(t, "65532:65532", user, "USER: distroless's nonroot, numeric so that Kubernetes can check runAsNonRoot")
	require.Equal(t, []string{"/swarmkey"}, entrypoint)
	require.Equal(t, []string{"run-due", "--config", configPath}, command)
	requireCommandParses(t, dockerfile+" CMD", command)
}

func TestStaticBinary(t *testing.T) {
	bin := staticBinary(t)
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "PT_INTERP: the binary needs a dynamic loader; distroless/static has none")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "PT_DYNAMIC: the binary is dynamically linked")
	}
	require.Nil(t, f.Section(".interp"))
	libs, err := f.ImportedLibraries()
	if err == nil {
		require.Empty(t, libs)
	}
	require.Nil(t, f.Section(".symtab"), "-s: no symbol table")
	require.Nil(t, f.Section(".debug_info"), "-w: no DWARF")

	// -trimpath: the checkout's path is nowhere in the binary.
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.False(t, bytes.Contains(data, []byte(root+"/")), "the binary contains the build path %s: -trimpath missing", root)
}

// dockerignoreRegexp turns one .dockerignore pattern (Go filepath.Match
// syntax plus **, anchored at the context root) into a regexp.
func dockerignoreRegexp(pattern string) *regexp.Regexp {
	p := strings.Trim(filepath.ToSlash(filepath.Clean(pattern)), "/")
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	var patterns []*regexp.Regexp
	for _, l := range strings.Split(readFile(t, dockerignore), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(l, "!"), "exceptions are not supported by this check: %q", l)
		patterns = append(patterns, dockerignoreRegexp(l))
	}

	// Every file of this module that `go build ./cmd/swarmkey` reads.
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,CgoFiles,EmbedFiles,Module", "../cmd/swarmkey")
	out, err := cmd.Output()
	require.NoError(t, err, "go list")
	needed := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                           string
			GoFiles, CgoFiles, EmbedFiles []string
			Module                        *struct{ Main bool }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		require.NoError(t, err)
		for _, f := range slices.Concat(p.GoFiles, p.CgoFiles, p.EmbedFiles) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	require.Contains(t, needed, "cmd/swarmkey/main.go")

	for _, f := range needed {
		parts := strings.Split(f, "/")
		for i := range parts {
			prefix := strings.Join(parts[:i+1], "/")
			for _, re := range patterns {
				require.False(t, re.MatchString(prefix), "%s excludes %s (pattern %s), which the build needs", dockerignore, prefix, re)
			}
		}
	}
	// The matcher itself.
	require.True(t, dockerignoreRegexp("**/testdata").MatchString("config/testdata"))
	require.True(t, dockerignoreRegexp("bin").MatchString("bin"))
	require.False(t, dockerignoreRegexp("swarmkey").MatchString("cmd/swarmkey"))
}

// --- Kubernetes ----------------------------------------------------------------

// The subset of the Kubernetes API the manifest uses. Decoding is strict
// (KnownFields), so a misspelt field is an error, as with kubectl's strict
// field validation. A field added to the manifest must be added here too.
type (
	objectMeta struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	serviceAccount struct {
		APIVersion                   string     `yaml:"apiVersion"`
		Kind                         string     `yaml:"kind"`
		Metadata                     objectMeta `yaml:"metadata"`
		AutomountServiceAccountToken *bool      `yaml:"automountServiceAccountToken"`
	}
	configMap struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   objectMeta        `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}
	seccompProfile struct {
		Type string `yaml:"type"`
	}
	containerSecurityContext struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool  `yaml:"privileged"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile *seccompProfile `yaml:"seccompProfile"`
	}
	podSecurityContext struct {
		RunAsNonRoot   *bool           `yaml:"runAsNonRoot"`
		RunAsUser      *int64          `yaml:"runAsUser"`
		RunAsGroup     *int64          `yaml:"runAsGroup"`
		SeccompProfile *seccompProfile `yaml:"seccompProfile"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	container struct {
		Name            string                   `yaml:"name"`
		Image           string                   `yaml:"image"`
		ImagePullPolicy string                   `yaml:"imagePullPolicy"`
		Args            []string                 `yaml:"args"`
		Env             []envVar                 `yaml:"env"`
		SecurityContext containerSecurityContext `yaml:"securityContext"`
		Resources       struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	podSpec struct {
		ServiceAccountName            string             `yaml:"serviceAccountName"`
		AutomountServiceAccountToken  *bool              `yaml:"automountServiceAccountToken"`
		RestartPolicy                 string             `yaml:"restartPolicy"`
		TerminationGracePeriodSeconds *int64             `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               podSecurityContext `yaml:"securityContext"`
		Containers                    []container        `yaml:"containers"`
		Volumes                       []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name        string `yaml:"name"`
				DefaultMode int    `yaml:"defaultMode"`
			} `yaml:"configMap"`
		} `yaml:"volumes"`
	}
	cronJob struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   objectMeta `yaml:"metadata"`
		Spec       struct {
			Schedule                   string `yaml:"schedule"`
			TimeZone                   string `yaml:"timeZone"`
			ConcurrencyPolicy          string `yaml:"concurrencyPolicy"`
			StartingDeadlineSeconds    *int64 `yaml:"startingDeadlineSeconds"`
			SuccessfulJobsHistoryLimit *int32 `yaml:"successfulJobsHistoryLimit"`
			FailedJobsHistoryLimit     *int32 `yaml:"failedJobsHistoryLimit"`
			JobTemplate                struct {
				Metadata objectMeta `yaml:"metadata"`
				Spec     struct {
					BackoffLimit            *int32 `yaml:"backoffLimit"`
					ActiveDeadlineSeconds   *int64 `yaml:"activeDeadlineSeconds"`
					TTLSecondsAfterFinished *int32 `yaml:"ttlSecondsAfterFinished"`
					Template                struct {
						Metadata objectMeta `yaml:"metadata"`
						Spec     podSpec    `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			} `yaml:"jobTemplate"`
		} `yaml:"spec"`
	}
)

// yamlDocument is one document of a multi-document file and the file line
// it starts on.
type yamlDocument struct {
	text string
	line int
}

// splitDocuments splits a YAML stream at its "---" lines, so that each
// document can be decoded on its own with file line numbers in errors.
func splitDocuments(text string) []yamlDocument {
	var docs []yamlDocument
	cur := yamlDocument{line: 1}
	for i, l := range strings.SplitAfter(text, "\n") {
		if strings.TrimRight(l, " \t\r\n") == "---" {
			docs = append(docs, cur)
			cur = yamlDocument{line: i + 2}
			continue
		}
		cur.text += l
	}
	return append(docs, cur)
}

var yamlErrorLine = regexp.MustCompile(`line (\d+)`)

// strictDecode decodes one document into v, rejecting unknown fields; errors
// name lines of the file.
func strictDecode(t *testing.T, doc yamlDocument, v any) {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(doc.text))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		msg := yamlErrorLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
			var n int
			fmt.Sscanf(m, "line %d", &n)
			return fmt.Sprintf("%s:%d", cronjobFile, n+doc.line-1)
		})
		t.Fatalf("%s", msg)
	}
}

func TestCronJob(t *testing.T) {
	text := readFile(t, cronjobFile)

	// The whole stream parses as YAML, and splitDocuments agrees with the
	// YAML decoder on where documents are.
	dec := yaml.NewDecoder(strings.NewReader(text))
	var streamDocs int
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err, "%s: YAML", cronjobFile)
		}
		if len(doc.Content) > 0 {
			streamDocs++
		}
	}

	var (
		sa    *serviceAccount
		cm    *configMap
		cj    *cronJob
		kinds []string
	)
	for _, doc := range splitDocuments(text) {
		var node yaml.Node
		err := yaml.Unmarshal([]byte(doc.text), &node)
		require.NoError(t, err, "%s: document at line %d", cronjobFile, doc.line)
		if len(node.Content) == 0 {
			continue // a document of comments only
		}
		require.Equal(t, yaml.MappingNode, node.Content[0].Kind, "%s:%d: not a mapping", cronjobFile, doc.line)
		var head struct {
			Kind string `yaml:"kind"`
		}
		require.NoError(t, node.Decode(&head))
		kinds = append(kinds, head.Kind)
		switch head.Kind {
		case "ServiceAccount":
			sa = new(serviceAccount)
			strictDecode(t, doc, sa)
		case "ConfigMap":
			cm = new(configMap)
			strictDecode(t, doc, cm)
		case "CronJob":
			cj = new(cronJob)
			strictDecode(t, doc, cj)
		default:
			t.Fatalf("%s:%d: unexpected kind %q", cronjobFile, doc.line, head.Kind)
		}
	}
	require.Equal(t, streamDocs, len(kinds), "documents found by splitting at --- lines and by the YAML decoder differ")
	require.Equal(t, []string{"ServiceAccount", "ConfigMap", "CronJob"}, kinds)

	// All in one namespace.
	for _, m := range []objectMeta{sa.Metadata, cm.Metadata, cj.Metadata} {
		require.Equal(t, "swarmkey", m.Namespace, "%s", m.Name)
	}

	// Workload identity, both platforms.
	require.Equal(t, "v1", sa.APIVersion)
	require.Contains(t, sa.Metadata.Annotations, "iam.gke.io/gcp-service-account")
	require.Contains(t, sa.Metadata.Annotations, "eks.amazonaws.com/role-arn")

	require.Equal(t, "batch/v1", cj.APIVersion)
	s := cj.Spec
	require.Equal(t, "*/5 * * * *", s.Schedule)
	require.Equal(t, "Forbid", s.ConcurrencyPolicy)
	require.NotNil(t, s.StartingDeadlineSeconds)
	require.Positive(t, *s.StartingDeadlineSeconds)
	js := s.JobTemplate.Spec
	require.NotNil(t, js.BackoffLimit, "backoffLimit")
	require.NotNil(t, js.ActiveDeadlineSeconds, "activeDeadlineSeconds")
	require.Positive(t, *js.ActiveDeadlineSeconds)
	require.Less(t, *js.ActiveDeadlineSeconds, int64(5*60), "a hung run must end before the next schedule")

	pod := js.Template.Spec
	require.Equal(t, sa.Metadata.Name, pod.ServiceAccountName)
	require.Contains(t, []string{"Never", "OnFailure"}, pod.RestartPolicy)
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	require.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.NotNil(t, pod.SecurityContext.RunAsUser)
	require.Equal(t, int64(65532), *pod.SecurityContext.RunAsUser, "the image's nonroot user")
	require.Len(t, pod.Containers, 1)

	c := pod.Containers[0]
	require.NotEmpty(t, c.Args)
	require.Equal(t, "run-due", c.Args[0], "args")
	i := slices.Index(c.Args, "--config")
	require.True(t, i >= 0 && i+1 < len(c.Args), "args: --config FILE")
	configFile := c.Args[i+1]
	requireCommandParses(t, cronjobFile+" args", c.Args)

	sc := c.SecurityContext
	for name, b := range map[string]*bool{"runAsNonRoot": sc.RunAsNonRoot, "readOnlyRootFilesystem": sc.ReadOnlyRootFilesystem} {
		require.NotNil(t, b, "securityContext.%s", name)
		require.True(t, *b, "securityContext.%s", name)
	}
	require.NotNil(t, sc.AllowPrivilegeEscalation)
	require.False(t, *sc.AllowPrivilegeEscalation, "securityContext.allowPrivilegeEscalation")
	require.Equal(t, []string{"ALL"}, sc.Capabilities.Drop)
	for _, p := range []*seccompProfile{sc.SeccompProfile, pod.SecurityContext.SeccompProfile} {
		require.NotNil(t, p, "seccompProfile")
		require.Equal(t, "RuntimeDefault", p.Type)
	}
	for _, r := range []string{"cpu", "memory"} {
		require.Contains(t, c.Resources.Requests, r, "resources.requests")
	}
	require.Contains(t, c.Resources.Limits, "memory", "resources.limits")

	// The database URL: from a Secret, into the variable the config names.
	var dbEnv *envVar
	for i := range c.Env {
		if c.Env[i].Name == databaseEnvVar {
			dbEnv = &c.Env[i]
		}
	}
	require.NotNil(t, dbEnv, "env %s", databaseEnvVar)
	require.Empty(t, dbEnv.Value, "the database URL must not be written in the manifest")
	require.NotNil(t, dbEnv.ValueFrom)
	require.NotNil(t, dbEnv.ValueFrom.SecretKeyRef, "%s from a Secret", databaseEnvVar)

	// The config: the --config file is a key of the ConfigMap, mounted
	// read-only at its directory.
	var mounted bool
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != filepath.Dir(configFile) {
			continue
		}
		require.True(t, vm.ReadOnly)
		for _, v := range pod.Volumes {
			if v.Name == vm.Name {
				require.NotNil(t, v.ConfigMap, "volume %s", v.Name)
				require.Equal(t, cm.Metadata.Name, v.ConfigMap.Name)
				mounted = true
			}
		}
	}
	require.True(t, mounted, "no ConfigMap volume mounted at %s", filepath.Dir(configFile))
	config, ok := cm.Data[filepath.Base(configFile)]
	require.True(t, ok, "ConfigMap %s has no key %s", cm.Metadata.Name, filepath.Base(configFile))
	require.Contains(t, config, "database: env:"+databaseEnvVar+"\n")

	// swarmkey itself accepts the config.
	path := filepath.Join(t.TempDir(), filepath.Base(configFile))
	require.NoError(t, os.WriteFile(path, []byte(config), 0o644))
	out, err := exec.Command(staticBinary(t), "validate", path).CombinedOutput()
	require.NoError(t, err, "swarmkey validate of the ConfigMap's %s:\n%s", filepath.Base(configFile), out)
}
