package aws

import (
	"context"
	"slices"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// A describe larger than a page follows NextToken to the last page, and
// stops at a token EC2 repeats. (moto answers in one page whatever
// MaxResults asks, so the pages here are EC2's, played back.)
func TestDescribeFollowsPages(t *testing.T) {
	pages := map[string]*ec2.DescribeInstancesOutput{
		"":   {Reservations: []types.Reservation{{Instances: []types.Instance{{InstanceId: awssdk.String("i-3")}, {InstanceId: awssdk.String("i-1")}}}}, NextToken: awssdk.String("t1")},
		"t1": {Reservations: []types.Reservation{{Instances: []types.Instance{{InstanceId: awssdk.String("i-2")}}}}, NextToken: awssdk.String("t2")},
		"t2": {Reservations: []types.Reservation{{Instances: []types.Instance{{InstanceId: awssdk.String("i-4")}}}}},
		"t9": {Reservations: []types.Reservation{{Instances: []types.Instance{{InstanceId: awssdk.String("i-9")}}}}, NextToken: awssdk.String("t9")},
	}
	var asked []string
	p := &Provider{ec2: ec2Calls{DescribeInstances: func(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
		asked = append(asked, awssdk.ToString(in.NextToken))
		return pages[awssdk.ToString(in.NextToken)], nil
	}}}
	in := &ec2.DescribeInstancesInput{MaxResults: awssdk.Int32(2)}
	got, err := p.describe(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range got {
		ids = append(ids, i.ID)
	}
	if want := []string{"i-1", "i-2", "i-3", "i-4"}; !slices.Equal(ids, want) {
		t.Errorf("described %v, want %v (every page, sorted)", ids, want)
	}
	if !slices.Equal(asked, []string{"", "t1", "t2"}) {
		t.Errorf("asked for pages %q, want the first, t1, t2", asked)
	}
	if in.NextToken != nil {
		t.Error("describe changed the caller's input")
	}

	asked = nil
	if _, err := p.describe(t.Context(), &ec2.DescribeInstancesInput{NextToken: awssdk.String("t9")}); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 {
		t.Errorf("asked for %d pages of a token EC2 repeats, want 2 (then stop)", len(asked))
	}
}
