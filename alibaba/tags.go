package alibaba

import (
	"context"
	"slices"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/switchboardhq/switchboard"
)

// maxTagBatch is how many resources one TagResources or UntagResources call
// names at most (ResourceId.N, N from 1 to 50).
const maxTagBatch = 50

// resourceTypeInstance is the ResourceType of ECS instances in the tag
// calls.
const resourceTypeInstance = "instance"

// TagInstances sets tags on instances with ECS's TagResources
// (ResourceType=instance, ResourceId.N, Tag.N.Key/Value), in calls of 50
// instances, replacing the values of keys they already have. An empty value
// is sent as a Tag.N.Key without its Tag.N.Value (the SDK leaves empty
// parameters out), which ECS sets as an empty value.
//
// The instances are described first, as for a start or stop: ECS answers an
// unknown resource with InvalidResourceId.NotFound without saying which, so
// an unknown id fails the whole call here, naming it
// (InvalidInstanceId.NotFound), and nothing is tagged. ECS takes at most 20
// tags in one call and holds at most 20 on an instance; more is refused
// before any call. The Name tag is a tag like any other: an instance with
// an InstanceName keeps showing that name.
func (p *Provider) TagInstances(ctx context.Context, ids []string, tags map[string]string) error {
	const action = "TagResources"
	ids = unique(ids)
	switch {
	case len(ids) == 0:
		return errNoIDs()
	case len(tags) == 0:
		return switchboard.Errorf(switchboard.EINVALID, "Name at least one tag to set.")
	case len(tags) > maxTags:
		return switchboard.Errorf(switchboard.EINVALID, "An ECS instance holds at most %d tags; the call sets %d.", maxTags, len(tags))
	case slices.Contains(sortedKeys(tags), ""):
		return errEmptyTagKey()
	}
	if _, err := p.statuses(ctx, ids); err != nil {
		return err
	}
	list := make([]ecs.TagResourcesTag, 0, len(tags))
	for _, k := range sortedKeys(tags) {
		list = append(list, ecs.TagResourcesTag{Key: k, Value: tags[k]})
	}
	for chunk := range slices.Chunk(ids, maxTagBatch) {
		c, err := p.client(ctx)
		if err != nil {
			return err
		}
		req := ecs.CreateTagResourcesRequest()
		req.ResourceType = resourceTypeInstance
		req.ResourceId = &chunk
		req.Tag = &list
		// ECS's errors for these calls name no instance; nil leaves finding
		// the one at fault (an instance deleted since it was described) to
		// the fleet layer's bisection rather than blaming the whole chunk.
		if err := c.DoAction(req, ecs.CreateTagResourcesResponse()); err != nil {
			return p.failure(ctx, action, err, nil)
		}
	}
	return nil
}

// UntagInstances removes the tags with keys from instances with ECS's
// UntagResources (ResourceType=instance, ResourceId.N, TagKey.N), in calls
// of 50 instances. A key an instance does not have is no error. Unknown ids
// fail the whole call as in TagInstances. A call without keys is refused
// here rather than sent: ECS's All=true, the only way to send none, would
// remove every tag.
func (p *Provider) UntagInstances(ctx context.Context, ids []string, keys []string) error {
	const action = "UntagResources"
	if slices.Contains(keys, "") {
		return errEmptyTagKey()
	}
	ids = unique(ids)
	keys = unique(keys)
	switch {
	case len(ids) == 0:
		return errNoIDs()
	case len(keys) == 0:
		return switchboard.Errorf(switchboard.EINVALID, "Name at least one tag key to remove.")
	case len(keys) > maxTags:
		return switchboard.Errorf(switchboard.EINVALID, "ECS removes at most %d tag keys in one call; the call names %d.", maxTags, len(keys))
	}
	if _, err := p.statuses(ctx, ids); err != nil {
		return err
	}
	for chunk := range slices.Chunk(ids, maxTagBatch) {
		c, err := p.client(ctx)
		if err != nil {
			return err
		}
		req := ecs.CreateUntagResourcesRequest()
		req.ResourceType = resourceTypeInstance
		req.ResourceId = &chunk
		req.TagKey = &keys
		if err := c.DoAction(req, ecs.CreateUntagResourcesResponse()); err != nil {
			return p.failure(ctx, action, err, nil)
		}
	}
	return nil
}

func errEmptyTagKey() error {
	return switchboard.Errorf(switchboard.EINVALID, "A tag key cannot be empty.")
}
