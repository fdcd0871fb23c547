package gitsource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// demoBranch is one branch of the demo repository: a commit on top of main
// that writes one file.
type demoBranch struct {
	name, file, content, message string
}

var demoBranches = []demoBranch{
	{"feature/PROJ-1234-login-fix", "login.md", "Log in again when the session times out instead of showing an error.\n", "PROJ-1234: fix login timeouts"},
	{"feature/PROJ-1240-search", "search.md", "Search instances by tag.\n", "PROJ-1240: search by tag"},
	{"bugfix/PROJ-1301-timeouts", "timeouts.md", "Retry calls that time out, with backoff.\n", "PROJ-1301: retry on timeouts"},
}

// demoEpoch is when the demo's first commit was made. Fixed times and a
// fixed author make the same commits, with the same ids, on every machine,
// so the demo's answers can be written down.
var demoEpoch = time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)

// CreateDemo makes the demo repository in dir unless there already is a
// repository there: main with a README, and feature/PROJ-1234-login-fix,
// feature/PROJ-1240-search and bugfix/PROJ-1301-timeouts, a commit each on
// top of it. It reports whether it made one. The repository is built in a
// directory beside dir and renamed into place, so a crash leaves no half
// repository that a later start would take for the demo. A dir that exists,
// is not empty and is not a repository is left alone, with an error.
func CreateDemo(dir string) (created bool, err error) {
	switch entries, err := os.ReadDir(dir); {
	case err == nil && len(entries) > 0:
		if _, err := open(dir); err != nil {
			return false, fmt.Errorf("gitsource: demo repository: %s holds files but no git repository; remove it or choose another directory", dir)
		}
		return false, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("gitsource: demo repository: %w", err)
	}

	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, fmt.Errorf("gitsource: demo repository: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-")
	if err != nil {
		return false, fmt.Errorf("gitsource: demo repository: %w", err)
	}
	defer func() {
		if !created {
			os.RemoveAll(tmp)
		}
	}()
	if err := buildDemo(tmp); err != nil {
		return false, fmt.Errorf("gitsource: demo repository: %w", err)
	}
	// An empty directory is taken as a place made for the demo.
	_ = os.Remove(dir)
	if err := os.Rename(tmp, dir); err != nil {
		// Another process made it first.
		if _, oerr := open(dir); oerr == nil {
			return false, nil
		}
		return false, fmt.Errorf("gitsource: demo repository: %w", err)
	}
	return true, nil
}

func buildDemo(dir string) error {
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		return err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	at := demoEpoch
	commit := func(file, content, message string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			return err
		}
		if _, err := wt.Add(file); err != nil {
			return err
		}
		sig := &object.Signature{Name: "Switchboard demo", Email: "demo@switchboard.invalid", When: at}
		_, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
		at = at.Add(time.Hour)
		return err
	}
	readme := "# Demo app\n\nThe repository Switchboard's built-in demo deploys from. Try\n`/deploy 1234`, `/deploy search` or `/deploy PROJ-1301`.\n"
	if err := commit("README.md", readme, "Start the demo app"); err != nil {
		return err
	}
	for _, b := range demoBranches {
		if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(b.name), Create: true}); err != nil {
			return err
		}
		if err := commit(b.file, b.content, b.message); err != nil {
			return err
		}
		if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.Main}); err != nil {
			return err
		}
	}
	return nil
}
