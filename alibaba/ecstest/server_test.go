package ecstest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/alibaba/ecstest"
)

// get sends an unsigned RPC request with the common parameters and action's
// own, and decodes the JSON answer.
func get(t *testing.T, srv *ecstest.Server, action string, params url.Values) (int, map[string]any) {
	t.Helper()
	q := url.Values{
		"Action":           {action},
		"Version":          {ecstest.APIVersion},
		"Format":           {"JSON"},
		"AccessKeyId":      {"LTAI-test"},
		"SignatureMethod":  {"HMAC-SHA1"},
		"SignatureVersion": {"1.0"},
		"SignatureNonce":   {"nonce"},
		"Timestamp":        {time.Now().UTC().Format("2006-01-02T15:04:05Z")},
		"Signature":        {"unchecked"},
		"RegionId":         {ecstest.DefaultRegion},
	}
	for k, vs := range params {
		q[k] = vs
	}
	for k := range q {
		if q.Get(k) == "-" {
			q.Del(k)
		}
	}
	resp, err := http.Get(srv.URL + "/?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func TestErrorBodyHasECSShape(t *testing.T) {
	t.Parallel()
	srv := ecstest.NewServer(ecstest.Options{})
	t.Cleanup(srv.Close)
	tests := []struct {
		name   string
		action string
		params url.Values
		status int
		code   string
	}{
		{"unknown action", "DescribeEverything", nil, http.StatusNotFound, "InvalidAction.NotFound"},
		{"missing signature", "DescribeInstances", url.Values{"Signature": {"-"}}, http.StatusBadRequest, "MissingParameter"},
		{"wrong version", "DescribeInstances", url.Values{"Version": {"2016-01-01"}}, http.StatusBadRequest, "InvalidVersion"},
		{"wrong region", "DescribeInstances", url.Values{"RegionId": {"us-west-1"}}, http.StatusBadRequest, "InvalidRegionId.NotFound"},
		{"start without ids", "StartInstances", nil, http.StatusBadRequest, "MissingParameter"},
		{"bad InstanceIds", "DescribeInstances", url.Values{"InstanceIds": {"i-1,i-2"}}, http.StatusBadRequest, "InvalidInstanceIds.Malformed"},
		{"unknown instance", "StopInstances", url.Values{"InstanceId.1": {"i-bp1nothere"}}, http.StatusNotFound, "InvalidInstanceId.NotFound"},
		{"run without image", "RunInstances", url.Values{"InstanceType": {"ecs.g7.large"}}, http.StatusBadRequest, "MissingParameter"},
		{"run with bad user data", "RunInstances", url.Values{"ImageId": {"m-1"}, "InstanceType": {"ecs.g7.large"}, "UserData": {"not base64!"}},
			http.StatusBadRequest, "InvalidUserData.Base64FormatInvalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := get(t, srv, tt.action, tt.params)
			if status != tt.status || body["Code"] != tt.code {
				t.Errorf("answer = %d %v, want %d %s", status, body, tt.status, tt.code)
			}
			for _, field := range []string{"RequestId", "HostId", "Code", "Message", "Recommend"} {
				if s, _ := body[field].(string); s == "" {
					t.Errorf("error body has no %s: %v", field, body)
				}
			}
		})
	}
}

func TestDescribeInstancesShape(t *testing.T) {
	t.Parallel()
	srv := ecstest.NewServer(ecstest.Options{Instances: []ecstest.Instance{
		{ID: "i-bp1aaaa", Name: "a", Tags: map[string]string{"env": "prod"}},
		{ID: "i-bp1bbbb", Name: "b", Status: ecstest.StatusStopped},
		{ID: "i-bp1cccc", Name: "c"},
	}})
	t.Cleanup(srv.Close)
	status, body := get(t, srv, "DescribeInstances", url.Values{"PageSize": {"2"}, "PageNumber": {"2"}})
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	if body["TotalCount"] != 3.0 || body["PageNumber"] != 2.0 || body["PageSize"] != 2.0 || body["RequestId"] == "" {
		t.Errorf("paging = %v", body)
	}
	list := body["Instances"].(map[string]any)["Instance"].([]any)
	if len(list) != 1 {
		t.Fatalf("page 2 of 2 holds %d instances, want 1", len(list))
	}
	in := list[0].(map[string]any)
	if in["InstanceId"] != "i-bp1cccc" || in["Status"] != "Running" {
		t.Errorf("instance = %v", in)
	}
	for _, field := range []string{"PublicIpAddress", "EipAddress", "VpcAttributes", "Tags", "InnerIpAddress"} {
		if _, ok := in[field].(map[string]any); !ok {
			t.Errorf("instance has no %s object", field)
		}
	}

	_, body = get(t, srv, "DescribeInstances", url.Values{"Tag.1.Key": {"env"}, "Tag.1.Value": {"prod"}, "MaxResults": {"10"}})
	list = body["Instances"].(map[string]any)["Instance"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["InstanceId"] != "i-bp1aaaa" || body["NextToken"] != "" {
		t.Errorf("by tag = %v", body)
	}
	tags := list[0].(map[string]any)["Tags"].(map[string]any)["Tag"].([]any)
	if tag := tags[0].(map[string]any); tag["TagKey"] != "env" || tag["TagValue"] != "prod" {
		t.Errorf("tags = %v, want TagKey/TagValue", tags)
	}
}

func TestBatchModes(t *testing.T) {
	t.Parallel()
	instances := []ecstest.Instance{
		{ID: "i-bp1stopped", Status: ecstest.StatusStopped},
		{ID: "i-bp1running"},
	}
	both := url.Values{"InstanceId.1": {"i-bp1stopped"}, "InstanceId.2": {"i-bp1running"}}

	t.Run("AllTogether fails as a whole", func(t *testing.T) {
		t.Parallel()
		srv := ecstest.NewServer(ecstest.Options{Instances: instances})
		t.Cleanup(srv.Close)
		status, body := get(t, srv, "StartInstances", both)
		if status != http.StatusForbidden || body["Code"] != "IncorrectInstanceStatus" {
			t.Errorf("answer = %d %v", status, body)
		}
		if in, _ := srv.Instance("i-bp1stopped"); in.Status != ecstest.StatusStopped {
			t.Errorf("status = %s, want Stopped: AllTogether changes nothing when one fails", in.Status)
		}
	})
	t.Run("SuccessFirst answers per instance", func(t *testing.T) {
		t.Parallel()
		srv := ecstest.NewServer(ecstest.Options{Instances: instances})
		t.Cleanup(srv.Close)
		params := url.Values{"BatchOptimization": {"SuccessFirst"}}
		for k, v := range both {
			params[k] = v
		}
		status, body := get(t, srv, "StartInstances", params)
		if status != http.StatusOK {
			t.Fatalf("answer = %d %v", status, body)
		}
		list := body["InstanceResponses"].(map[string]any)["InstanceResponse"].([]any)
		got := map[string]string{}
		for _, r := range list {
			m := r.(map[string]any)
			got[m["InstanceId"].(string)] = m["Code"].(string) + " " + m["PreviousStatus"].(string) + "->" + m["CurrentStatus"].(string)
		}
		want := map[string]string{"i-bp1stopped": "200 Stopped->Starting", "i-bp1running": "IncorrectInstanceStatus Running->Running"}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: %q, want %q", id, got[id], w)
			}
		}
	})
	t.Run("dry run", func(t *testing.T) {
		t.Parallel()
		srv := ecstest.NewServer(ecstest.Options{Instances: instances})
		t.Cleanup(srv.Close)
		status, body := get(t, srv, "StartInstances", url.Values{"InstanceId.1": {"i-bp1stopped"}, "DryRun": {"true"}})
		if status != http.StatusBadRequest || body["Code"] != "DryRunOperation" {
			t.Errorf("answer = %d %v, want 400 DryRunOperation", status, body)
		}
		if in, _ := srv.Instance("i-bp1stopped"); in.Status != ecstest.StatusStopped {
			t.Errorf("the dry run started the instance")
		}
	})
}

func TestFaultsAreCountedAndRecorded(t *testing.T) {
	t.Parallel()
	srv := ecstest.NewServer(ecstest.Options{})
	t.Cleanup(srv.Close)
	srv.Throttle("DescribeInstances", 2)
	srv.FailNext("", ecstest.Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "The request has failed due to a temporary failure of the server."})
	var codes []string
	for range 3 {
		status, body := get(t, srv, "DescribeInstances", nil)
		codes = append(codes, strings.TrimSpace(http.StatusText(status)+" "+stringOf(body["Code"])))
	}
	status, body := get(t, srv, "DescribeEipAddresses", nil)
	codes = append(codes, strings.TrimSpace(http.StatusText(status)+" "+stringOf(body["Code"])))
	_, body = get(t, srv, "DescribeInstances", nil)
	codes = append(codes, stringOf(body["Code"]))
	want := []string{"Bad Request Throttling.User", "Bad Request Throttling.User", "Service Unavailable ServiceUnavailable", "OK", ""}
	if strings.Join(codes, "|") != strings.Join(want, "|") {
		t.Errorf("answers = %q, want %q", codes, want)
	}
	if calls := srv.Calls(); len(calls) != 5 || calls[0].Code != "Throttling.User" || calls[3].Action != "DescribeEipAddresses" {
		t.Errorf("calls = %+v", calls)
	}
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}
