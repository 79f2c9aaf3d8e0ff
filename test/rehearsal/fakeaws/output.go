package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/jmespath/go-jmespath"
)

func jmesSearch(expr string, data any) (any, error) {
	return jmespath.Search(expr, data)
}

// formatText writes data as the AWS CLI's text output does
// (awscli/text.py): scalars on a line, a list of scalars tab-separated on
// one line, each inner list or object on its own line, objects as their
// scalar values in key order, nested values after them with the key in
// upper case as identifier, null as "None".
func formatText(w io.Writer, data any) {
	textItem(w, data, "", nil)
}

func textItem(w io.Writer, item any, ident string, scalarKeys []string) {
	switch v := item.(type) {
	case map[string]any:
		textDict(w, v, ident, scalarKeys)
	case []any:
		textList(w, v, ident)
	default:
		fmt.Fprintf(w, "%s\n", textScalar(v))
	}
}

func textList(w io.Writer, list []any, ident string) {
	if len(list) == 0 {
		return
	}
	hasDict, hasList := false, false
	for _, el := range list {
		switch el.(type) {
		case map[string]any:
			hasDict = true
		case []any:
			hasList = true
		}
	}
	switch {
	case hasDict:
		keys := allScalarKeys(list)
		for _, el := range list {
			textItem(w, el, ident, keys)
		}
	case hasList:
		var scalars, others []any
		for _, el := range list {
			switch el.(type) {
			case map[string]any, []any:
				others = append(others, el)
			default:
				scalars = append(scalars, el)
			}
		}
		if len(scalars) > 0 {
			textScalarList(w, scalars, ident)
		}
		for _, el := range others {
			textItem(w, el, ident, nil)
		}
	default:
		textScalarList(w, list, ident)
	}
}

func textScalarList(w io.Writer, list []any, ident string) {
	if ident != "" {
		for _, el := range list {
			fmt.Fprintf(w, "%s\t%s\n", strings.ToUpper(ident), textScalar(el))
		}
		return
	}
	parts := make([]string, len(list))
	for i, el := range list {
		parts[i] = textScalar(el)
	}
	fmt.Fprintf(w, "%s\n", strings.Join(parts, "\t"))
}

func textDict(w io.Writer, d map[string]any, ident string, scalarKeys []string) {
	var scalars []string
	type nested struct {
		key string
		val any
	}
	var others []nested
	if scalarKeys == nil {
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch d[k].(type) {
			case map[string]any, []any:
				others = append(others, nested{k, d[k]})
			default:
				scalars = append(scalars, textScalar(d[k]))
			}
		}
	} else {
		isScalar := map[string]bool{}
		for _, k := range scalarKeys {
			isScalar[k] = true
			if v, ok := d[k]; ok {
				scalars = append(scalars, textScalar(v))
			} else {
				scalars = append(scalars, "")
			}
		}
		var rest []string
		for k := range d {
			if !isScalar[k] {
				rest = append(rest, k)
			}
		}
		sort.Strings(rest)
		for _, k := range rest {
			others = append(others, nested{k, d[k]})
		}
	}
	if len(scalars) > 0 {
		if ident != "" {
			scalars = append([]string{strings.ToUpper(ident)}, scalars...)
		}
		fmt.Fprintf(w, "%s\n", strings.Join(scalars, "\t"))
	}
	for _, n := range others {
		textItem(w, n.val, n.key, nil)
	}
}

func allScalarKeys(list []any) []string {
	seen := map[string]bool{}
	for _, el := range list {
		if d, ok := el.(map[string]any); ok {
			for k, v := range d {
				switch v.(type) {
				case map[string]any, []any:
				default:
					seen[k] = true
				}
			}
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// textScalar prints a value as Python's str() does for what the CLI
// decodes: None, True/False, integers without a fraction.
func textScalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}
