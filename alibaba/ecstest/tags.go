package ecstest

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The tag calls' limits, as the API reference gives them: 50 resources and
// 20 tags (or tag keys) per call, 20 tags on one resource, keys and values
// of at most 128 characters.
const (
	maxTagResources = 50
	maxTagsPerCall  = 20
	maxTagsOnOne    = 20
	maxTagLength    = 128
)

// resourceTypes are the ResourceType values TagResources and UntagResources
// take. The fake holds only instances: the other types are valid but name
// nothing it knows.
var resourceTypes = []string{
	"instance", "disk", "snapshot", "image", "securitygroup", "volume", "eni", "ddh", "ddhcluster",
	"keypair", "launchtemplate", "reservedinstance", "snapshotpolicy", "elasticityassurance",
	"capacityreservation", "command", "invocation", "activation", "managedinstance",
}

// tagResources answers TagResources: ResourceType, ResourceId.N (1 to 50),
// Tag.N.Key and Tag.N.Value (1 to 20; a missing value is an empty one).
// Keys an instance has get the new value. The call fails as a whole, tagging
// nothing, when a parameter breaks the reference's rules, a resource is
// unknown (InvalidResourceId.NotFound, which names none) or an instance
// would hold more than 20 tags. DescribeInstances shows the tags at once.
func (s *Server) tagResources(p url.Values) (body, *apiError) {
	records, aerr := s.tagTargets(p)
	if aerr != nil {
		return nil, aerr
	}
	keys, values, aerr := tagPairs(p)
	if aerr != nil {
		return nil, aerr
	}
	for _, r := range records {
		n := len(r.Tags)
		for _, k := range keys {
			if _, ok := r.Tags[k]; !ok {
				n++
			}
		}
		if n > maxTagsOnOne {
			return nil, errorf(http.StatusBadRequest, "OperationDenied.QuotaExceed", "The quota of tags on resource is beyond permitted range.")
		}
	}
	for _, r := range records {
		if r.Tags == nil {
			r.Tags = make(map[string]string, len(keys))
		}
		for i, k := range keys {
			r.Tags[k] = values[i]
		}
	}
	return body{}, nil
}

// untagResources answers UntagResources: ResourceType, ResourceId.N (1 to
// 50), and TagKey.N (1 to 20) or All=true for every tag. A key an instance
// does not have is no error.
func (s *Server) untagResources(p url.Values) (body, *apiError) {
	records, aerr := s.tagTargets(p)
	if aerr != nil {
		return nil, aerr
	}
	keys, aerr := repeatedOptional(p, "TagKey", maxTagsPerCall)
	if aerr != nil {
		return nil, tooManyTags(aerr)
	}
	all, aerr := boolParam(p, "All")
	if aerr != nil {
		return nil, aerr
	}
	for i, k := range keys {
		if k == "" {
			return nil, errorf(http.StatusBadRequest, "InvalidTagKey.Malformed", "The specified TagKey.%d is not valid.", i+1)
		}
	}
	if len(keys) == 0 && !all {
		return nil, errMissing("TagKey")
	}
	for _, r := range records {
		if len(keys) == 0 {
			r.Tags = nil
			continue
		}
		for _, k := range keys {
			delete(r.Tags, k)
		}
	}
	return body{}, nil
}

// tagTargets reads ResourceType and ResourceId.N and returns the instances
// named, each once.
func (s *Server) tagTargets(p url.Values) ([]*record, *apiError) {
	typ := p.Get("ResourceType")
	switch {
	case typ == "":
		return nil, errMissing("ResourceType")
	case !slices.Contains(resourceTypes, typ):
		return nil, errorf(http.StatusBadRequest, "InvalidResourceType.NotFound", "The ResourceType provided does not exist in our records.")
	}
	ids, aerr := repeatedOptional(p, "ResourceId", maxTagResources)
	if aerr != nil {
		if strings.HasPrefix(aerr.code, "InvalidParameter.") {
			return nil, errorf(http.StatusBadRequest, "NumberExceed.ResourceIds", "The ResourceIds parameter's number is exceed , Valid : %d", maxTagResources)
		}
		return nil, aerr
	}
	if len(ids) == 0 {
		return nil, errMissing("ResourceId")
	}
	var out []*record
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		r, ok := s.instances[id]
		if !ok || typ != "instance" {
			return nil, errorf(http.StatusNotFound, "InvalidResourceId.NotFound", "The specified ResourceIds are not found in our records.")
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// tagPairs reads Tag.N.Key and Tag.N.Value in N's order: at least one, at
// most 20, keys unique, both within the reference's rules.
func tagPairs(p url.Values) (keys, values []string, aerr *apiError) {
	byN := make(map[int]bool)
	for k := range p {
		rest, ok := strings.CutPrefix(k, "Tag.")
		if !ok {
			continue
		}
		n, field, ok := strings.Cut(rest, ".")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 1 || (field != "Key" && field != "Value") {
			return nil, nil, errorf(http.StatusBadRequest, "InvalidParameter", "The parameter %s is not valid.", k)
		}
		if i > maxTagsPerCall {
			return nil, nil, errorf(http.StatusBadRequest, "NumberExceed.Tags", "The Tags parameter's number is exceed , Valid : %d", maxTagsPerCall)
		}
		byN[i] = true
	}
	if len(byN) == 0 {
		return nil, nil, errMissing("Tag")
	}
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	for _, n := range ns {
		key := p.Get("Tag." + strconv.Itoa(n) + ".Key")
		value := p.Get("Tag." + strconv.Itoa(n) + ".Value")
		if !validTagKey(key) {
			return nil, nil, errorf(http.StatusBadRequest, "InvalidTagKey.Malformed", "The specified Tag.%d.Key is not valid.", n)
		}
		if !validTagValue(value) {
			return nil, nil, errorf(http.StatusBadRequest, "InvalidTagValue.Malformed", "The specified Tag.%d.Value is not valid.", n)
		}
		if slices.Contains(keys, key) {
			return nil, nil, errorf(http.StatusBadRequest, "Duplicate.TagKey", "The Tag.N.Key contain duplicate key.")
		}
		keys = append(keys, key)
		values = append(values, value)
	}
	return keys, values, nil
}

// validTagKey: not empty, at most 128 characters, not starting with aliyun
// or acs:, without http:// or https://.
func validTagKey(k string) bool {
	return k != "" && len([]rune(k)) <= maxTagLength &&
		!strings.HasPrefix(k, "aliyun") && !strings.HasPrefix(k, "acs:") && !hasURL(k)
}

// validTagValue: may be empty, at most 128 characters, without http:// or
// https://.
func validTagValue(v string) bool {
	return len([]rune(v)) <= maxTagLength && !hasURL(v)
}

func hasURL(s string) bool {
	return strings.Contains(s, "http://") || strings.Contains(s, "https://")
}

// tooManyTags turns repeatedOptional's answer to TagKey.21 into the tag
// calls' own.
func tooManyTags(aerr *apiError) *apiError {
	if strings.HasPrefix(aerr.code, "InvalidParameter.") {
		return errorf(http.StatusBadRequest, "NumberExceed.Tags", "The Tags parameter's number is exceed , Valid : %d", maxTagsPerCall)
	}
	return aerr
}
