package main

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"regexp"
	"strings"
	"time"
)

// Parameter is one Parameter Store entry. A SecureString's value is kept in
// the clear here; without --with-decryption it is returned as an opaque
// base64 blob, so a caller that forgets the flag gets no usable value.
type Parameter struct {
	Name             string
	Type             string
	Value            string
	Version          int
	LastModifiedDate string
	Description      string `json:",omitempty"`
}

const maxParameterValue = 4096 // standard tier

var paramName = regexp.MustCompile(`^/?[a-zA-Z0-9_.\-/]+$`) // length checked apart: at most 1011

func (s *store) parameters() (map[string]*Parameter, error) {
	ps := map[string]*Parameter{}
	err := readJSON(s.path("parameters.json"), &ps)
	if errors.Is(err, fs.ErrNotExist) {
		return ps, nil
	}
	return ps, err
}

func getParameter(ctx context.Context, s *store, a *args) (any, error) {
	name, err := a.required("name")
	if err != nil {
		return nil, err
	}
	decrypt := a.flag("with-decryption")
	ps, err := s.parameters()
	if err != nil {
		return nil, err
	}
	p, ok := ps[name]
	if !ok {
		return nil, apiErr("ParameterNotFound", "")
	}
	value := p.Value
	if p.Type == "SecureString" && !decrypt {
		value = "AQICAHfake" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", len(p.Value))))
	}
	return map[string]any{"Parameter": map[string]any{
		"Name": p.Name, "Type": p.Type, "Value": value, "Version": p.Version,
		"LastModifiedDate": p.LastModifiedDate, "DataType": "text",
		"ARN": "arn:aws:ssm:us-east-1:000000000000:parameter/" + strings.TrimPrefix(p.Name, "/"),
	}}, nil
}

func putParameter(ctx context.Context, s *store, a *args) (any, error) {
	name, err := a.required("name")
	if err != nil {
		return nil, err
	}
	value, err := a.required("value")
	if err != nil {
		return nil, err
	}
	typ, err := a.str("type")
	if err != nil {
		return nil, err
	}
	desc, err := a.str("description")
	if err != nil {
		return nil, err
	}
	overwrite := a.flag("overwrite")
	if !paramName.MatchString(name) || len(name) > 1011 {
		return nil, apiErr("ValidationException", "parameter name %q: letters, digits and _.-/ only", name)
	}
	if value == "" {
		return nil, apiErr("ValidationException", "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(value) > maxParameterValue {
		return nil, apiErr("ValidationException", "value is %d characters; a standard parameter holds at most %d", len(value), maxParameterValue)
	}
	unlock, err := s.lock("parameters.lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	ps, err := s.parameters()
	if err != nil {
		return nil, err
	}
	old := ps[name]
	if old != nil && !overwrite {
		return nil, apiErr("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
	}
	switch {
	case typ == "" && old != nil:
		typ = old.Type
	case typ == "":
		return nil, apiErr("ValidationException", "A parameter type is required when you create a parameter.")
	case typ != "String" && typ != "SecureString" && typ != "StringList":
		return nil, usagef("argument --type: Invalid choice %q, valid choices are: String | StringList | SecureString", typ)
	}
	if old != nil && old.Type != typ {
		return nil, apiErr("HierarchyTypeMismatchException", "The parameter type can't be changed (%s to %s).", old.Type, typ)
	}
	version := 1
	if old != nil {
		version = old.Version + 1
	}
	ps[name] = &Parameter{Name: name, Type: typ, Value: value, Version: version,
		LastModifiedDate: awsTime(time.Now()), Description: desc}
	if err := writeJSON(s.path("parameters.json"), ps); err != nil {
		return nil, err
	}
	return map[string]any{"Version": version, "Tier": "Standard"}, nil
}
