// gotemplate-oracle runs Go's own text/template the way kubectl's -o go-template printer does, so the
// plugin's tests can compare its Go template engine with the real one. Test equipment only; standard
// library only.
//
// Standard input: {"cases": [{"template": "...", "data": <JSON>}, ...]}. Standard output: one result per
// case, in order: {"parseError", "output", "execError", "dump", "json"}: the parse error, the text
// written before execution stopped, the execution error, the data as fmt's %+v prints it and as
// encoding/json marshals it (what kubectl prints when a template fails).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"text/template"
)

type testCase struct {
	Template string          `json:"template"`
	Data     json.RawMessage `json:"data"`
}

type result struct {
	ParseError string `json:"parseError"`
	Output     string `json:"output"`
	ExecError  string `json:"execError"`
	Dump       string `json:"dump"`
	JSON       string `json:"json"`
}

// numbers turns json.Number into int64 when it parses as one, else float64, as
// k8s.io/apimachinery/pkg/util/json does for the objects kubectl hands its printers.
func numbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = numbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = numbers(e)
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	}
	return v
}

// kubectl's two extra template functions, with its semantics.
func base64decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("base64 decode failed: %v", err)
	}
	return string(b), nil
}

func deref(v reflect.Value) (reflect.Value, bool) {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return v, true
		}
		v = v.Elem()
	}
	return v, false
}

func exists(item any, path ...any) bool {
	v := reflect.ValueOf(item)
	for _, p := range path {
		key := reflect.ValueOf(p)
		var isNil bool
		if v, isNil = deref(v); isNil {
			return false
		}
		switch v.Kind() {
		case reflect.Slice, reflect.Array, reflect.String:
			var n int64
			switch {
			case key.CanInt():
				n = key.Int()
			case key.CanUint():
				n = int64(key.Uint())
			default:
				return false
			}
			if n < 0 || n >= int64(v.Len()) {
				return false
			}
			v = v.Index(int(n))
		case reflect.Map:
			if !key.IsValid() {
				key = reflect.Zero(v.Type().Key())
			}
			if !key.Type().AssignableTo(v.Type().Key()) {
				return false
			}
			if e := v.MapIndex(key); e.IsValid() {
				v = e
			} else {
				v = reflect.Zero(v.Type().Elem())
			}
		default:
			return false
		}
	}
	_, isNil := deref(v)
	return !isNil
}

func decode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var data any
	err := dec.Decode(&data)
	return numbers(data), err
}

func run(c testCase) result {
	var r result
	// Decoded, encoded and decoded again, as the object travels from the API server through kubectl's
	// unstructured decoder to its printer: a float that encodes as an integer comes back as int64.
	data, err := decode(c.Data)
	if err == nil {
		again, _ := json.Marshal(data)
		data, err = decode(again)
	}
	if err != nil {
		r.ParseError = "bad test data: " + err.Error()
		return r
	}
	r.Dump = fmt.Sprintf("%+v", data)
	raw, _ := json.Marshal(data)
	r.JSON = string(raw)
	t, err := template.New("output").
		Funcs(template.FuncMap{"exists": exists, "base64decode": base64decode}).
		Parse(c.Template)
	if err != nil {
		r.ParseError = err.Error()
		return r
	}
	t.Option("missingkey=default")
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		r.ExecError = err.Error()
	}
	r.Output = out.String()
	return r
}

func main() {
	var in struct {
		Cases []testCase `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "gotemplate-oracle:", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(in.Cases))
	for _, c := range in.Cases {
		results = append(results, run(c))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "gotemplate-oracle:", err)
		os.Exit(2)
	}
}
