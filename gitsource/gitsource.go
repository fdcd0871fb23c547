// Package gitsource is Switchboard's branch source on a local git
// repository, read with github.com/go-git/go-git (no git binary needed): the
// branches of the built-in demo, and of teams whose code is not on GitHub.
// It knows branches, not pull requests: a lookup matches branch names and
// ticket ids with switchboard.MatchBranches, like every other source, and
// "#57" matches nothing.
//
// It reads refs/heads. For a repository that lives elsewhere, point it at a
// mirror (git clone --mirror, refreshed with git remote update), whose
// refs/heads hold every branch of the origin.
//
// The package is called gitsource, not git: go-git's own package is named
// git, and every file here (and cmd/switchboard, which wires both) would
// have to rename one of the two on import.
package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/switchboardhq/switchboard"
)

// Source finds branches in one local repository. It opens the repository
// at every lookup, so branches made or deleted meanwhile (by git itself,
// or a mirror's update) are seen. It is safe for concurrent use.
type Source struct {
	path string
}

var _ switchboard.BranchSource = (*Source)(nil)

// New returns a Source for the repository at path: a working tree (with
// .git) or a bare repository. It fails, naming the option, when there is
// none.
func New(path string) (*Source, error) {
	if path == "" {
		return nil, errors.New("git.path is empty: set it to a local repository, such as a mirror made with git clone --mirror")
	}
	if _, err := open(path); err != nil {
		return nil, fmt.Errorf("git.path: %w", err)
	}
	return &Source{path: path}, nil
}

// Path is the repository's directory.
func (s *Source) Path() string { return s.path }

// FindBranches returns the branches query matches
// (switchboard.MatchBranches), best first.
func (s *Source) FindBranches(ctx context.Context, query string) ([]switchboard.Branch, error) {
	if strings.TrimSpace(query) == "" {
		return nil, nil
	}
	all, err := s.Branches(ctx)
	if err != nil {
		return nil, err
	}
	return switchboard.MatchBranches(query, all), nil
}

// Branches lists the repository's branches, most recently committed first,
// with the author and time of their head commits.
func (s *Source) Branches(ctx context.Context) ([]switchboard.Branch, error) {
	repo, err := open(s.path)
	if err != nil {
		return nil, s.unreadable(err)
	}
	refs, err := repo.Branches()
	if err != nil {
		return nil, s.unreadable(err)
	}
	defer refs.Close()
	var out []switchboard.Branch
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ref, err := refs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.unreadable(err)
		}
		b := switchboard.Branch{Name: ref.Name().Short(), Commit: ref.Hash().String()}
		// A branch whose commit cannot be read (a shallow clone's edge)
		// is still a branch: only its author and time are unknown.
		if c, err := repo.CommitObject(ref.Hash()); err == nil {
			b.Author = c.Author.Name
			b.UpdatedAt = c.Committer.When.UTC()
		}
		out = append(out, b)
	}
	slices.SortStableFunc(out, func(a, b switchboard.Branch) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

func (s *Source) unreadable(err error) error {
	return fmt.Errorf("gitsource: read %s: %w: %w", s.path,
		switchboard.Errorf(switchboard.EUNAVAILABLE, "Could not read the branches of the git repository at %s; check that it is there and readable.", s.path), err)
}

// open opens the repository at path. go-git takes any directory for a bare
// repository; one without a HEAD is not a repository at all.
func open(path string) (*git.Repository, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no repository at %s: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a git repository", path)
	}
	repo, err := git.PlainOpen(path)
	if err != nil {
		return nil, fmt.Errorf("%s is not a git repository: %w", path, err)
	}
	if _, err := repo.Reference(plumbing.HEAD, false); err != nil {
		return nil, fmt.Errorf("%s is not a git repository (no HEAD)", path)
	}
	return repo, nil
}
