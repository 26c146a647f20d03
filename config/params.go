package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Types of driver parameters in the key tables (S3Keys, GCSKeys, AzureKeys).
// The s3 and gcs drivers parse booleans and integers given as strings (as
// from the environment); the azure driver decodes its parameters with
// mapstructure, which takes a YAML boolean or integer only.
const (
	typeString     = "string"
	typeBool       = "bool"
	typeInt        = "int"
	typeStrictBool = "bool (unquoted)"
	typeStrictInt  = "int (unquoted)"
	typeDuration   = "duration"
	typeMapping    = "mapping" // its keys are checked against a table of their own
)

// checkParams checks that every key of p, found at the dotted key prefix,
// is in keys and has that type; a mapping's keys are checked against
// nested[key]. Keys are checked in sorted order so that the first error is
// always the same.
func checkParams(prefix string, keys map[string]string, nested map[string]map[string]string, p map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(p)) {
		key := prefix + "." + k
		typ, ok := keys[k]
		if !ok {
			return newError(key, "", MsgUnknownKey)
		}
		if typ != typeMapping || p[k] == nil {
			if err := checkValue(key, typ, p[k]); err != nil {
				return err
			}
			continue
		}
		m, ok := p[k].(map[string]any)
		if !ok {
			return newError(key, "", "expected a mapping")
		}
		if err := checkParams(key, nested[k], nil, m); err != nil {
			return err
		}
	}
	return nil
}

// checkValue checks that v, the value of key, has the type typ.
func checkValue(key, typ string, v any) error {
	if v == nil {
		return nil
	}
	shown := maskValue(key, fmt.Sprint(v))
	var ok bool
	switch typ {
	case typeString:
		_, ok = v.(string)
	case typeBool:
		_, err := strconv.ParseBool(fmt.Sprint(v))
		_, isBool := v.(bool)
		_, isString := v.(string)
		ok = err == nil && (isBool || isString)
	case typeInt:
		_, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
		ok = err == nil
	case typeStrictBool:
		_, ok = v.(bool)
	case typeStrictInt:
		_, ok = v.(int)
	case typeDuration:
		s, isString := v.(string)
		_, err := time.ParseDuration(s)
		ok = isString && err == nil
	}
	if !ok {
		return &Error{Key: key, Value: shown, Msg: "expected " + expected(typ)}
	}
	return nil
}

// expected says in words what a value of type typ looks like.
func expected(typ string) string {
	switch typ {
	case typeString:
		return "a string"
	case typeBool:
		return "true or false"
	case typeStrictBool:
		return "true or false, unquoted"
	case typeInt:
		return "an integer"
	case typeStrictInt:
		return "an integer, unquoted"
	case typeDuration:
		return `a duration such as "100ms"`
	}
	return typ
}
