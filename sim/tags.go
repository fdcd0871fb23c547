package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// EC2's tag limits: a key is 1 to 128 characters and may not start with
// "aws:", a value at most 256, and a resource holds at most 50 tags.
const (
	maxTagKey          = 128
	maxTagValue        = 256
	maxTagsPerInstance = 50
)

// TagInstances sets tags on instances as EC2's CreateTags does: a key an
// instance already has gets the new value, an empty value is kept as an
// empty value, and the call fails as a whole, changing nothing, when an id
// is unknown (InvalidInstanceID.NotFound) or malformed (InvalidID), a key
// or value breaks EC2's rules (InvalidParameterValue) or an instance would
// hold more than 50 tags (TagLimitExceeded). Terminated instances still
// visible in DescribeInstances can be tagged, as on EC2. It spends a token
// of its own bucket, of the mutating class.
func (c *Cloud) TagInstances(ctx context.Context, ids []string, tags map[string]string) (err error) {
	const action = "CreateTags"
	now, err := c.begin(ctx, action)
	if err != nil {
		return err
	}
	defer func() { err = c.end(err) }()

	if len(ids) == 0 {
		return switchboard.MissingParameter("ResourceId")
	}
	if len(tags) == 0 {
		return switchboard.MissingParameter("Tag")
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if err := checkTagKey(k); err != nil {
			return err
		}
		if v := tags[k]; len(v) > maxTagValue {
			return switchboard.InvalidParameterValue("value", v, fmt.Sprintf("A tag value is at most %d characters.", maxTagValue))
		}
	}
	records, err := c.resolveTagged(ids, now)
	if err != nil {
		return err
	}
	for _, r := range records {
		n := len(r.Tags)
		for k := range tags {
			if _, ok := r.Tags[k]; !ok {
				n++
			}
		}
		if n > maxTagsPerInstance {
			return errTagLimit()
		}
	}
	return c.retag(action, records, func(r *record) {
		if r.Tags == nil {
			r.Tags = make(map[string]string, len(tags))
		}
		maps.Copy(r.Tags, tags)
	})
}

// UntagInstances removes the tags with keys from instances, whatever their
// values, as EC2's DeleteTags does when it is given keys without values. A
// key an instance does not have is no error. Unlike DeleteTags, a call
// without keys is refused rather than taken to mean every tag.
func (c *Cloud) UntagInstances(ctx context.Context, ids []string, keys []string) (err error) {
	const action = "DeleteTags"
	now, err := c.begin(ctx, action)
	if err != nil {
		return err
	}
	defer func() { err = c.end(err) }()

	if len(ids) == 0 {
		return switchboard.MissingParameter("ResourceId")
	}
	if len(keys) == 0 {
		return switchboard.MissingParameter("Tag")
	}
	for _, k := range keys {
		if err := checkTagKey(k); err != nil {
			return err
		}
	}
	records, err := c.resolveTagged(ids, now)
	if err != nil {
		return err
	}
	return c.retag(action, records, func(r *record) {
		for _, k := range keys {
			delete(r.Tags, k)
		}
		if len(r.Tags) == 0 {
			r.Tags = nil
		}
	})
}

// resolveTagged is resolve for the tag calls, which answer a malformed id
// with InvalidID rather than InvalidInstanceID.Malformed.
func (c *Cloud) resolveTagged(ids []string, now time.Time) ([]*record, error) {
	records, err := c.resolve(ids, now)
	var ce *switchboard.CloudError
	if errors.As(err, &ce) && ce.Code == "InvalidInstanceID.Malformed" {
		return nil, errInvalidID(ce.IDs)
	}
	return records, err
}

// retag applies apply to every record unless an injected fault says the
// call fails first.
func (c *Cloud) retag(action string, records []*record, apply func(*record)) error {
	ids := make([]string, len(records))
	for i, r := range records {
		ids[i] = r.ID
	}
	fl := c.takeFault(action, ids)
	if fl != nil && !fl.Applied {
		return fl.error(ids)
	}
	for _, r := range records {
		apply(r)
	}
	if fl != nil {
		return fl.error(ids)
	}
	return nil
}

func checkTagKey(k string) error {
	switch {
	case k == "":
		return switchboard.InvalidParameterValue("key", k, "A tag key cannot be empty.")
	case len(k) > maxTagKey:
		return switchboard.InvalidParameterValue("key", k, fmt.Sprintf("A tag key is at most %d characters.", maxTagKey))
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return switchboard.InvalidParameterValue("key", k, "Tag keys starting with 'aws:' are reserved for internal use.")
	}
	return nil
}
