package build

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestDecodeJSONC(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]any
	}{
		{
			name: "line and block comments",
			src:  "// head\n{ /* a */ \"a\": 1, // tail\n \"b\": /* inline */ \"x\" }\n/* end */",
			want: map[string]any{"a": 1.0, "b": "x"},
		},
		{
			name: "comment markers inside strings are text",
			src:  `{"url": "https://example.com/a//b", "glob": "src/**/*.ts", "q": "say \"//hi\""}`,
			want: map[string]any{"url": "https://example.com/a//b", "glob": "src/**/*.ts", "q": `say "//hi"`},
		},
		{
			name: "trailing commas, nested and before comments",
			src:  "{\"a\": [1, 2, ], \"b\": {\"c\": true, // note\n}, }",
			want: map[string]any{"a": []any{1.0, 2.0}, "b": map[string]any{"c": true}},
		},
		{
			name: "commas inside strings stay",
			src:  `{"s": ",}", "t": ", ]"}`,
			want: map[string]any{"s": ",}", "t": ", ]"},
		},
		{
			name: "byte order mark and CRLF",
			src:  "\ufeff{\r\n  \"a\": \"b\", // x\r\n}\r\n",
			want: map[string]any{"a": "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			if err := decodeJSONC([]byte(tt.src), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeJSONCErrorPosition(t *testing.T) {
	src := "{\n  // a comment\n  \"a\": 1,\n  \"b\" 2\n}"
	var v map[string]any
	err := decodeJSONC([]byte(src), &v)
	if err == nil || !strings.Contains(err.Error(), "line 4, column 7") {
		t.Fatalf("error %v, want it at line 4, column 7 (the 2)", err)
	}
}

func TestParseTOML(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]any
	}{
		{
			name: "tables, dotted keys, comments",
			src: `# top
name = "app" # trailing
workers_dev = true
[assets]
directory = "./dist"
[env.production]
vars.MODE = 'prod'
`,
			want: map[string]any{
				"name": "app", "workers_dev": true,
				"assets": map[string]any{"directory": "./dist"},
				"env":    map[string]any{"production": map[string]any{"vars": map[string]any{"MODE": "prod"}}},
			},
		},
		{
			name: "inline tables and multi-line arrays",
			src:  "assets = { directory = \"public\", not_found_handling = \"none\" }\nflags = [\n  \"a\", # one\n  \"b\",\n]\nnums = [1, 2.5, -3]\n",
			want: map[string]any{
				"assets": map[string]any{"directory": "public", "not_found_handling": "none"},
				"flags":  []any{"a", "b"},
				"nums":   []any{int64(1), 2.5, int64(-3)},
			},
		},
		{
			name: "strings of every kind",
			src: "a = \"tab\\tquote\\\" \\u00e9\"\nb = 'C:\\path'\nc = \"\"\"\nline1\n  line2\"\"\"\nd = '''\nraw \\n'''\ne = \"\"\"joined \\\n    here\"\"\"\nf = \"\"\"ends with quote\"\"\"\"\n" +
				"\"quoted key\" = 1\n",
			want: map[string]any{
				"a": "tab\tquote\" é", "b": `C:\path`, "c": "line1\n  line2", "d": `raw \n`,
				"e": "joined here", "f": `ends with quote"`, "quoted key": int64(1),
			},
		},
		{
			name: "arrays of tables and dates",
			src:  "compatibility_date = 2025-04-01\nwhen = 1979-05-27 07:32:00Z\n[[routes]]\npattern = \"a/*\"\n[[routes]]\npattern = \"b/*\"\n[routes.extra]\nx = 1\n",
			want: map[string]any{
				"compatibility_date": toml.LocalDate{Year: 2025, Month: 4, Day: 1}, "when": time.Date(1979, 5, 27, 7, 32, 0, 0, time.UTC),
				"routes": []any{
					map[string]any{"pattern": "a/*"},
					map[string]any{"pattern": "b/*", "extra": map[string]any{"x": int64(1)}},
				},
			},
		},
		{
			name: "a key that looks like ours in a multi-line string",
			src:  "description = \"\"\"\n[assets]\ndirectory = \"../../etc\"\n\"\"\"\n",
			want: map[string]any{"description": "[assets]\ndirectory = \"../../etc\"\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTOML([]byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// TestParseTOMLErrors: a broken wrangler.toml is reported with the line a
// person would look at.
func TestParseTOMLErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"a = dist\n", "line 1, column 5"},
		{"a = dist\n", "strings need quotes"},
		{"a = \"open\n", "line 1"},
		{"a = 1\na = 2\n", "line 2"},
		{"[assets\ndirectory = 'x'\n", "line 1"},
		{"x = 1\na = [1, 2\n", "line 2"},
		{"a = { b = 1 \n", "line 1"},
		{"a = 1 b = 2\n", "line 1"},
		{"a = \"bad \\q escape\"\n", "line 1"},
		{"= 1\n", "line 1"},
		{"a = 1\n[a]\n", "line 2"},
	}
	for _, tt := range tests {
		_, err := parseTOML([]byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseTOML(%q) error = %v, want one containing %q", tt.src, err, tt.want)
		}
	}
}
