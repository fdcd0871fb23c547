package testenv

import (
	"strings"
	"testing"
)

// cloud-init's validator accepts cloud-config and names what is wrong with
// a config that is not.
func TestCloudConfigSchema(t *testing.T) {
	t.Parallel()
	valid := "#cloud-config\nwrite_files:\n  - path: /etc/app/branch\n    content: \"main abc123\\n\"\nruncmd:\n  - systemctl restart app\n"
	if err := CloudConfigSchema(t, valid); err != nil {
		t.Errorf("valid cloud-config was refused: %v", err)
	}
	err := CloudConfigSchema(t, "#cloud-config\nruncmd: restart the app\nwrite_files: 3\n")
	if err == nil || !strings.Contains(err.Error(), "write_files") {
		t.Errorf("write_files: 3 was let through: %v", err)
	}
}
