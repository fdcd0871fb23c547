package alibaba

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"regexp"
	"slices"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/switchboardhq/switchboard"
)

// RunInstances launches spec.Count instances (ECS's Amount, 1 to 100) with
// RunInstances: ImageId, InstanceType, VSwitchId from SubnetID,
// SecurityGroupId(s), KeyPairName, UserData in base64, Tag.N, and
// ClientToken, with which ECS answers a repeated call with the instances of
// the first. A Name tag also becomes the InstanceName when ECS accepts it as
// one. The instances are then described; those ECS does not show yet are
// returned as pending with what the spec said.
func (p *Provider) RunInstances(ctx context.Context, spec switchboard.LaunchSpec) ([]switchboard.Instance, error) {
	const action = "RunInstances"
	switch {
	case spec.ImageID == "":
		return nil, switchboard.Errorf(switchboard.EINVALID, "Name the image to launch from (an ECS image id like m-bp1... or a public image such as ubuntu_22_04_x64_20G_alibase_20240101.vhd).")
	case spec.Type == "":
		return nil, switchboard.Errorf(switchboard.EINVALID, "Name the ECS instance type to launch (for example ecs.g7.large); Alibaba Cloud has no default.")
	case spec.Count < 0 || spec.Count > maxBatch:
		return nil, switchboard.Errorf(switchboard.EINVALID, "Launch between 1 and %d ECS instances at a time, not %d.", maxBatch, spec.Count)
	case len(spec.Tags) > maxTags:
		return nil, switchboard.Errorf(switchboard.EINVALID, "An ECS instance takes at most %d tags at launch; the spec has %d.", maxTags, len(spec.Tags))
	}
	count := max(spec.Count, 1)

	req := ecs.CreateRunInstancesRequest()
	req.ImageId = spec.ImageID
	req.InstanceType = spec.Type
	req.Amount = requests.NewInteger(count)
	req.VSwitchId = spec.SubnetID
	req.KeyPairName = spec.KeyName
	req.ClientToken = clientToken(spec.ClientToken)
	switch groups := slices.Clone(spec.SecurityGroups); len(groups) {
	case 0:
	case 1:
		req.SecurityGroupId = groups[0]
	default:
		req.SecurityGroupIds = &groups
	}
	if spec.UserData != "" {
		req.UserData = base64.StdEncoding.EncodeToString([]byte(spec.UserData))
	}
	if len(spec.Tags) > 0 {
		tags := make([]ecs.RunInstancesTag, 0, len(spec.Tags))
		for _, k := range sortedKeys(spec.Tags) {
			tags = append(tags, ecs.RunInstancesTag{Key: k, Value: spec.Tags[k]})
		}
		req.Tag = &tags
	}
	if name := spec.Tags["Name"]; instanceNamePattern.MatchString(name) {
		req.InstanceName = name
	}

	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	resp := ecs.CreateRunInstancesResponse()
	if err := c.DoAction(req, resp); err != nil {
		return nil, p.failure(ctx, action, err, nil)
	}
	ids := resp.InstanceIdSets.InstanceIdSet

	// The launch happened: a failed look is no reason to fail the call (a
	// retry without a ClientToken would launch again), so instances ECS
	// does not show are reported from the spec.
	found, _ := p.lookup(ctx, ids)
	out := make([]switchboard.Instance, len(ids))
	for i, id := range ids {
		if in, ok := found[id]; ok {
			out[i] = view(in)
			continue
		}
		out[i] = switchboard.Instance{ID: id, Name: req.InstanceName, State: switchboard.StatePending, Type: spec.Type, Tags: maps.Clone(spec.Tags)}
	}
	return out, nil
}

// instanceNamePattern is what ECS accepts as an InstanceName: 2 to 128
// characters, starting with a letter (or a Chinese character, not checked
// here), then letters, digits, periods, underscores, colons and hyphens.
var instanceNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._:-]{1,127}$`)

// clientToken makes token fit ECS's rule (at most 64 ASCII characters): a
// longer or non-ASCII token is replaced by its SHA-256 in hex, which is 64
// characters and the same every time, so idempotency holds.
func clientToken(token string) string {
	ascii := true
	for i := 0; i < len(token); i++ {
		if token[i] < 0x20 || token[i] > 0x7e {
			ascii = false
			break
		}
	}
	if ascii && len(token) <= 64 {
		return token
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AssociateAddress binds the Elastic IP publicIP to an instance: ECS's
// AssociateEipAddress wants the EIP's AllocationId, so the address is looked
// up with DescribeEipAddresses first. An EIP already bound to the instance is
// left as it is; one bound to another instance is not taken from it (ECS
// answers IncorrectEipStatus, ECONFLICT), unlike EC2 which moves it.
func (p *Provider) AssociateAddress(ctx context.Context, instanceID, publicIP string) error {
	if instanceID == "" || publicIP == "" {
		return switchboard.Errorf(switchboard.EINVALID, "Name both the instance and the Elastic IP address to bind to it.")
	}
	c, err := p.client(ctx)
	if err != nil {
		return err
	}
	lookup := ecs.CreateDescribeEipAddressesRequest()
	lookup.EipAddress = publicIP
	found := ecs.CreateDescribeEipAddressesResponse()
	if err := c.DoAction(lookup, found); err != nil {
		return p.failure(ctx, "DescribeEipAddresses", err, []string{instanceID})
	}
	var eip *ecs.EipAddress
	for i, e := range found.EipAddresses.EipAddress {
		if e.IpAddress == publicIP {
			eip = &found.EipAddresses.EipAddress[i]
		}
	}
	if eip == nil {
		return &switchboard.CloudError{
			Code:    "InvalidEipAddress.NotFound",
			Message: "No Elastic IP " + publicIP + " is allocated in region " + p.region + "; allocate it first, or use an address the account holds.",
			Kind:    switchboard.ENOTFOUND,
			IDs:     []string{instanceID},
		}
	}
	if eip.InstanceId == instanceID {
		return nil
	}
	if c, err = p.client(ctx); err != nil {
		return err
	}
	req := ecs.CreateAssociateEipAddressRequest()
	req.AllocationId = eip.AllocationId
	req.InstanceId = instanceID
	req.InstanceType = "EcsInstance"
	if err := c.DoAction(req, ecs.CreateAssociateEipAddressResponse()); err != nil {
		return p.failure(ctx, "AssociateEipAddress", err, []string{instanceID})
	}
	return nil
}
