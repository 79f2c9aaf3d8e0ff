package main

import (
	"encoding/json"
	"strings"
)

// parseShorthand reads the CLI's shorthand for one structure,
// "Key=tag:App,Values=a,b": a word with "=" starts a member, a bare word
// after it adds to that member's list. JSON (an object) is accepted too.
func parseShorthand(s string, listKeys ...string) (map[string][]string, error) {
	out := map[string][]string{}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		var raw map[string]any
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return nil, usagef("Error parsing parameter: Invalid JSON: %v\nJSON received: %s", err, s)
		}
		for k, v := range raw {
			switch x := v.(type) {
			case string:
				out[k] = []string{x}
			case []any:
				for _, e := range x {
					str, ok := e.(string)
					if !ok {
						return nil, usagef("Error parsing parameter: %s must hold strings", k)
					}
					out[k] = append(out[k], str)
				}
			default:
				return nil, usagef("Error parsing parameter: %s must be a string or a list of strings", k)
			}
		}
		return out, nil
	}
	isList := map[string]bool{}
	for _, k := range listKeys {
		isList[k] = true
	}
	cur := ""
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok && (cur == "" || !isList[cur] || isKnownKey(k)) {
			cur = k
			out[k] = append(out[k], v)
			continue
		}
		if cur == "" || !isList[cur] {
			return nil, usagef("Error parsing parameter: Expected: '=', received: %q in %q", part, s)
		}
		out[cur] = append(out[cur], part)
	}
	return out, nil
}

// isKnownKey tells a new member from a list value that contains "=".
func isKnownKey(k string) bool {
	switch k {
	case "Key", "Values", "Name", "Value", "key", "values", "valueSet":
		return true
	}
	return false
}

// parseStructList reads a list option whose words are shorthand structures
// or one JSON array of objects.
func parseStructList(words []string, listKeys ...string) ([]map[string][]string, error) {
	if len(words) == 1 && strings.HasPrefix(strings.TrimSpace(words[0]), "[") {
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(words[0]), &raw); err != nil {
			return nil, usagef("Error parsing parameter: Invalid JSON: %v", err)
		}
		var out []map[string][]string
		for _, r := range raw {
			m, err := parseShorthand(string(r), listKeys...)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	}
	var out []map[string][]string
	for _, w := range words {
		m, err := parseShorthand(w, listKeys...)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
