package strictjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern/internal/strictjson"
)

func TestRawAcceptsValidJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `""`, `true`, `false`, `null`, `0`, `-0.5e+10`, `12.25E-3`,
		` { "a" : [ 1 , "x" , { "b" : null } ] , "c" : false } `,
		`"\u00e9\ud83d\ude00\n\t\"\\\/"`, `"héllo, 世界"`,
	} {
		d := strictjson.NewDecoder([]byte(in))
		if _, err := d.Raw(); err != nil {
			t.Errorf("Raw(%s) = %v", in, err)
			continue
		}
		if err := d.End(); err != nil {
			t.Errorf("End() after %s = %v", in, err)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
		msg  string
	}{
		{``, strictjson.ErrSyntax, "want a JSON value, found the end of the input"},
		{`{"a":1,"a":2}`, strictjson.ErrDuplicate, `"a"`},
		{`{"a":1,}`, strictjson.ErrSyntax, "want a field name"},
		{`{"a" 1}`, strictjson.ErrSyntax, "want ':'"},
		{`[1 2]`, strictjson.ErrSyntax, "want ',' or ']'"},
		{`"abc`, strictjson.ErrSyntax, "unterminated string"},
		{"\"a\x01\"", strictjson.ErrSyntax, "control character"},
		{"\"a\xff\"", strictjson.ErrSyntax, "not valid UTF-8"},
		{`"\x"`, strictjson.ErrSyntax, `bad escape \x`},
		{`"\ud800"`, strictjson.ErrSyntax, "lone UTF-16 surrogate"},
		{`"\u12"`, strictjson.ErrSyntax, `bad \u escape`},
		{`01`, strictjson.ErrSyntax, "data after the JSON value"},
		{`1.`, strictjson.ErrSyntax, "bad number"},
		{`nul`, strictjson.ErrSyntax, "want a JSON value"},
		{`{} {}`, strictjson.ErrSyntax, "data after the JSON value"},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), strictjson.ErrSyntax, "nested more than 64 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d := strictjson.NewDecoder([]byte(tt.in))
			_, err := d.Raw()
			if err == nil {
				err = d.End()
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Raw(%q) = %v, want %v with %q", tt.in, err, tt.want, tt.msg)
			}
		})
	}
}

func TestObjectFields(t *testing.T) {
	type doc struct {
		Name string
		Tags map[string]string
		On   bool
	}
	decode := func(in string) (doc, error) {
		var out doc
		d := strictjson.NewDecoder([]byte(in))
		err := d.Object(func(d *strictjson.Decoder, name []byte) (err error) {
			switch string(name) {
			case "name":
				out.Name, err = d.String()
			case "tags":
				out.Tags, err = d.StringMap()
			case "on":
				out.On, err = d.Bool()
			default:
				err = d.UnknownField(name)
			}
			return err
		})
		if err == nil {
			err = d.End()
		}
		return out, err
	}
	got, err := decode(`{"name":"a\"b","tags":{"k":"v"},"on":true}`)
	if err != nil || got.Name != `a"b` || got.Tags["k"] != "v" || !got.On {
		t.Errorf("decode = %+v, %v", got, err)
	}
	for _, tt := range []struct {
		in   string
		want error
	}{
		{`{"Name":"a"}`, strictjson.ErrUnknownField}, // encoding/json would take it
		{`{"name":"a","name":"b"}`, strictjson.ErrDuplicate},
		{`{"name":null}`, strictjson.ErrType},
		{`{"name":1}`, strictjson.ErrType},
		{`{"on":"true"}`, strictjson.ErrType},
		{`[]`, strictjson.ErrType},
		{`{"tags":{"k":1}}`, strictjson.ErrType},
	} {
		if _, err := decode(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("decode(%s) = %v, want %v", tt.in, err, tt.want)
		}
	}
}

// stricter reports whether err is one of the checks strictjson makes beyond
// encoding/json's: duplicate fields, deep nesting, and strings that are not
// Unicode (encoding/json turns those into U+FFFD).
func stricter(err error) bool {
	if errors.Is(err, strictjson.ErrDuplicate) {
		return true
	}
	for _, s := range []string{"nested more than", "not valid UTF-8", "lone UTF-16 surrogate"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// FuzzRaw holds strictjson to encoding/json: whatever it accepts is valid
// JSON, and valid JSON it refuses is refused for a reason in stricter;
// strings decode the same.
func FuzzRaw(f *testing.F) {
	for _, s := range []string{`{"a":[1,"x",{"b":null}],"c":false}`, `"\u00e9\ud83d\ude00"`, `{"a":1,"a":2}`, `[[[]]]`, `-1.5e3`, `"a\u0000b"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := strictjson.NewDecoder(b)
		_, err := d.Raw()
		if err == nil {
			err = d.End()
		}
		valid := json.Valid(b)
		if err == nil && !valid {
			t.Fatalf("strictjson accepted %q, which encoding/json finds invalid", b)
		}
		if err != nil && valid && !stricter(err) {
			t.Fatalf("strictjson refused valid JSON %q: %v", b, err)
		}
		if err == nil && len(b) > 0 {
			var want string
			if json.Unmarshal(b, &want) == nil {
				got, err := strictjson.NewDecoder(b).String()
				if err != nil || got != want {
					t.Fatalf("String(%q) = %q, %v; encoding/json says %q", b, got, err, want)
				}
			}
		}
	})
}

func TestDuplicateInLargeObject(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 1000 {
		fmt.Fprintf(&b, `"k%d":0,`, i)
	}
	b.WriteString(`"k999":1}`)
	_, err := strictjson.NewDecoder([]byte(b.String())).Raw()
	if !errors.Is(err, strictjson.ErrDuplicate) || !strings.Contains(err.Error(), `"k999"`) {
		t.Errorf("Raw(1001 fields, k999 twice) = %v, want %v naming k999", err, strictjson.ErrDuplicate)
	}
}
