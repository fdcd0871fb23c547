package config

import (
	"time"
)

// This file decodes the sections of the systems cleanup steps talk to: a
// Chef server and a Consul cluster. Each is optional; a workflow that uses
// a step of one needs its section (the step type says which).

// Chef is the Chef server chef_delete steps delete nodes and clients from.
type Chef struct {
	ServerURL  string `json:"server_url"`
	ClientName string `json:"client_name"`
	// Key is the client's PEM private key: write it as ${file:PATH}.
	Key             Secret        `json:"key"`
	SearchAttribute string        `json:"search_attribute,omitempty"`
	Timeout         time.Duration `json:"timeout,omitempty"`
	Line            int           `json:"line"`
}

// Consul is the Consul cluster consul_deregister steps clean up in.
type Consul struct {
	Address      string        `json:"address"`
	Token        Secret        `json:"token,omitempty"`
	Datacenter   string        `json:"datacenter,omitempty"`
	LockPrefixes []string      `json:"lock_prefixes,omitempty"`
	Timeout      time.Duration `json:"timeout,omitempty"`
	// InstanceMeta (the node meta key holding the instance id) and
	// NodeName (a template of {{id}} and {{name}}) say how the sweep ties
	// a node to its instance.
	InstanceMeta string `json:"instance_meta,omitempty"`
	NodeName     string `json:"node_name,omitempty"`
	Line         int    `json:"line"`
}

// DNS is the Route53 account route53_cleanup steps remove records from.
type DNS struct {
	// Zones are the hosted zones, by id (better: aws-policy needs ids) or
	// by domain name.
	Zones []string `json:"zones"`
	// OwnerTXT (key=value pairs a TXT marker must hold, as external-dns
	// writes them) or NamePattern ({{name}}.internal.example.com) says
	// which records Switchboard owns; exactly one is set.
	OwnerTXT     string `json:"owner_txt,omitempty"`
	OwnerTXTName string `json:"owner_txt_name,omitempty"`
	NamePattern  string `json:"name_pattern,omitempty"`
	// The account, as for an aws cloud.
	Region          string     `json:"region,omitempty"`
	Endpoint        string     `json:"endpoint,omitempty"`
	Profile         string     `json:"profile,omitempty"`
	AssumeRole      AssumeRole `json:"assume_role,omitzero"`
	AccessKeyID     string     `json:"access_key_id,omitempty"`
	AccessKeySecret Secret     `json:"access_key_secret,omitempty"`
	Line            int        `json:"line"`
}

// HasSection reports whether the file has the top-level section name (for
// the sections steps may require: chef, consul, dns).
func (c *Config) HasSection(name string) bool {
	switch name {
	case "chef":
		return c.Chef != nil
	case "consul":
		return c.Consul != nil
	case "dns":
		return c.DNS != nil
	}
	return false
}

func (d *decoder) dns(p pair) *DNS {
	if p.key == nil {
		return nil
	}
	c := &DNS{Line: p.key.Line}
	f := d.fields(p.val, p.path, p.line(), "zones", "owner_txt", "owner_txt_name", "name_pattern", "region", "endpoint", "profile",
		"assume_role", "access_key_id", "access_key_secret")
	if q, ok := f["zones"]; ok {
		c.Zones, _ = d.list(q, "Z0123456789ABCDEFGHIJ, internal.example.com")
	} else {
		d.required(p, f, "zones", "the hosted zones to clean up, like zones: [Z0123456789ABCDEFGHIJ]")
	}
	for key, to := range map[string]*string{"owner_txt": &c.OwnerTXT, "owner_txt_name": &c.OwnerTXTName, "name_pattern": &c.NamePattern,
		"region": &c.Region, "profile": &c.Profile} {
		if q, ok := f[key]; ok {
			*to, _ = d.str(q)
		}
	}
	if q, ok := f["endpoint"]; ok {
		if s, ok := d.str(q); ok {
			if msg := checkHTTPURL(s, "http://127.0.0.1:5000"); msg != "" {
				d.problemAt(q, "%s", msg)
			}
			c.Endpoint = s
		}
	}
	if q, ok := f["assume_role"]; ok {
		c.AssumeRole = d.assumeRole(q)
	}
	c.AccessKeyID, c.AccessKeySecret = d.accessKey(p, f)
	if (c.OwnerTXT == "") == (c.NamePattern == "") && d.problems.none(p.path) {
		d.problemAt(p, "needs exactly one of owner_txt (the TXT marker of the records Switchboard owns, like owner_txt: heritage=switchboard) and name_pattern (like name_pattern: '{{name}}.internal.example.com')")
	}
	return c
}

func (d *decoder) chef(p pair) *Chef {
	if p.key == nil {
		return nil
	}
	c := &Chef{Line: p.key.Line}
	f := d.fields(p.val, p.path, p.line(), "server_url", "client_name", "key", "search_attribute", "timeout")
	if q, ok := f["server_url"]; ok {
		if s, ok := d.str(q); ok {
			if msg := checkHTTPURL(s, "https://chef.example.com/organizations/ops/"); msg != "" {
				d.problemAt(q, "%s", msg)
			}
			c.ServerURL = s
		}
	} else {
		d.required(p, f, "server_url", "the Chef server's API URL, like https://chef.example.com/organizations/ops/")
	}
	if q, ok := f["client_name"]; ok {
		c.ClientName, _ = d.str(q)
	} else {
		d.required(p, f, "client_name", "the API client Switchboard signs its requests as, like client_name: switchboard")
	}
	var present bool
	c.Key, _, present = d.secret(f, "key")
	if !present {
		d.required(p, f, "key", "the client's PEM private key, like key: ${file:/run/secrets/chef.pem}")
	}
	if q, ok := f["search_attribute"]; ok {
		c.SearchAttribute, _ = d.str(q)
	}
	if q, ok := f["timeout"]; ok {
		c.Timeout, _ = d.positiveDuration(q)
	}
	return c
}

func (d *decoder) consul(p pair) *Consul {
	if p.key == nil {
		return nil
	}
	c := &Consul{Line: p.key.Line}
	f := d.fields(p.val, p.path, p.line(), "address", "token", "datacenter", "lock_prefixes", "timeout", "instance_meta", "node_name")
	if q, ok := f["address"]; ok {
		c.Address, _ = d.str(q)
	} else {
		d.required(p, f, "address", "the HTTP API of a Consul agent, like address: http://127.0.0.1:8500")
	}
	c.Token, _, _ = d.secret(f, "token")
	if q, ok := f["datacenter"]; ok {
		c.Datacenter, _ = d.str(q)
	}
	if q, ok := f["lock_prefixes"]; ok {
		c.LockPrefixes, _ = d.list(q, "locks/, service/")
	}
	if q, ok := f["instance_meta"]; ok {
		c.InstanceMeta, _ = d.str(q)
	}
	if q, ok := f["node_name"]; ok {
		c.NodeName, _ = d.str(q)
	}
	if q, ok := f["timeout"]; ok {
		c.Timeout, _ = d.positiveDuration(q)
	}
	return c
}
