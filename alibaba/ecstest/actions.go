package ecstest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/switchboardhq/switchboard"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxBatch is how many instance ids one ECS batch call or DescribeInstances
// filter may name.
const maxBatch = 100

// describeInstances answers DescribeInstances: InstanceIds (a JSON array),
// Tag.N.Key/Value, Status and InstanceName filter; MaxResults/NextToken or
// PageNumber/PageSize page. Unknown ids are left out of the answer, as ECS
// does, rather than failing the call.
func (s *Server) describeInstances(p url.Values) (body, *apiError) {
	var ids []string
	if raw := p.Get("InstanceIds"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &ids); err != nil {
			return nil, errorf(http.StatusBadRequest, "InvalidInstanceIds.Malformed", "The specified parameter InstanceIds is not valid.")
		}
		if len(ids) > maxBatch {
			return nil, errorf(http.StatusBadRequest, "InvalidInstanceIds.ValueNotSupported", "The specified parameter InstanceIds can contain at most %d IDs.", maxBatch)
		}
	}
	tags, aerr := tagParams(p)
	if aerr != nil {
		return nil, aerr
	}

	// Time passes for the whole fleet at every look.
	for _, r := range s.instances {
		if r.Status == StatusPending || r.Status == StatusStarting || r.Status == StatusStopping {
			if r.holds <= 0 {
				s.settle(r)
			} else {
				r.holds--
			}
		}
	}

	var matched []*record
	for _, r := range s.sorted() {
		if p.Has("InstanceIds") && !slices.Contains(ids, r.ID) {
			continue
		}
		if status := p.Get("Status"); status != "" && r.Status != status {
			continue
		}
		if name := p.Get("InstanceName"); name != "" && r.Name != name {
			continue
		}
		if !switchboard.HasTags(r.Tags, tags) {
			continue
		}
		matched = append(matched, r)
	}

	out := body{"TotalCount": len(matched)}
	var page []*record
	if p.Has("MaxResults") || p.Has("NextToken") {
		size, aerr := intParam(p, "MaxResults", 10, 1, maxBatch)
		if aerr != nil {
			return nil, aerr
		}
		size = min(size, s.limit)
		offset := 0
		if token := p.Get("NextToken"); token != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(token, "nt-"))
			if err != nil || !strings.HasPrefix(token, "nt-") || n < 0 || n > len(matched) {
				return nil, errorf(http.StatusBadRequest, "InvalidParameter.NextToken", "The specified parameter NextToken is not valid.")
			}
			offset = n
		}
		end := min(offset+size, len(matched))
		page = matched[offset:end]
		next := ""
		if end < len(matched) {
			next = fmt.Sprintf("nt-%d", end)
		}
		out["NextToken"] = next
		out["PageSize"] = size
		out["PageNumber"] = 1
	} else {
		number, aerr := intParam(p, "PageNumber", 1, 1, 1<<30)
		if aerr != nil {
			return nil, aerr
		}
		size, aerr := intParam(p, "PageSize", 10, 1, maxBatch)
		if aerr != nil {
			return nil, aerr
		}
		size = min(size, s.limit)
		start := min((number-1)*size, len(matched))
		page = matched[start:min(start+size, len(matched))]
		out["PageNumber"] = number
		out["PageSize"] = size
	}
	views := make([]body, len(page))
	for i, r := range page {
		views[i] = s.view(r)
	}
	out["Instances"] = body{"Instance": views}
	return out, nil
}

// view is one instance in DescribeInstances' shape.
func (s *Server) view(r *record) body {
	public := []string{}
	if r.PublicIP != "" {
		public = append(public, r.PublicIP)
	}
	eipView := body{"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": "", "IsSupportUnassociate": true}
	if e, ok := s.eips[r.EIP]; ok && r.EIP != "" {
		eipView = body{"AllocationId": e.allocationID, "IpAddress": e.address, "Bandwidth": 5, "InternetChargeType": "PayByTraffic", "IsSupportUnassociate": true}
	}
	tags := make([]body, 0, len(r.Tags))
	keys := make([]string, 0, len(r.Tags))
	for k := range r.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		tags = append(tags, body{"TagKey": k, "TagValue": r.Tags[k]})
	}
	groups := r.SecurityGroupIDs
	if groups == nil {
		groups = []string{}
	}
	stoppedMode := "Not-applicable"
	if r.Status == StatusStopped && r.StoppedMode != "" {
		stoppedMode = r.StoppedMode
	}
	created := r.CreationTime.UTC().Format("2006-01-02T15:04Z")
	return body{
		"InstanceId":          r.ID,
		"InstanceName":        r.Name,
		"HostName":            "iZ" + strings.TrimPrefix(r.ID, "i-") + "Z",
		"Status":              r.Status,
		"InstanceType":        r.Type,
		"ImageId":             r.ImageID,
		"RegionId":            s.region,
		"ZoneId":              s.region + "-h",
		"CreationTime":        created,
		"StartTime":           created,
		"InstanceNetworkType": "vpc",
		"InstanceChargeType":  "PostPaid",
		"InternetChargeType":  "PayByTraffic",
		"StoppedMode":         stoppedMode,
		"KeyPairName":         r.KeyPairName,
		"Cpu":                 2,
		"Memory":              8192,
		"OSType":              "linux",
		"PublicIpAddress":     body{"IpAddress": public},
		"InnerIpAddress":      body{"IpAddress": []string{}},
		"EipAddress":          eipView,
		"VpcAttributes": body{
			"VpcId":            "vpc-bp1fakevpc0000000000",
			"VSwitchId":        r.VSwitchID,
			"NatIpAddress":     "",
			"PrivateIpAddress": body{"IpAddress": []string{r.PrivateIP}},
		},
		"SecurityGroupIds": body{"SecurityGroupId": groups},
		"Tags":             body{"Tag": tags},
		"OperationLocks":   body{"LockReason": []body{}},
	}
}

func (s *Server) startInstances(p url.Values) (body, *apiError) {
	return s.batch(p, func(r *record) bool { return r.Status == StatusStopped }, func(r *record) {
		s.begin(r, StatusStarting)
	})
}

func (s *Server) stopInstances(p url.Values) (body, *apiError) {
	if _, aerr := boolParam(p, "ForceStop"); aerr != nil {
		return nil, aerr
	}
	mode := p.Get("StoppedMode")
	switch mode {
	case "":
		mode = "KeepCharging"
	case "KeepCharging", "StopCharging":
	default:
		return nil, errorf(http.StatusBadRequest, "InvalidStoppedMode.Malformed", "The specified StoppedMode is not valid; use KeepCharging or StopCharging.")
	}
	return s.batch(p, func(r *record) bool { return r.Status == StatusRunning }, func(r *record) {
		s.begin(r, StatusStopping)
		r.StoppedMode = mode
	})
}

func (s *Server) rebootInstances(p url.Values) (body, *apiError) {
	if _, aerr := boolParam(p, "ForceReboot"); aerr != nil {
		return nil, aerr
	}
	return s.batch(p, func(r *record) bool { return r.Status == StatusRunning }, func(r *record) {
		r.Reboots++
	})
}

// batch is the shape of StartInstances, StopInstances and RebootInstances:
// InstanceId.N (1 to 100), BatchOptimization and DryRun. Unknown ids fail the
// whole call. With AllTogether (the default) an instance in the wrong status
// fails the whole call too; with SuccessFirst each instance gets its own
// result in InstanceResponses, Code "200" for success.
func (s *Server) batch(p url.Values, allowed func(*record) bool, apply func(*record)) (body, *apiError) {
	ids, aerr := repeated(p, "InstanceId", maxBatch)
	if aerr != nil {
		return nil, aerr
	}
	mode := p.Get("BatchOptimization")
	switch mode {
	case "":
		mode = "AllTogether"
	case "AllTogether", "SuccessFirst":
	default:
		return nil, errorf(http.StatusBadRequest, "InvalidParameter.BatchOptimization", "The specified BatchOptimization is not valid; use AllTogether or SuccessFirst.")
	}
	dry, aerr := boolParam(p, "DryRun")
	if aerr != nil {
		return nil, aerr
	}
	records, aerr := s.lookup(ids)
	if aerr != nil {
		return nil, aerr
	}
	verdict := func(r *record) string {
		if code := s.refused[r.ID]; code != "" {
			return code
		}
		if !allowed(r) {
			return "IncorrectInstanceStatus"
		}
		return ""
	}
	responses := make([]body, 0, len(records))
	if mode == "AllTogether" {
		for _, r := range records {
			if code := verdict(r); code != "" {
				return nil, errorf(http.StatusForbidden, code, "%s", messages[code])
			}
		}
		if dry {
			return nil, errDryRun()
		}
		for _, r := range records {
			prev := r.Status
			apply(r)
			responses = append(responses, instanceResponse(r.ID, "200", "success", prev, r.Status))
		}
		return body{"InstanceResponses": body{"InstanceResponse": responses}}, nil
	}
	for _, r := range records {
		switch code := verdict(r); {
		case dry:
			// ECS answers only DRYRUN.SUCCESS to a SuccessFirst dry run,
			// whatever it found.
			responses = append(responses, instanceResponse(r.ID, "DRYRUN.SUCCESS", "Request validation has been passed with DryRun flag set.", r.Status, r.Status))
		case code != "":
			responses = append(responses, instanceResponse(r.ID, code, messages[code], r.Status, r.Status))
		default:
			prev := r.Status
			apply(r)
			responses = append(responses, instanceResponse(r.ID, "200", "success", prev, r.Status))
		}
	}
	return body{"InstanceResponses": body{"InstanceResponse": responses}}, nil
}

func instanceResponse(id, code, message, prev, cur string) body {
	return body{"InstanceId": id, "Code": code, "Message": message, "PreviousStatus": prev, "CurrentStatus": cur}
}

// deleteInstances answers DeleteInstances: only stopped instances unless
// Force=true; the call fails as a whole otherwise. Deleted instances leave
// DescribeInstances at once and their Elastic IPs become Available.
func (s *Server) deleteInstances(p url.Values) (body, *apiError) {
	ids, aerr := repeated(p, "InstanceId", maxBatch)
	if aerr != nil {
		return nil, aerr
	}
	force, aerr := boolParam(p, "Force")
	if aerr != nil {
		return nil, aerr
	}
	dry, aerr := boolParam(p, "DryRun")
	if aerr != nil {
		return nil, aerr
	}
	records, aerr := s.lookup(ids)
	if aerr != nil {
		return nil, aerr
	}
	for _, r := range records {
		if code := s.refused[r.ID]; code != "" {
			return nil, errorf(http.StatusForbidden, code, "%s", messages[code])
		}
		if !force && r.Status != StatusStopped {
			return nil, errIncorrectStatus()
		}
	}
	if dry {
		return nil, errDryRun()
	}
	for _, r := range records {
		if e, ok := s.eips[r.EIP]; ok && r.EIP != "" {
			e.instanceID = ""
		}
		delete(s.instances, r.ID)
	}
	return body{}, nil
}

// runInstances answers RunInstances. A repeated ClientToken answers the
// instances of the first call, or IdempotentParameterMismatch when the rest
// of the request differs, as ECS does.
func (s *Server) runInstances(p url.Values) (body, *apiError) {
	for _, name := range []string{"ImageId", "InstanceType"} {
		if p.Get(name) == "" {
			return nil, errMissing(name)
		}
	}
	amount, aerr := intParam(p, "Amount", 1, 1, maxBatch)
	if aerr != nil {
		return nil, aerr
	}
	var userData string
	if raw := p.Get("UserData"); raw != "" {
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "InvalidUserData.Base64FormatInvalid", "The specified UserData is not valid Base64.")
		}
		if len(b) > 32*1024 {
			return nil, errorf(http.StatusBadRequest, "InvalidUserData.SizeExceeded", "The specified UserData exceeds 32 KB.")
		}
		userData = string(b)
	}
	token := p.Get("ClientToken")
	if len(token) > 64 || !ascii(token) {
		return nil, errorf(http.StatusBadRequest, "InvalidClientToken.Malformed", "The specified ClientToken is not valid: at most 64 ASCII characters.")
	}
	tags, aerr := tagParams(p)
	if aerr != nil {
		return nil, aerr
	}
	groups, aerr := repeatedOptional(p, "SecurityGroupIds", 16)
	if aerr != nil {
		return nil, aerr
	}
	if g := p.Get("SecurityGroupId"); g != "" {
		if len(groups) > 0 {
			return nil, errorf(http.StatusBadRequest, "InvalidParameter.Conflict", "SecurityGroupId and SecurityGroupIds.N cannot be specified together.")
		}
		groups = []string{g}
	}
	dry, aerr := boolParam(p, "DryRun")
	if aerr != nil {
		return nil, aerr
	}
	if dry {
		return nil, errDryRun()
	}
	fp := fingerprint(p)
	if token != "" {
		if l, ok := s.launches[token]; ok {
			if l.fingerprint != fp {
				return nil, errorf(http.StatusBadRequest, "IdempotentParameterMismatch", "The specified parameters are different from before.")
			}
			return runAnswer(l.ids), nil
		}
	}
	ids := make([]string, amount)
	for i := range ids {
		r := &record{Instance: Instance{
			ID:               s.newID(),
			Name:             p.Get("InstanceName"),
			Type:             p.Get("InstanceType"),
			PrivateIP:        s.nextPrivateIP(),
			ImageID:          p.Get("ImageId"),
			VSwitchID:        p.Get("VSwitchId"),
			SecurityGroupIDs: groups,
			KeyPairName:      p.Get("KeyPairName"),
			UserData:         userData,
			Tags:             cloneTags(tags),
			ClientToken:      token,
			CreationTime:     time.Now().UTC(),
		}}
		s.begin(r, StatusPending)
		s.instances[r.ID] = r
		ids[i] = r.ID
	}
	if token != "" {
		s.launches[token] = launch{fingerprint: fp, ids: ids}
	}
	return runAnswer(ids), nil
}

func runAnswer(ids []string) body {
	return body{"OrderId": "2" + strconv.Itoa(len(ids)) + "8634900000", "TradePrice": 0,
		"InstanceIdSets": body{"InstanceIdSet": ids}}
}

// commonParams are signed into every request and so differ between two
// otherwise identical ones.
var commonParams = map[string]bool{
	"Signature": true, "SignatureNonce": true, "Timestamp": true, "AccessKeyId": true,
	"SignatureMethod": true, "SignatureVersion": true, "SignatureType": true,
	"Format": true, "Version": true, "SecurityToken": true,
}

func fingerprint(p url.Values) string {
	var parts []string
	for k, vs := range p {
		if !commonParams[k] {
			parts = append(parts, k+"="+strings.Join(vs, ","))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

func (s *Server) describeEipAddresses(p url.Values) (body, *apiError) {
	number, aerr := intParam(p, "PageNumber", 1, 1, 1<<30)
	if aerr != nil {
		return nil, aerr
	}
	size, aerr := intParam(p, "PageSize", 10, 1, maxBatch)
	if aerr != nil {
		return nil, aerr
	}
	var matched []*eip
	for _, e := range s.eips {
		status := "Available"
		if e.instanceID != "" {
			status = "InUse"
		}
		switch {
		case p.Get("EipAddress") != "" && p.Get("EipAddress") != e.address,
			p.Get("AllocationId") != "" && p.Get("AllocationId") != e.allocationID,
			p.Get("Status") != "" && p.Get("Status") != status,
			p.Get("AssociatedInstanceId") != "" && p.Get("AssociatedInstanceId") != e.instanceID:
			continue
		}
		matched = append(matched, e)
	}
	sort.Slice(matched, func(i, j int) bool { return matched[i].address < matched[j].address })
	start := min((number-1)*size, len(matched))
	page := matched[start:min(start+size, len(matched))]
	views := make([]body, len(page))
	for i, e := range page {
		status, instanceType := "Available", ""
		if e.instanceID != "" {
			status, instanceType = "InUse", "EcsInstance"
		}
		views[i] = body{
			"IpAddress": e.address, "AllocationId": e.allocationID, "Status": status,
			"InstanceId": e.instanceID, "InstanceType": instanceType, "RegionId": s.region,
			"Bandwidth": "5", "ChargeType": "PostPaid", "InternetChargeType": "PayByTraffic",
			"AllocationTime": "2024-01-01T00:00:00Z", "OperationLocks": body{"LockReason": []body{}},
		}
	}
	return body{"TotalCount": len(matched), "PageNumber": number, "PageSize": size,
		"EipAddresses": body{"EipAddress": views}}, nil
}

// associateEipAddress binds an Available Elastic IP to a Running or Stopped
// instance. An EIP bound elsewhere answers IncorrectEipStatus: ECS does not
// move it. An EIP the instance already had becomes Available.
func (s *Server) associateEipAddress(p url.Values) (body, *apiError) {
	for _, name := range []string{"AllocationId", "InstanceId"} {
		if p.Get(name) == "" {
			return nil, errMissing(name)
		}
	}
	if t := p.Get("InstanceType"); t != "" && t != "EcsInstance" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameter.InstanceType", "This fake binds EIPs only to EcsInstance.")
	}
	var target *eip
	for _, e := range s.eips {
		if e.allocationID == p.Get("AllocationId") {
			target = e
		}
	}
	if target == nil {
		return nil, errorf(http.StatusNotFound, "InvalidAllocationId.NotFound", "The specified allocation ID is not found.")
	}
	r, ok := s.instances[p.Get("InstanceId")]
	if !ok {
		return nil, errInstanceNotFound()
	}
	if target.instanceID != "" {
		return nil, errorf(http.StatusForbidden, "IncorrectEipStatus", "The current status of the resource does not support this operation.")
	}
	if r.Status != StatusRunning && r.Status != StatusStopped {
		return nil, errIncorrectStatus()
	}
	if old, ok := s.eips[r.EIP]; ok && r.EIP != "" {
		old.instanceID = ""
	}
	target.instanceID = r.ID
	r.EIP = target.address
	return body{}, nil
}

// lookup returns the records of ids in order, failing the call when any is
// unknown.
func (s *Server) lookup(ids []string) ([]*record, *apiError) {
	out := make([]*record, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		r, ok := s.instances[id]
		if !ok {
			return nil, errInstanceNotFound()
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// repeated reads a required repeated parameter NAME.1 ... NAME.N.
func repeated(p url.Values, name string, limit int) ([]string, *apiError) {
	values, aerr := repeatedOptional(p, name, limit)
	if aerr != nil {
		return nil, aerr
	}
	if len(values) == 0 {
		return nil, errMissing(name)
	}
	return values, nil
}

func repeatedOptional(p url.Values, name string, limit int) ([]string, *apiError) {
	type item struct {
		n int
		v string
	}
	var items []item
	for k := range p {
		rest, ok := strings.CutPrefix(k, name+".")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			return nil, errorf(http.StatusBadRequest, "InvalidParameter", "The parameter %s is not valid.", k)
		}
		if n > limit {
			return nil, errorf(http.StatusBadRequest, "InvalidParameter."+name, "The parameter %s can have at most %d values.", name, limit)
		}
		items = append(items, item{n, p.Get(k)})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out, nil
}

// tagParams reads Tag.N.Key and Tag.N.Value, N from 1 to 20.
func tagParams(p url.Values) (map[string]string, *apiError) {
	tags := make(map[string]string)
	for k := range p {
		rest, ok := strings.CutPrefix(k, "Tag.")
		if !ok {
			continue
		}
		n, field, ok := strings.Cut(rest, ".")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 1 || i > 20 || (field != "Key" && field != "Value") {
			return nil, errorf(http.StatusBadRequest, "InvalidTagKey.Malformed", "The parameter %s is not valid; use Tag.N.Key and Tag.N.Value with N from 1 to 20.", k)
		}
		if field == "Value" {
			continue
		}
		key := p.Get(k)
		if key == "" {
			return nil, errorf(http.StatusBadRequest, "InvalidTagKey.Malformed", "The specified Tag.%d.Key is empty.", i)
		}
		tags[key] = p.Get("Tag." + n + ".Value")
	}
	return tags, nil
}

func intParam(p url.Values, name string, def, lo, hi int) (int, *apiError) {
	raw := p.Get(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		return 0, errorf(http.StatusBadRequest, "InvalidParameter."+name, "The specified parameter %s is not valid; it must be from %d to %d.", name, lo, hi)
	}
	return n, nil
}

func boolParam(p url.Values, name string) (bool, *apiError) {
	switch p.Get(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, errorf(http.StatusBadRequest, "InvalidParameter."+name, "The specified parameter %s must be true or false.", name)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > 0x7e || s[i] < 0x20 {
			return false
		}
	}
	return true
}
