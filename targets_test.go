package libra

import (
	"strings"
	"testing"
)

func TestCheckAlias(t *testing.T) {
	tests := []struct {
		name, project, label, err string
	}{
		{"feat-x", "web", "feat-x--web", ""},
		{"pr-12", "My-Site", "pr-12--my-site", ""},
		{"a", "documentatio", "a--documentatio", ""}, // 12 letters: no site label's random part
		{"Feat", "web", "", "lowercase"},
		{"-x", "web", "", "lowercase"},
		{"x-", "web", "", "lowercase"},
		{"a--b", "web", "", "may not contain"},
		{"a.b", "web", "", "lowercase"},
		{"", "web", "", "lowercase"},
		{"x", "my_site", "", "no host name label"},
		// SECURITY: the project part must not be able to spell another
		// deployment's random part (13 base32) or an old label's (18 hex).
		{"victim", "k3j4h5g6f7d8s", "", "shape of a deployment"},
		{"victim", "K3J4H5G6F7D8S", "", "shape of a deployment"},
		{"d", "0123456789abcdef01", "", "shape of a deployment"},
		{strings.Repeat("a", 59), "web", "", "at most 63"},
		{strings.Repeat("a", 58), "web", strings.Repeat("a", 58) + "--web", ""},
	}
	for _, tt := range tests {
		label, err := CheckAlias(tt.name, tt.project)
		if tt.err == "" && (err != nil || label != tt.label) {
			t.Errorf("CheckAlias(%q, %q) = %q, %v; want %q", tt.name, tt.project, label, err, tt.label)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("CheckAlias(%q, %q) = %q, %v; want an error with %q", tt.name, tt.project, label, err, tt.err)
		}
	}
}

// Every label NewSiteLabel makes either does not split as an alias label or
// splits into a project part that CheckAlias refuses: no alias can ever
// spell a deployment's host name.
func TestSiteLabelsAreNeverAliasLabels(t *testing.T) {
	for _, host := range []string{"", "victim", "a-b", strings.Repeat("x", 63)} {
		for range 200 {
			label := NewSiteLabel(host)
			name, project, ok := SplitAliasLabel(label)
			if !ok {
				continue
			}
			if _, err := CheckAlias(name, project); err == nil {
				t.Fatalf("site label %q is also the alias %q of project %q", label, name, project)
			}
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		ok   bool
	}{
		{"", TargetProduction, true},
		{"production", TargetProduction, true},
		{"preview", TargetPreview, true},
		{"Preview", "", false},
		{"staging", "", false},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseTarget(%q) = %q, %v", tt.in, got, err)
		}
	}
}
