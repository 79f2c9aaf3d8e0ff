package main

import "testing"

// matchTag is what both describe-instances and describe-instance-information
// filter tags with.
func TestMatchTag(t *testing.T) {
	tags := map[string]string{"App": "chat", "Role": ""}
	for _, tt := range []struct {
		name         string
		f            ec2Filter
		match, isTag bool
	}{
		{"value matches", ec2Filter{"tag:App", []string{"web", "chat"}}, true, true},
		{"value differs", ec2Filter{"tag:App", []string{"web"}}, false, true},
		{"empty value matches", ec2Filter{"tag:Role", []string{""}}, true, true},
		{"key missing", ec2Filter{"tag:Env", []string{""}}, false, true},
		{"tag-key one present", ec2Filter{"tag-key", []string{"Env", "App"}}, true, true},
		{"tag-key none present", ec2Filter{"tag-key", []string{"Env"}}, false, true},
		{"not a tag filter", ec2Filter{"instance-id", []string{"i-1"}}, false, false},
		{"tag prefix needs its colon", ec2Filter{"tagApp", []string{"chat"}}, false, false},
	} {
		match, isTag := matchTag(tags, tt.f)
		if match != tt.match || isTag != tt.isTag {
			t.Errorf("%s: matchTag(%v) = %v, %v; want %v, %v", tt.name, tt.f, match, isTag, tt.match, tt.isTag)
		}
	}
}
