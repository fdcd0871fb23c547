package gitsource_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/gitsource"
)

func demo(t *testing.T) (string, *gitsource.Source) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	created, err := gitsource.CreateDemo(dir)
	if err != nil || !created {
		t.Fatalf("CreateDemo = %v, %v", created, err)
	}
	src, err := gitsource.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, src
}

func names(bs []switchboard.Branch) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

func TestDemoBranches(t *testing.T) {
	t.Parallel()
	_, src := demo(t)
	all, err := src.Branches(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Most recently committed first.
	want := "bugfix/PROJ-1301-timeouts,feature/PROJ-1240-search,feature/PROJ-1234-login-fix,main"
	if got := strings.Join(names(all), ","); got != want {
		t.Errorf("branches %s, want %s", got, want)
	}
	for _, b := range all {
		if len(b.Commit) != 40 || b.PR != 0 || b.Author != "Switchboard demo" || b.UpdatedAt.IsZero() {
			t.Errorf("%+v", b)
		}
	}
	if all[0].UpdatedAt != time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC) {
		t.Errorf("newest commit at %v", all[0].UpdatedAt)
	}

	// The same commits on every machine.
	_, again := demo(t)
	other, _ := again.Branches(context.Background())
	for i := range all {
		if all[i].Commit != other[i].Commit {
			t.Errorf("%s: commit %s in one demo, %s in another", all[i].Name, all[i].Commit, other[i].Commit)
		}
	}
}

func TestFind(t *testing.T) {
	t.Parallel()
	_, src := demo(t)
	tests := []struct {
		query string
		want  []string
	}{
		{"feature/PROJ-1234-login-fix", []string{"feature/PROJ-1234-login-fix"}},
		{"1234", []string{"feature/PROJ-1234-login-fix"}},
		{"PROJ-1234", []string{"feature/PROJ-1234-login-fix"}},
		{"proj-1301", []string{"bugfix/PROJ-1301-timeouts"}},
		{"login-fix", []string{"feature/PROJ-1234-login-fix"}},
		{"search", []string{"feature/PROJ-1240-search"}},
		{"main", []string{"main"}},
		{"feature", []string{"feature/PROJ-1240-search", "feature/PROJ-1234-login-fix"}},
		{"PROJ", []string{"bugfix/PROJ-1301-timeouts", "feature/PROJ-1240-search", "feature/PROJ-1234-login-fix"}},
		{"#57", nil}, // no pull requests here
		{"57", nil},
		{"123", nil},
		{"payments", nil},
		{"", nil},
	}
	for _, tt := range tests {
		found, err := src.FindBranches(context.Background(), tt.query)
		if err != nil {
			t.Fatalf("%q: %v", tt.query, err)
		}
		if strings.Join(names(found), ",") != strings.Join(tt.want, ",") {
			t.Errorf("%q found %v, want %v", tt.query, names(found), tt.want)
		}
	}

	found, _ := src.FindBranches(context.Background(), "1234")
	b, err := switchboard.PickBranch("1234", found)
	if err != nil {
		t.Fatal(err)
	}
	if got := "Deploying " + b.Label(); got != "Deploying feature/PROJ-1234-login-fix ("+b.Commit[:7]+")" {
		t.Errorf("%q", got)
	}
	found, _ = src.FindBranches(context.Background(), "PROJ")
	_, err = switchboard.PickBranch("PROJ", found)
	if msg := switchboard.ErrorMessage(err); switchboard.ErrorCode(err) != switchboard.EINVALID ||
		!strings.Contains(msg, `"PROJ" matches 3 branches`) || !strings.Contains(msg, "• feature/PROJ-1240-search ("+found[1].Commit[:7]+", no pull request)") {
		t.Errorf("ambiguous: %s", msg)
	}
}

func TestSeesNewBranches(t *testing.T) {
	t.Parallel()
	dir, src := demo(t)
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := repo.Head()
	if err := repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/feature/PROJ-1400-export", head.Hash())); err != nil {
		t.Fatal(err)
	}
	found, err := src.FindBranches(context.Background(), "PROJ-1400")
	if err != nil || len(found) != 1 || found[0].Commit != head.Hash().String() {
		t.Errorf("a branch made after New: %v, %v", found, err)
	}
}

func TestCreateDemoKeepsWhatIsThere(t *testing.T) {
	t.Parallel()
	dir, src := demo(t)
	before, _ := src.Branches(context.Background())
	if created, err := gitsource.CreateDemo(dir); created || err != nil {
		t.Errorf("a second CreateDemo = %v, %v; want false, nil", created, err)
	}
	after, _ := src.Branches(context.Background())
	if len(after) != len(before) {
		t.Errorf("branches changed: %v, then %v", names(before), names(after))
	}

	// An empty directory is a place made for the demo.
	empty := t.TempDir()
	if created, err := gitsource.CreateDemo(empty); !created || err != nil {
		t.Errorf("CreateDemo into an empty directory = %v, %v", created, err)
	}

	// A directory of something else is left alone.
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if created, err := gitsource.CreateDemo(busy); created || err == nil || !strings.Contains(err.Error(), "holds files but no git repository") {
		t.Errorf("CreateDemo over files = %v, %v", created, err)
	}
	if data, _ := os.ReadFile(filepath.Join(busy, "notes.txt")); string(data) != "mine" {
		t.Errorf("the files were touched")
	}
	// Nothing is left beside the directories.
	for _, d := range []string{filepath.Dir(dir), filepath.Dir(busy)} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".new-") {
				t.Errorf("left behind: %s", filepath.Join(d, e.Name()))
			}
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := gitsource.New(""); err == nil || !strings.Contains(err.Error(), "git.path is empty") {
		t.Errorf("empty path: %v", err)
	}
	if _, err := gitsource.New(filepath.Join(t.TempDir(), "nothing")); err == nil || !strings.Contains(err.Error(), "git.path") {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := gitsource.New(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a git repository") {
		t.Errorf("plain directory: %v", err)
	}

	// A bare repository (a mirror) works.
	dir, _ := demo(t)
	bare := filepath.Join(t.TempDir(), "mirror.git")
	if _, err := git.PlainClone(bare, true, &git.CloneOptions{URL: dir, Mirror: true}); err != nil {
		t.Fatal(err)
	}
	src, err := gitsource.New(bare)
	if err != nil {
		t.Fatal(err)
	}
	found, err := src.FindBranches(context.Background(), "1234")
	if err != nil || len(found) != 1 {
		t.Errorf("mirror: %v, %v", names(found), err)
	}
}

func TestRepositoryGone(t *testing.T) {
	t.Parallel()
	dir, src := demo(t)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	found, err := src.FindBranches(context.Background(), "1234")
	if found != nil || switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
		t.Errorf("found %v, %v; want nothing and EUNAVAILABLE", found, err)
	}
	if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, dir) {
		t.Errorf("message %q does not name the repository", msg)
	}
}
