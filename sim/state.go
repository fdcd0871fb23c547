package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// stateVersion is the format of the state file. A file of another version is
// refused rather than guessed at: a cloud that misremembers is worse than one
// that says it cannot read its memory.
const stateVersion = 1

// snapshot is everything the cloud must remember across a restart for its
// answers after a reload to be the ones it would have given without one.
// Token buckets, stats and faults are left out: they belong to the process,
// not to the account.
type snapshot struct {
	Version   int                    `json:"version"`
	Instances []savedInstance        `json:"instances"`
	Launches  map[string]savedLaunch `json:"launches,omitempty"` // by client token
	Elastic   []string               `json:"elastic_ips"`        // null means any address, as in Options.ElasticIPs
	Holders   map[string]string      `json:"address_holders,omitempty"`
	Auto      map[string]bool        `json:"auto_addresses,omitempty"`
	Cursor    int                    `json:"address_cursor"`
	PrivateN  int                    `json:"private_ips_used"`
}

type savedInstance struct {
	switchboard.Instance
	Until       time.Time `json:"until,omitzero"` // when the transitional state ends, on NowFunc's clock
	GoneAt      time.Time `json:"gone_at,omitzero"`
	RebootUntil time.Time `json:"reboot_until,omitzero"`
	Reboots     int       `json:"reboots,omitempty"`
	Starts      int       `json:"starts,omitempty"`
	Stops       int       `json:"stops,omitempty"`
	AutoIP      string    `json:"auto_ip,omitempty"`
	ElasticIP   string    `json:"elastic_ip,omitempty"`
	ImageID     string    `json:"image_id,omitempty"`
	UserData    string    `json:"user_data,omitempty"`
	ClientToken string    `json:"client_token,omitempty"`
}

type savedLaunch struct {
	ImageID  string                          `json:"image_id"`
	Type     string                          `json:"type"`
	Count    int                             `json:"count"`
	Tags     map[string]string               `json:"tags,omitempty"`
	UserData string                          `json:"user_data,omitempty"`
	IDs      []string                        `json:"ids"`
	Last     map[string]switchboard.Instance `json:"last,omitempty"` // instances that have left the account
}

// loadState reads the state file at path. A missing file is a fresh account
// (nil, nil) as long as its directory exists, so the first write can succeed.
func loadState(path string) (*snapshot, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("sim: Options.StateFile: %s cannot be created: directory %s does not exist", path, dir)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sim: Options.StateFile: cannot read %s: %w", path, err)
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("sim: Options.StateFile: %s is not a simulated cloud's state (%v); move it aside to start from Options.Instances", path, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("sim: Options.StateFile: %s has state version %d, this build reads version %d; move it aside to start from Options.Instances", path, s.Version, stateVersion)
	}
	seen := make(map[string]bool, len(s.Instances))
	for i, in := range s.Instances {
		var problem string
		switch {
		case !validID(in.ID):
			problem = fmt.Sprintf("id %q is not an EC2 instance id", in.ID)
		case seen[in.ID]:
			problem = fmt.Sprintf("id %s appears twice", in.ID)
		case !knownState(in.State):
			problem = fmt.Sprintf("unknown state %q", in.State)
		}
		if problem != "" {
			return nil, fmt.Errorf("sim: Options.StateFile: %s: instances[%d]: %s; move the file aside to start from Options.Instances", path, i, problem)
		}
		seen[in.ID] = true
	}
	return &s, nil
}

func knownState(s switchboard.InstanceState) bool {
	switch s {
	case switchboard.StatePending, switchboard.StateRunning, switchboard.StateStopping,
		switchboard.StateStopped, switchboard.StateShuttingDown, switchboard.StateTerminated:
		return true
	}
	return false
}

// capture returns the cloud's state. Instances are sorted and JSON sorts map
// keys, so equal states encode to equal bytes. The caller holds c.mu.
func (c *Cloud) capture() *snapshot {
	s := &snapshot{
		Version:   stateVersion,
		Instances: make([]savedInstance, 0, len(c.instances)),
		Launches:  make(map[string]savedLaunch, len(c.launches)),
		Holders:   c.addresses.holder,
		Auto:      c.addresses.auto,
		Cursor:    c.addresses.cursor,
		PrivateN:  c.privateN,
	}
	if c.addresses.elastic != nil {
		s.Elastic = slices.Sorted(maps.Keys(c.addresses.elastic))
		if s.Elastic == nil {
			s.Elastic = []string{} // an account with no Elastic IPs, not one that accepts any
		}
	}
	for _, r := range c.instances {
		s.Instances = append(s.Instances, savedInstance{
			Instance: r.Instance, Until: r.until, GoneAt: r.goneAt, RebootUntil: r.rebootUntil, Reboots: r.reboots,
			Starts: r.starts, Stops: r.stops, AutoIP: r.autoIP, ElasticIP: r.elasticIP, ImageID: r.imageID, UserData: r.userData, ClientToken: r.clientToken,
		})
	}
	slices.SortFunc(s.Instances, func(a, b savedInstance) int { return strings.Compare(a.ID, b.ID) })
	for token, l := range c.launches {
		s.Launches[token] = savedLaunch{
			ImageID: l.spec.ImageID, Type: l.spec.Type, Count: l.spec.Count, Tags: l.spec.Tags,
			UserData: l.spec.UserData, IDs: l.ids, Last: l.last,
		}
	}
	return s
}

// restore replaces the cloud's state with s. The caller holds c.mu (or is
// New). s must not be used afterwards: the cloud takes its maps.
func (c *Cloud) restore(s *snapshot) {
	c.instances = make(map[string]*record, len(s.Instances))
	for _, in := range s.Instances {
		c.instances[in.ID] = &record{
			Instance: in.Instance, until: in.Until, goneAt: in.GoneAt, rebootUntil: in.RebootUntil, reboots: in.Reboots,
			starts: in.Starts, stops: in.Stops, autoIP: in.AutoIP, elasticIP: in.ElasticIP, imageID: in.ImageID, userData: in.UserData, clientToken: in.ClientToken,
		}
	}
	c.launches = make(map[string]*launch, len(s.Launches))
	for token, l := range s.Launches {
		if l.Last == nil {
			l.Last = make(map[string]switchboard.Instance)
		}
		spec := RunSpec{ImageID: l.ImageID, Type: l.Type, Count: l.Count, Tags: l.Tags, UserData: l.UserData, ClientToken: token}
		c.launches[token] = &launch{spec: spec, ids: l.IDs, last: l.Last}
	}
	c.addresses = newAddressBook(s.Elastic)
	if s.Holders != nil {
		c.addresses.holder = s.Holders
	}
	if s.Auto != nil {
		c.addresses.auto = s.Auto
	}
	c.addresses.cursor = s.Cursor
	c.privateN = s.PrivateN
}

// save writes the cloud's state to the state file if it changed since the
// last write; every call ends with it, under c.mu.
//
// A write that fails undoes the call: the cloud goes back to what the file
// says and the call answers InternalError, which callers retry. The other
// choice, keeping the change and writing it later, would let a kill -9 in
// between forget a change the caller was told had happened, and a real cloud
// never takes back what it has acknowledged.
func (c *Cloud) save() error {
	if c.stateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(c.capture(), "", "\t")
	if err == nil && c.written && bytes.Equal(b, c.saved) {
		return nil
	}
	if err == nil {
		err = writeAtomic(c.stateFile, b)
	}
	if err != nil {
		var last snapshot
		if uerr := json.Unmarshal(c.saved, &last); uerr != nil {
			// c.saved is always our own encoding, so this cannot happen.
			panic(fmt.Sprintf("sim: cannot decode the last saved state: %v", uerr))
		}
		c.restore(&last)
		return errSaveFailed(err)
	}
	c.saved, c.written = b, true
	return nil
}

// writeAtomic replaces path with b so that a reader, or a process started
// after a crash, sees the old content or the new one, never a mix.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
