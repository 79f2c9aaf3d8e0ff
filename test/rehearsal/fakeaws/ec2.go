package main

import (
	"context"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// ec2Filter is one --filters entry.
type ec2Filter struct {
	Name   string
	Values []string
}

func parseFilters(words []string, nameKey string) ([]ec2Filter, error) {
	structs, err := parseStructList(words, "Values")
	if err != nil {
		return nil, err
	}
	var out []ec2Filter
	for _, f := range structs {
		if len(f[nameKey]) != 1 || len(f["Values"]) == 0 {
			return nil, usagef("--filters: want %s=NAME,Values=V1[,V2], got %v", nameKey, f)
		}
		out = append(out, ec2Filter{Name: f[nameKey][0], Values: f["Values"]})
	}
	return out, nil
}

// matchTag applies the tag filters EC2 and SSM both know (tag:KEY, tag-key);
// isTag is false for any other filter.
func matchTag(tags map[string]string, f ec2Filter) (match, isTag bool) {
	switch {
	case strings.HasPrefix(f.Name, "tag:"):
		v, has := tags[strings.TrimPrefix(f.Name, "tag:")]
		return has && contains(f.Values, v), true
	case f.Name == "tag-key":
		for _, k := range f.Values {
			if _, has := tags[k]; has {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

func describeInstances(ctx context.Context, s *store, a *args) (any, error) {
	filters, err := parseFilters(a.list("filters"), "Name")
	if err != nil {
		return nil, err
	}
	ids := a.list("instance-ids")
	all, err := s.instances()
	if err != nil {
		return nil, err
	}
	reservations := []any{}
	known := map[string]bool{}
	for _, in := range all {
		known[in.InstanceId] = true
		if len(ids) > 0 && !contains(ids, in.InstanceId) {
			continue
		}
		ok := true
		for _, f := range filters {
			if match, isTag := matchTag(in.Tags, f); isTag {
				ok = ok && match
				continue
			}
			switch {
			case f.Name == "instance-state-name":
				ok = ok && contains(f.Values, in.state())
			case f.Name == "instance-id":
				ok = ok && contains(f.Values, in.InstanceId)
			default:
				return nil, apiErr("InvalidParameterValue", "The filter '%s' is invalid (the fake knows tag:KEY, tag-key, instance-state-name, instance-id)", f.Name)
			}
		}
		if !ok {
			continue
		}
		tags := []any{}
		keys := make([]string, 0, len(in.Tags))
		for k := range in.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			tags = append(tags, map[string]any{"Key": k, "Value": in.Tags[k]})
		}
		reservations = append(reservations, map[string]any{
			"ReservationId": "r-" + strings.TrimPrefix(in.InstanceId, "i-"), "OwnerId": "000000000000",
			"Instances": []any{map[string]any{
				"InstanceId": in.InstanceId, "InstanceType": "t3.small",
				"State": map[string]any{"Code": stateCode(in.state()), "Name": in.state()},
				"Tags":  tags,
			}},
		})
	}
	for _, id := range ids {
		if !known[id] {
			return nil, apiErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	return map[string]any{"Reservations": reservations}, nil
}

func stateCode(state string) int {
	return map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}[state]
}

func createTags(ctx context.Context, s *store, a *args) (any, error) { return changeTags(s, a, true) }
func deleteTags(ctx context.Context, s *store, a *args) (any, error) { return changeTags(s, a, false) }

func changeTags(s *store, a *args, set bool) (any, error) {
	resources := a.list("resources")
	if len(resources) == 0 {
		return nil, usagef("the following arguments are required: --resources")
	}
	structs, err := parseStructList(a.list("tags"))
	if err != nil {
		return nil, err
	}
	if set && len(structs) == 0 {
		return nil, usagef("the following arguments are required: --tags")
	}
	unlock, err := s.lock("instances/.lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	var changed []*Instance
	for _, id := range resources {
		in, err := s.instance(id)
		if err != nil {
			return nil, apiErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		if in.Tags == nil {
			in.Tags = map[string]string{}
		}
		for _, t := range structs {
			if len(t["Key"]) != 1 || len(t["Value"]) > 1 {
				return nil, usagef("--tags: want Key=K,Value=V, got %v", t)
			}
			v := ""
			if len(t["Value"]) == 1 {
				v = t["Value"][0]
			}
			if set {
				in.Tags[t["Key"][0]] = v
			} else if old, ok := in.Tags[t["Key"][0]]; ok && (len(t["Value"]) == 0 || old == v) {
				delete(in.Tags, t["Key"][0])
			}
		}
		changed = append(changed, in)
	}
	for _, in := range changed {
		if err := s.saveInstance(in); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// pingStatus is what describe-instance-information reports for a managed
// instance: forced by the registry, else whether its container runs and its
// agent check passes.
func pingStatus(ctx context.Context, in *Instance) string {
	if in.PingStatus != "" && in.PingStatus != "Online" {
		return in.PingStatus
	}
	if in.state() != "running" {
		return "ConnectionLost"
	}
	if in.Exec.Kind != "docker" {
		return "Online"
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Running}}", in.Exec.Container).Output()
	if err != nil || strings.TrimSpace(string(out)) != "true" {
		return "ConnectionLost"
	}
	if in.Exec.AgentCheck != "" {
		if err := exec.CommandContext(ctx, "docker", "exec", "-u", "0", in.Exec.Container, "/bin/sh", "-c", in.Exec.AgentCheck).Run(); err != nil {
			return "ConnectionLost"
		}
	}
	return "Online"
}

func describeInstanceInformation(ctx context.Context, s *store, a *args) (any, error) {
	filters, err := parseFilters(a.list("filters"), "Key")
	if err != nil {
		return nil, err
	}
	all, err := s.instances()
	if err != nil {
		return nil, err
	}
	list := []any{}
	for _, in := range all {
		if !in.Managed {
			continue
		}
		ping := ""
		ok := true
		for _, f := range filters {
			if match, isTag := matchTag(in.Tags, f); isTag {
				ok = ok && match
				continue
			}
			switch {
			case f.Name == "InstanceIds":
				ok = ok && contains(f.Values, in.InstanceId)
			case f.Name == "PingStatus":
				if ok && ping == "" {
					ping = pingStatus(ctx, in)
				}
				ok = ok && contains(f.Values, ping)
			default:
				return nil, apiErr("InvalidFilterKey", "filter key %q (the fake knows tag:KEY, tag-key, InstanceIds, PingStatus)", f.Name)
			}
		}
		if !ok {
			continue
		}
		if ping == "" {
			ping = pingStatus(ctx, in)
		}
		list = append(list, map[string]any{
			"InstanceId": in.InstanceId, "PingStatus": ping, "LastPingDateTime": awsTime(time.Now()),
			"AgentVersion": "3.3.0.0", "IsLatestVersion": true, "PlatformType": "Linux",
			"PlatformName": "Debian GNU/Linux", "ResourceType": "EC2Instance",
			"ComputerName": in.Tags["Name"],
		})
	}
	return map[string]any{"InstanceInformationList": list}, nil
}
