package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CloudConfigSchema checks user data the way the instance will read it:
// with cloud-init's own validator, `cloud-init schema --config-file F`,
// which works offline against the JSON schema cloud-init ships. It returns
// the validator's complaint, or nil when the user data is valid
// cloud-config. It skips the test when cloud-init is not installed
// (`apt-get install -y --no-install-recommends cloud-init`), unless CI=true.
func CloudConfigSchema(t testing.TB, userData string) error {
	t.Helper()
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		missing(t, "cloud-init is not installed: `apt-get install -y --no-install-recommends cloud-init` provides `cloud-init schema`")
		return nil
	}
	f := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(f, []byte(userData), 0o600); err != nil {
		t.Fatalf("testenv: write user data: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "schema", "--config-file", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cloud-init schema --config-file: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
