package sitehost

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Limits on a site's rule files, as Cloudflare Pages has them: rules are
// matched on requests, so a site must not be able to make that unbounded.
const (
	maxStaticRedirects  = 2000
	maxDynamicRedirects = 100
	maxHeaderRules      = 100
	maxRuleFileBytes    = 1 << 20
)

// pattern is the path part of a _redirects or _headers rule: literal text,
// at most one splat "*" (captured as :splat) and ":name" placeholders that
// each match one path segment.
type pattern struct {
	// literal is the normalized path when the pattern has no splat or
	// placeholder; such rules are looked up in a map instead of matched.
	literal string
	re      *regexp.Regexp
	names   []string // one per capture group of re, in order
}

// trimSlash normalizes a path for rule matching, so "/blog" and "/blog/"
// match the same rules, as on Netlify and Cloudflare Pages.
func trimSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

func compilePattern(p string) (*pattern, error) {
	if p == "" || p[0] != '/' {
		return nil, fmt.Errorf("pattern %q must start with '/'", p)
	}
	if strings.Count(p, "*") > 1 {
		return nil, fmt.Errorf("pattern %q has more than one '*'", p)
	}
	body, tail := p, ""
	if strings.HasSuffix(p, "/*") {
		// "/blog/*" covers "/blog" itself too.
		body, tail = p[:len(p)-2], `(?:/(.*))?`
	}
	body = trimSlash(body)
	if tail == "" && !strings.ContainsAny(body, "*:") {
		return &pattern{literal: body}, nil
	}
	var re strings.Builder
	var names []string
	re.WriteString("^")
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '*':
			re.WriteString("(.*)")
			names = append(names, "splat")
		case c == ':' && i > 0 && body[i-1] == '/' && i+1 < len(body) && isNameStart(body[i+1]):
			j := i + 1
			for j < len(body) && isNameChar(body[j]) {
				j++
			}
			re.WriteString("([^/]+)")
			names = append(names, body[i+1:j])
			i = j - 1
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if tail != "" {
		re.WriteString(tail)
		names = append(names, "splat")
	}
	re.WriteString("$")
	if len(names) == 0 {
		return &pattern{literal: body}, nil
	}
	compiled, err := regexp.Compile(re.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, err)
	}
	return &pattern{re: compiled, names: names}, nil
}

func isNameStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }

// match reports whether the normalized path np matches, and the captured
// values, in the order of p.names.
func (p *pattern) match(np string) (bool, []string) {
	if p.re == nil {
		return np == p.literal, nil
	}
	m := p.re.FindStringSubmatch(np)
	if m == nil {
		return false, nil
	}
	return true, m[1:]
}

// expand replaces ":splat" and the pattern's own ":name"s in s with the
// captured values; other colons ("https:", "max-age: 1") stay as they are.
// With escape set, values are path-escaped segment by segment, for a URL.
func expand(s string, names, vals []string, escape bool) string {
	if len(names) == 0 || !strings.Contains(s, ":") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ':' && i+1 < len(s) && isNameStart(s[i+1]) {
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			if k := indexOf(names, s[i+1:j]); k >= 0 {
				v := vals[k]
				if escape {
					v = escapePath(v)
				}
				b.WriteString(v)
				i = j - 1
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func escapePath(v string) string {
	segs := strings.Split(v, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// redirectRule is one line of _redirects.
type redirectRule struct {
	order  int
	pat    *pattern
	to     string
	status int
	// force applies a rewrite even where a file exists (Netlify's "200!").
	force    bool
	external bool
}

// rewrite reports whether the rule serves another file in place (200, or
// 404 with that file as the page) rather than redirecting.
func (r *redirectRule) rewrite() bool {
	return r.status == http.StatusOK || r.status == http.StatusNotFound
}

// redirects holds a site's _redirects in file order. The first rule that
// matches and applies wins.
//
// Redirects (3xx) apply whether or not a file exists at the path, as on
// Cloudflare Pages. Rewrites (200, 404) apply only where no file exists
// ("shadowing", so "/* /index.html 200" leaves the assets alone), unless
// forced with "!", as on Netlify.
type redirects struct {
	static  map[string][]*redirectRule
	dynamic []*redirectRule
}

// parseRedirects reads a _redirects file. Lines it cannot honour exactly
// (conditions, proxying to other hosts, unknown codes) are skipped and
// reported, never half-applied.
func parseRedirects(data []byte) (*redirects, []string) {
	rs := &redirects{static: map[string][]*redirectRule{}}
	var warnings []string
	nStatic := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxRuleFileBytes)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		warn := func(format string, args ...any) {
			warnings = append(warnings, fmt.Sprintf("_redirects line %d: ", line)+fmt.Sprintf(format, args...))
		}
		f := strings.Fields(text)
		if len(f) < 2 {
			warn("needs a source and a destination")
			continue
		}
		// Netlify's query and country conditions: "/from id=:id /to 301",
		// "/from /to 302 Country=us".
		if len(f) > 3 || strings.Contains(f[1], "=") && !strings.HasPrefix(f[1], "/") && !strings.HasPrefix(f[1], "http") {
			warn("conditions are not supported; rule skipped")
			continue
		}
		r := &redirectRule{to: f[1], status: http.StatusFound}
		if len(f) == 3 {
			code := f[2]
			if strings.HasSuffix(code, "!") {
				r.force, code = true, strings.TrimSuffix(code, "!")
			}
			n, err := strconv.Atoi(code)
			if err != nil {
				warn("status %q is not a number", f[2])
				continue
			}
			r.status = n
		}
		switch r.status {
		case 200, 404, 301, 302, 303, 307, 308:
		default:
			warn("status %d is not supported", r.status)
			continue
		}
		r.external = strings.HasPrefix(r.to, "https://") || strings.HasPrefix(r.to, "http://")
		switch {
		case !r.external && !strings.HasPrefix(r.to, "/"):
			warn("destination %q must be a path or an http(s) URL", r.to)
			continue
		case r.external && r.rewrite():
			warn("proxying to another host is not supported")
			continue
		}
		pat, err := compilePattern(f[0])
		if err != nil {
			warn("%v", err)
			continue
		}
		r.pat = pat
		if pat.re == nil {
			if nStatic >= maxStaticRedirects {
				warn("more than %d static rules; rest skipped", maxStaticRedirects)
				continue
			}
			nStatic++
			r.order = nStatic + len(rs.dynamic)
			rs.static[pat.literal] = append(rs.static[pat.literal], r)
		} else {
			if len(rs.dynamic) >= maxDynamicRedirects {
				warn("more than %d rules with '*' or ':placeholder'; rest skipped", maxDynamicRedirects)
				continue
			}
			r.order = nStatic + len(rs.dynamic) + 1
			rs.dynamic = append(rs.dynamic, r)
		}
	}
	if err := sc.Err(); err != nil {
		warnings = append(warnings, fmt.Sprintf("_redirects: %v", err))
	}
	if nStatic == 0 && len(rs.dynamic) == 0 {
		return nil, warnings
	}
	return rs, warnings
}

// match finds the rule for path p (cleaned, with its leading slash).
// fileExists says whether a file would be served there, for shadowing.
func (rs *redirects) match(p string, fileExists bool) (*redirectRule, []string) {
	np := trimSlash(p)
	var best *redirectRule
	for _, r := range rs.static[np] {
		if r.applies(fileExists) {
			best = r
			break
		}
	}
	for _, r := range rs.dynamic {
		if best != nil && r.order > best.order {
			break
		}
		if !r.applies(fileExists) {
			continue
		}
		if ok, vals := r.pat.match(np); ok {
			return r, vals
		}
	}
	return best, nil
}

func (r *redirectRule) applies(fileExists bool) bool {
	return !fileExists || !r.rewrite() || r.force
}

// location builds the Location header of a redirect for request path p.
func (r *redirectRule) location(vals []string, rawQuery string) string {
	loc := expand(r.to, r.pat.names, vals, true)
	if !r.external {
		// "//host" and "/\host" leave the site in a browser; a splat must
		// not be able to turn a local redirect into one to another host.
		for len(loc) > 1 && loc[0] == '/' && (loc[1] == '/' || loc[1] == '\\') {
			loc = loc[1:]
		}
	}
	if rawQuery != "" && !strings.Contains(loc, "?") {
		loc += "?" + rawQuery
	}
	return loc
}

// target returns the site path a rewrite serves, without query or fragment.
func (r *redirectRule) target(vals []string) string {
	t := expand(r.to, r.pat.names, vals, false)
	if i := strings.IndexAny(t, "?#"); i >= 0 {
		t = t[:i]
	}
	return t
}

// headerRule is one block of _headers.
type headerRule struct {
	pat    *pattern
	set    []headerField
	detach []string
}

type headerField struct {
	name, value string
}

// headerSet is what all rules matching one path add and remove, ready to put
// into a response.
type headerSet struct {
	names  []string
	values [][]string
	detach []string
}

// reservedHeaders are framing headers the server computes; letting _headers
// set them would corrupt responses rather than configure them.
var reservedHeaders = map[string]bool{
	"Content-Length":    true,
	"Content-Encoding":  true,
	"Content-Range":     true,
	"Transfer-Encoding": true,
	"Connection":        true,
	"Keep-Alive":        true,
	"Upgrade":           true,
	"Trailer":           true,
	"Date":              true,
}

// parseHeaders reads a _headers file: a path pattern on its own line, then
// indented "Name: value" lines, or "! Name" to remove a header.
func parseHeaders(data []byte) ([]*headerRule, []string) {
	var rules []*headerRule
	var warnings []string
	var cur *headerRule
	skipping := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxRuleFileBytes)
	for line := 1; sc.Scan(); line++ {
		raw := sc.Text()
		text := strings.TrimSpace(raw)
		if text == "" || text[0] == '#' {
			continue
		}
		warn := func(format string, args ...any) {
			warnings = append(warnings, fmt.Sprintf("_headers line %d: ", line)+fmt.Sprintf(format, args...))
		}
		indented := raw[0] == ' ' || raw[0] == '\t'
		if !indented && (text[0] == '/' || strings.HasPrefix(text, "http://") || strings.HasPrefix(text, "https://")) {
			cur, skipping = nil, true
			if text[0] != '/' {
				warn("patterns with a host are not supported; block skipped")
				continue
			}
			if len(rules) >= maxHeaderRules {
				warn("more than %d rules; rest skipped", maxHeaderRules)
				continue
			}
			pat, err := compilePattern(text)
			if err != nil {
				warn("%v", err)
				continue
			}
			cur, skipping = &headerRule{pat: pat}, false
			rules = append(rules, cur)
			continue
		}
		if cur == nil {
			if !skipping {
				warn("header line before any path")
			}
			continue
		}
		if strings.HasPrefix(text, "!") {
			name := strings.TrimSpace(text[1:])
			if !validHeaderName(name) {
				warn("invalid header name %q", name)
				continue
			}
			cur.detach = append(cur.detach, http.CanonicalHeaderKey(name))
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !validHeaderName(name) {
			warn("expected \"Name: value\"")
			continue
		}
		if !validHeaderValue(value) {
			warn("invalid value for %s", name)
			continue
		}
		name = http.CanonicalHeaderKey(name)
		if reservedHeaders[name] {
			warn("%s is set by the server", name)
			continue
		}
		cur.set = append(cur.set, headerField{name, value})
	}
	if err := sc.Err(); err != nil {
		warnings = append(warnings, fmt.Sprintf("_headers: %v", err))
	}
	return rules, warnings
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// headersFor combines every rule matching the request path p or the path of
// the file that answers it, filePath ("/secret.html" for "/secret"; "" when
// no file does). Matching only p let pretty URLs and fallbacks serve a file
// without the headers its own path was given (issue 8). A rule matching both
// applies once, with the request path's placeholders. A header set by
// several rules gets their values joined with ", "; detaching wins over
// setting.
func headersFor(rules []*headerRule, p, filePath string) *headerSet {
	np, nf := trimSlash(p), trimSlash(filePath)
	hs := &headerSet{}
	for _, r := range rules {
		ok, vals := r.pat.match(np)
		if !ok && nf != "" && nf != np {
			ok, vals = r.pat.match(nf)
		}
		if !ok {
			continue
		}
		for _, f := range r.set {
			v := expand(f.value, r.pat.names, vals, false)
			if i := indexOf(hs.names, f.name); i >= 0 {
				hs.values[i][0] += ", " + v
			} else {
				hs.names = append(hs.names, f.name)
				hs.values = append(hs.values, []string{v})
			}
		}
		hs.detach = append(hs.detach, r.detach...)
	}
	if len(hs.names) == 0 && len(hs.detach) == 0 {
		return nil
	}
	return hs
}

// apply writes the set into h, overriding what the server chose.
func (hs *headerSet) apply(h http.Header) {
	for i, n := range hs.names {
		h[n] = hs.values[i]
	}
	for _, n := range hs.detach {
		delete(h, n)
	}
}
