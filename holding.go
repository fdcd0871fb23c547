package switchboard

import "context"

// Holding is one entry an integration keeps for an instance: a DNS record
// pointing at it, a Chef node, a Consul node. The sweep asks every step
// type that declares Holdings what it holds, finds the entries whose
// instance is gone, and hands those instances to cleanup.
//
// An entry is tied to its instance by what the integration records of it:
// the instance id (a Chef node's ec2.instance_id, a Consul node's meta), or
// else the instance's Name tag or addresses, which are matched against the
// instances the id-bearing entries, the inventory and the cloud know.
type Holding struct {
	// System names the integration for people: "Route53", "Chef", "Consul".
	System string `json:"system"`
	// Item names the entry for people: "web-7.example.com A", "node web-7".
	Item string `json:"item"`
	// Instance is the instance id the entry records, when it records one.
	Instance string `json:"instance,omitempty"`
	// Name is the instance's name as the entry knows it (a node name, the
	// Name tag a record name follows), when it does.
	Name string `json:"name,omitempty"`
	// Addresses are the IP addresses and DNS names the entry points at.
	Addresses []string `json:"addresses,omitempty"`
}

// HoldingsFunc lists what an integration holds for instances, every entry
// that cleanup could remove. It is declared on the integration's step type
// (StepType.Holdings), next to the step that removes them.
type HoldingsFunc func(ctx context.Context) ([]Holding, error)
