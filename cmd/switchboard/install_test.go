package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The install files are read as Docker and systemd would, since neither
// runs here: the image runs a static binary as a non-root user with its
// data in a volume, and the unit runs serve as its own user with its state
// directory.

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct{ cmd, args string }

func readDockerfile(t *testing.T, path string) []dockerInstruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if rest, more := strings.CutSuffix(line, `\`); more {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	ins := readDockerfile(t, filepath.Join("..", "..", "Dockerfile"))
	last := -1
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	if last <= 0 {
		t.Fatalf("the Dockerfile has no build stage before its final one: %v", ins)
	}
	build, final := ins[:last], ins[last:]

	// The builder's Go is the one go.mod asks for.
	_, goVersion := goModVersion(t)
	if !strings.HasPrefix(build[0].args, "golang:"+goVersion) {
		t.Errorf("the build stage is %q, want golang:%s (go.mod)", build[0].args, goVersion)
	}
	// The binary is built static.
	var built bool
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			built = true
			if !strings.Contains(in.args, "CGO_ENABLED=0") || !strings.Contains(in.args, "./cmd/switchboard") {
				t.Errorf("the build is %q: want CGO_ENABLED=0 go build ... ./cmd/switchboard", in.args)
			}
		}
	}
	if !built {
		t.Error("the build stage never runs go build")
	}
	// The final image: a base with no C library, a non-root user, /data
	// as a volume, the binary as the entrypoint.
	if base := final[0].args; base != "scratch" && !strings.Contains(base, "distroless/static") {
		t.Errorf("the final image is FROM %s, want scratch or a distroless static base", base)
	}
	got := map[string]string{}
	for _, in := range final {
		got[in.cmd] = in.args
	}
	if user, _, _ := strings.Cut(got["USER"], ":"); user == "" || user == "root" || user == "0" {
		t.Errorf("the image runs as USER %q, want a non-root user", got["USER"])
	}
	if !strings.Contains(got["VOLUME"], "/data") || got["WORKDIR"] != "/data" {
		t.Errorf("VOLUME %q, WORKDIR %q: want the data in the /data volume", got["VOLUME"], got["WORKDIR"])
	}
	if got["ENTRYPOINT"] != `["/usr/local/bin/switchboard"]` || !strings.Contains(strings.Join(copies(final), " "), "/usr/local/bin/switchboard") {
		t.Errorf("ENTRYPOINT %q: want the copied binary /usr/local/bin/switchboard", got["ENTRYPOINT"])
	}
	// The data directory is the image user's, or the volume starts out
	// unwritable.
	if !slices.ContainsFunc(copies(final), func(c string) bool {
		return strings.Contains(c, "--chown="+got["USER"]) && strings.HasSuffix(c, " /data")
	}) {
		t.Errorf("nothing gives /data to %s: %q", got["USER"], copies(final))
	}
}

func copies(ins []dockerInstruction) []string {
	var out []string
	for _, in := range ins {
		if in.cmd == "COPY" {
			out = append(out, in.args)
		}
	}
	return out
}

// goModVersion is go.mod's go line ("1.26.7"), and its major.minor.
func goModVersion(t *testing.T) (full, minor string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go ((\d+\.\d+)(\.\d+)?)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1]), string(m[2])
}

// Built with CGO_ENABLED=0, as the Dockerfile does, no package of the
// binary needs cgo: the binary is static.
func TestBuildsStatic(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if .CgoFiles}}{{.ImportPath}} uses cgo{{end}}{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}`, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("CGO_ENABLED=0 go list -deps: %v\n%s", err, out)
	}
}

func TestREADMEInstall(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion, _ := goModVersion(t)
	for _, want := range []string{"Go " + goVersion + " or newer", "go install github.com/switchboardhq/switchboard/cmd/switchboard@latest", "docs/install.md"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the README does not say %q", want)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "docs", "switchboard.service")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			sections[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: %q is not KEY=VALUE in a section", path, line)
			}
			sections[section][k] = append(sections[section][k], v)
		}
	}
	svc := sections["Service"]
	one := func(k string) string {
		if len(svc[k]) != 1 {
			t.Errorf("[Service] %s is set %d times, want once", k, len(svc[k]))
			return ""
		}
		return svc[k][0]
	}
	if got := one("ExecStart"); got != "/usr/local/bin/switchboard serve --config /etc/switchboard/switchboard.yaml" {
		t.Errorf("ExecStart=%s", got)
	}
	if user := one("User"); user == "" || user == "root" || user == "0" {
		t.Errorf("User=%s, want a user of its own", user)
	}
	if got := one("StateDirectory"); got != "switchboard" {
		t.Errorf("StateDirectory=%s, want switchboard (/var/lib/switchboard)", got)
	}
	if got := one("WorkingDirectory"); got != "/var/lib/switchboard" {
		t.Errorf("WorkingDirectory=%s, want the state directory", got)
	}
	if got := one("KillSignal"); got != "SIGTERM" {
		t.Errorf("KillSignal=%s: serve drains on SIGTERM", got)
	}
	if len(sections["Install"]["WantedBy"]) == 0 {
		t.Error("[Install] has no WantedBy, so enable does nothing")
	}
	// systemd's own check, where it is installed; it only misses the binary.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		dir := t.TempDir()
		unit := filepath.Join(dir, "switchboard.service")
		if err := os.WriteFile(unit, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "/usr/local/bin/switchboard is not executable") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
	}
}
