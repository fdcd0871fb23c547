package aws

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// PolicyInput is what a configuration lets Switchboard do in one AWS
// account, as `switchboard aws-policy` reads it from the file.
type PolicyInput struct {
	// Actions are the actions the commands on this account offer: status and
	// list (which only describe), start, stop, reboot, terminate and run.
	Actions []string
	// ElasticIPs is whether a target has an elastic_ip, which a start
	// associates.
	ElasticIPs bool
	// Tags is whether Switchboard sets and removes tags on the account's
	// instances after launch (TagInstances, UntagInstances), as branch
	// deploys do to keep an environment's expiry and pin: ec2:CreateTags
	// and ec2:DeleteTags on its instances. Without it CreateTags is allowed
	// only at launch (run) and DeleteTags not at all.
	Tags bool
	// Regions are the regions of the account's clouds; every statement is
	// limited to them. Empty means any region.
	Regions []string
	// InstanceIDs and TagSelectors narrow start, stop, reboot and terminate
	// to the instances the commands name: by id, or carrying every tag of
	// one selector. Both empty means any instance of the account.
	InstanceIDs  []string
	TagSelectors []map[string]string
	// DNSZones are the hosted zones a route53 cleanup acts on, by id
	// (Z0123456789ABCDEFGHIJ or /hostedzone/Z0123...): it may list and
	// change their records (route53:ListResourceRecordSets,
	// route53:ChangeResourceRecordSets) and nothing else in Route53. A zone
	// named by its domain name is refused: IAM limits Route53 actions by
	// zone id only. Empty means no Route53 statement.
	DNSZones []string
	// Partition is the ARN partition: "aws" when empty, "aws-cn" or
	// "aws-us-gov" elsewhere.
	Partition string
	// Deploys are the branch deploy commands launching in the account.
	Deploys []DeployPolicy
}

// policyActions maps each action to the EC2 calls it makes. DryRun makes the
// same calls with DryRun set, which IAM authorizes like the real ones.
var policyActions = map[string][]string{
	"status":    nil,
	"list":      nil,
	"start":     {"ec2:StartInstances"},
	"stop":      {"ec2:StopInstances"},
	"reboot":    {"ec2:RebootInstances"},
	"terminate": {"ec2:TerminateInstances"},
	"run":       {"ec2:RunInstances", "ec2:CreateTags"},
}

// statement is one IAM policy statement. Resource is a string or a list.
type statement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  any                            `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

type policy struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

// Policy returns the least-privilege IAM policy, as indented JSON without a
// final newline, for what
// in allows: DescribeInstances always (RunInstances looks for a launch's
// client token with it too), per action only the EC2 calls it makes, and
// CreateTags and DeleteTags after launch only with in.Tags.
// State changes are limited to the instances in.InstanceIDs and
// in.TagSelectors name, when they name any. Describe calls cannot be limited
// to resources in IAM, so they are on "*". With in.DNSZones, Route53's
// ListResourceRecordSets and ChangeResourceRecordSets on those hosted zones.
func Policy(in PolicyInput) ([]byte, error) {
	partition := in.Partition
	if partition == "" {
		partition = "aws"
	}
	var change []string
	run := false
	for _, a := range in.Actions {
		calls, ok := policyActions[a]
		if !ok {
			return nil, fmt.Errorf("aws policy: unknown action %q (want one of %s)", a, strings.Join(slices.Sorted(maps.Keys(policyActions)), ", "))
		}
		if a == "run" {
			run = true
			continue
		}
		for _, c := range calls {
			if !slices.Contains(change, c) {
				change = append(change, c)
			}
		}
	}
	slices.Sort(change)
	associate := in.ElasticIPs && slices.Contains(in.Actions, "start")

	// region adds the condition every statement carries to a statement's
	// own StringEquals.
	region := func(equals map[string][]string) map[string]map[string][]string {
		if len(in.Regions) > 0 {
			if equals == nil {
				equals = make(map[string][]string, 1)
			}
			equals["aws:RequestedRegion"] = slices.Compact(slices.Sorted(slices.Values(in.Regions)))
		}
		cond := make(map[string]map[string][]string)
		if len(equals) > 0 {
			cond["StringEquals"] = equals
		}
		return cond // empty is left out of the JSON
	}
	instanceARN := func(id string) string { return "arn:" + partition + ":ec2:*:*:instance/" + id }

	describe := []string{"ec2:DescribeInstances"}
	if associate {
		describe = append(describe, "ec2:DescribeAddresses")
	}
	p := policy{Version: "2012-10-17"}
	p.Statement = append(p.Statement, statement{
		Sid: "DescribeInstances", Effect: "Allow", Action: describe, Resource: "*", Condition: region(nil),
	})

	if len(change) > 0 {
		switch {
		case len(in.InstanceIDs) == 0 && len(in.TagSelectors) == 0:
			p.Statement = append(p.Statement, statement{
				Sid: "ChangeInstanceState", Effect: "Allow", Action: change,
				Resource: instanceARN("*"), Condition: region(nil),
			})
		default:
			if len(in.InstanceIDs) > 0 {
				ids := slices.Compact(slices.Sorted(slices.Values(in.InstanceIDs)))
				arns := make([]string, len(ids))
				for i, id := range ids {
					arns[i] = instanceARN(id)
				}
				p.Statement = append(p.Statement, statement{
					Sid: "ChangeNamedInstances", Effect: "Allow", Action: change,
					Resource: arns, Condition: region(nil),
				})
			}
			for i, sel := range in.TagSelectors {
				equals, like := make(map[string][]string), make(map[string][]string)
				for k, v := range sel {
					// A selector may use EC2's wildcards, which only
					// StringLike understands.
					if strings.ContainsAny(v, "*?") {
						like["ec2:ResourceTag/"+k] = []string{v}
					} else {
						equals["ec2:ResourceTag/"+k] = []string{v}
					}
				}
				cond := region(equals)
				if len(like) > 0 {
					cond["StringLike"] = like
				}
				p.Statement = append(p.Statement, statement{
					Sid: fmt.Sprintf("ChangeTaggedInstances%d", i+1), Effect: "Allow", Action: change,
					Resource: instanceARN("*"), Condition: cond,
				})
			}
		}
	}

	if associate {
		// AssociateAddress also authorizes the elastic-ip resource, which
		// carries none of the instance's tags, so a tag condition here would
		// refuse every association.
		p.Statement = append(p.Statement, statement{
			Sid: "AssociateElasticIP", Effect: "Allow", Action: []string{"ec2:AssociateAddress"},
			Resource: "*", Condition: region(nil),
		})
	}

	if run {
		// RunInstances authorizes the image, subnet, security groups,
		// network interface, volumes and key pair along with the instance;
		// the config does not name them, so the statement cannot either.
		p.Statement = append(p.Statement,
			statement{
				Sid: "LaunchInstances", Effect: "Allow", Action: []string{"ec2:RunInstances"},
				Resource: "*", Condition: region(nil),
			},
			statement{
				// Tags go on at launch (TagSpecifications) and nowhere else.
				Sid: "TagAtLaunch", Effect: "Allow", Action: []string{"ec2:CreateTags"},
				Resource:  instanceARN("*"),
				Condition: region(map[string][]string{"ec2:CreateAction": {"RunInstances"}}),
			})
	}

	if in.Tags {
		// The instances a deploy tags are the ones it launched, which the
		// commands' targets do not name, so the statement is on every
		// instance of the account's regions; it names no other kind of
		// resource.
		p.Statement = append(p.Statement, statement{
			Sid: "TagInstances", Effect: "Allow", Action: []string{"ec2:CreateTags", "ec2:DeleteTags"},
			Resource: instanceARN("*"), Condition: region(nil),
		})
	}

	p.Statement = append(p.Statement, deployStatements(in.Deploys, partition, region)...)
	if len(in.DNSZones) > 0 {
		arns, err := zoneARNs(partition, in.DNSZones)
		if err != nil {
			return nil, err
		}
		// Route53 is global: aws:RequestedRegion is us-east-1 whatever
		// the clouds' regions, so the statement has no region condition.
		p.Statement = append(p.Statement, statement{
			Sid: "CleanUpDNSRecords", Effect: "Allow",
			Action:   []string{"route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"},
			Resource: arns,
		})
	}

	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("aws policy: %w", err)
	}
	return out, nil
}

// zoneARNs returns the ARNs of hosted zones given by id, sorted.
func zoneARNs(partition string, zones []string) ([]string, error) {
	var arns []string
	for _, z := range zones {
		id, name, ok := parseZone(z)
		switch {
		case !ok:
			return nil, fmt.Errorf("aws policy: DNS zone %q is not a hosted zone id (like Z0123456789ABCDEFGHIJ)", z)
		case id == "":
			return nil, fmt.Errorf("aws policy: DNS zone %q is a domain name; IAM limits Route53 to hosted zones by id: write the zone's id instead (aws route53 list-hosted-zones-by-name --dns-name %s shows it)", z, strings.TrimSuffix(name, "."))
		}
		arns = append(arns, "arn:"+partition+":route53:::hostedzone/"+id)
	}
	slices.Sort(arns)
	return slices.Compact(arns), nil
}
