package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard"
)

// The inventory: the last known attributes of every instance seen, so that
// cleanup after a termination still knows an instance's name and addresses
// once the cloud has released them. Describes remember what they see many
// times a second under load, so writes are gathered in memory and written
// in one transaction every half second; what is not written yet is
// answered from memory. Losing the last half second in a crash loses only
// a refresh of what the next describe shows again.

const inventoryFlush = 500 * time.Millisecond

type inventory struct {
	mu      sync.Mutex
	pending map[[2]string]switchboard.Instance // by cloud, id
	start   sync.Once
	stop    chan struct{}
	done    chan struct{}
}

// Remember implements switchboard.Inventory. A terminated instance's
// empty addresses do not overwrite the ones it had.
func (s *Store) Remember(cloud string, insts []switchboard.Instance) {
	inv := &s.inventory
	inv.start.Do(func() {
		inv.mu.Lock()
		inv.stop, inv.done = make(chan struct{}), make(chan struct{})
		inv.mu.Unlock()
		go s.flushInventory()
	})
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.pending == nil {
		inv.pending = map[[2]string]switchboard.Instance{}
	}
	for _, in := range insts {
		key := [2]string{cloud, in.ID}
		if old, ok := inv.pending[key]; ok {
			in = merged(old, in)
		}
		inv.pending[key] = in
	}
}

func (s *Store) flushInventory() {
	inv := &s.inventory
	inv.mu.Lock()
	stop, done := inv.stop, inv.done
	inv.mu.Unlock()
	defer close(done)
	t := time.NewTicker(inventoryFlush)
	defer t.Stop()
	for {
		select {
		case <-stop:
			s.writeInventory(context.Background())
			return
		case <-t.C:
			s.writeInventory(context.Background())
		}
	}
}

// closeInventory writes what is pending and stops the writer.
func (s *Store) closeInventory() {
	inv := &s.inventory
	inv.mu.Lock()
	started := inv.stop != nil
	inv.mu.Unlock()
	if started {
		close(inv.stop)
		<-inv.done
	}
}

func (s *Store) writeInventory(ctx context.Context) {
	inv := &s.inventory
	inv.mu.Lock()
	batch := inv.pending
	inv.pending = nil
	inv.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	now := time.Now().UnixNano()
	err := s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		for key, in := range batch {
			old, found, err := recallTx(ctx, tx, s, key[0], key[1])
			if err != nil {
				return err
			}
			if found {
				in = merged(old, in)
			}
			body, err := json.Marshal(in)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sb_instances (cloud, id, body, seen_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (cloud, id) DO UPDATE SET body = excluded.body, seen_at = excluded.seen_at`), key[0], key[1], string(body), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.logger.Warn("inventory not written; the next describe will refresh it", "instances", len(batch), "err", err)
	}
}

// merged is what is known of an instance after seeing it as now: a
// terminated instance keeps the addresses, name and tags it had.
func merged(old, now switchboard.Instance) switchboard.Instance {
	keep := func(v *string, was string) {
		if *v == "" {
			*v = was
		}
	}
	keep(&now.Name, old.Name)
	keep(&now.PublicIP, old.PublicIP)
	keep(&now.PrivateIP, old.PrivateIP)
	keep(&now.PrivateDNS, old.PrivateDNS)
	keep(&now.Type, old.Type)
	if len(now.Tags) == 0 {
		now.Tags = old.Tags
	}
	return now
}

// Recall implements switchboard.Inventory.
func (s *Store) Recall(ctx context.Context, cloud, id string) (switchboard.Instance, bool, error) {
	inv := &s.inventory
	inv.mu.Lock()
	pending, inMemory := inv.pending[[2]string{cloud, id}]
	inv.mu.Unlock()
	old, found, err := recallTx(ctx, s.req, s, cloud, id)
	if err != nil {
		return switchboard.Instance{}, false, err
	}
	switch {
	case inMemory && found:
		return merged(old, pending), true, nil
	case inMemory:
		return pending, true, nil
	}
	return old, found, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func recallTx(ctx context.Context, q queryer, s *Store, cloud, id string) (switchboard.Instance, bool, error) {
	var body string
	err := q.QueryRowContext(ctx, s.q(`SELECT body FROM sb_instances WHERE cloud = ? AND id = ?`), cloud, id).Scan(&body)
	if isNoRows(err) {
		return switchboard.Instance{}, false, nil
	} else if err != nil {
		return switchboard.Instance{}, false, fmt.Errorf("recall %s/%s: %w", cloud, id, err)
	}
	var in switchboard.Instance
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		return switchboard.Instance{}, false, fmt.Errorf("recall %s/%s: %w", cloud, id, err)
	}
	return in, true, nil
}

// Settle implements switchboard.Inventory.
func (s *Store) Settle(ctx context.Context, cloud, id string) error {
	s.writeInventory(ctx) // the row must exist to be marked
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE sb_instances SET settled_at = ? WHERE cloud = ? AND id = ?`), time.Now().UnixNano(), cloud, id); err != nil {
		return fmt.Errorf("settle %s/%s: %w", cloud, id, err)
	}
	return nil
}

// Unsettled implements switchboard.Inventory.
func (s *Store) Unsettled(ctx context.Context, cloud string) ([]switchboard.Instance, error) {
	s.writeInventory(ctx)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body FROM sb_instances WHERE cloud = ? AND settled_at = 0 ORDER BY id`), cloud)
	if err != nil {
		return nil, fmt.Errorf("list the inventory of %s: %w", cloud, err)
	}
	defer rows.Close()
	var out []switchboard.Instance
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var in switchboard.Instance
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			return nil, fmt.Errorf("list the inventory of %s: %w", cloud, err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

var _ switchboard.Inventory = (*Store)(nil)
