package build

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseTOML reads the subset of TOML that wrangler.toml files use into nested
// maps: tables, arrays of tables, dotted and quoted keys, inline tables,
// arrays, and all four string forms. Numbers, dates and other bare values are
// kept as their source text, since nothing here needs them as numbers. It is
// a full reader of the document's structure rather than a grep for a few
// keys, so that a `directory = ...` inside another table or a multi-line
// string is never mistaken for the one we want.
func parseTOML(src []byte) (map[string]any, error) {
	p := &tomlParser{src: blankBOM(src)}
	root := map[string]any{}
	cur := root
	for {
		p.skipBlank(true)
		if p.eof() {
			return root, nil
		}
		var err error
		if p.peek() == '[' {
			cur, err = p.header(root)
		} else {
			err = p.keyValue(cur)
		}
		if err != nil {
			return nil, err
		}
		p.skipBlank(false)
		if !p.eof() && p.peek() != '\n' && p.peek() != '\r' {
			return nil, p.errorf("unexpected %q after a value", p.peek())
		}
	}
}

type tomlParser struct {
	src []byte
	pos int
}

func (p *tomlParser) eof() bool  { return p.pos >= len(p.src) }
func (p *tomlParser) peek() byte { return p.src[p.pos] }

func (p *tomlParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", position(p.src, p.pos), fmt.Sprintf(format, args...))
}

func (p *tomlParser) hasPrefix(s string) bool {
	return bytes.HasPrefix(p.src[p.pos:], []byte(s))
}

// skipBlank skips spaces, tabs and comments, and newlines too when newlines
// is set (between statements, inside arrays and inline tables).
func (p *tomlParser) skipBlank(newlines bool) {
	for !p.eof() {
		switch c := p.peek(); {
		case c == ' ' || c == '\t':
			p.pos++
		case c == '#':
			for !p.eof() && p.peek() != '\n' {
				p.pos++
			}
		case newlines && (c == '\n' || c == '\r'):
			p.pos++
		default:
			return
		}
	}
}

// header reads [a.b] or [[a.b]] and returns the table that the following
// keys go into.
func (p *tomlParser) header(root map[string]any) (map[string]any, error) {
	array := p.hasPrefix("[[")
	if array {
		p.pos += 2
	} else {
		p.pos++
	}
	p.skipBlank(false)
	path, err := p.keyPath()
	if err != nil {
		return nil, err
	}
	p.skipBlank(false)
	closing := "]"
	if array {
		closing = "]]"
	}
	if !p.hasPrefix(closing) {
		return nil, p.errorf("expected %q to close the table header", closing)
	}
	p.pos += len(closing)

	t := root
	for _, k := range path[:len(path)-1] {
		if t, err = p.descend(t, k); err != nil {
			return nil, err
		}
	}
	last := path[len(path)-1]
	if !array {
		return p.descend(t, last)
	}
	next := map[string]any{}
	switch v := t[last].(type) {
	case nil:
		t[last] = []any{next}
	case []any:
		t[last] = append(v, next)
	default:
		return nil, p.errorf("%q is already defined as a value, not an array of tables", last)
	}
	return next, nil
}

// descend returns the table under key k of t, creating it when missing. For
// an array of tables it is the last element, as TOML specifies.
func (p *tomlParser) descend(t map[string]any, k string) (map[string]any, error) {
	switch v := t[k].(type) {
	case nil:
		next := map[string]any{}
		t[k] = next
		return next, nil
	case map[string]any:
		return v, nil
	case []any:
		if len(v) > 0 {
			if m, ok := v[len(v)-1].(map[string]any); ok {
				return m, nil
			}
		}
	}
	return nil, p.errorf("%q is already defined as a value, not a table", k)
}

// keyValue reads `key = value` into t.
func (p *tomlParser) keyValue(t map[string]any) error {
	path, err := p.keyPath()
	if err != nil {
		return err
	}
	p.skipBlank(false)
	if p.eof() || p.peek() != '=' {
		return p.errorf("expected '=' after the key %q", strings.Join(path, "."))
	}
	p.pos++
	p.skipBlank(false)
	v, err := p.value()
	if err != nil {
		return err
	}
	for _, k := range path[:len(path)-1] {
		if t, err = p.descend(t, k); err != nil {
			return err
		}
	}
	last := path[len(path)-1]
	if _, dup := t[last]; dup {
		return p.errorf("the key %q is defined twice", strings.Join(path, "."))
	}
	t[last] = v
	return nil
}

// keyPath reads a dotted key such as assets.directory or "a b".'c'.
func (p *tomlParser) keyPath() ([]string, error) {
	var path []string
	for {
		p.skipBlank(false)
		if p.eof() {
			return nil, p.errorf("expected a key")
		}
		var (
			k   string
			err error
		)
		switch p.peek() {
		case '"':
			k, err = p.basicString()
		case '\'':
			k, err = p.literalString()
		default:
			start := p.pos
			for !p.eof() && isBareKeyChar(p.peek()) {
				p.pos++
			}
			if p.pos == start {
				return nil, p.errorf("expected a key, found %q", p.peek())
			}
			k = string(p.src[start:p.pos])
		}
		if err != nil {
			return nil, err
		}
		path = append(path, k)
		p.skipBlank(false)
		if p.eof() || p.peek() != '.' {
			return path, nil
		}
		p.pos++
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (p *tomlParser) value() (any, error) {
	if p.eof() {
		return nil, p.errorf("expected a value")
	}
	switch {
	case p.hasPrefix(`"""`):
		return p.multilineString(`"""`)
	case p.hasPrefix(`'''`):
		return p.multilineString(`'''`)
	case p.peek() == '"':
		return p.basicString()
	case p.peek() == '\'':
		return p.literalString()
	case p.peek() == '[':
		return p.array()
	case p.peek() == '{':
		return p.inlineTable()
	}
	return p.bare()
}

// bare reads a boolean, number or date. They are kept as text.
func (p *tomlParser) bare() (any, error) {
	start := p.pos
	for !p.eof() && isBareValueChar(p.peek()) {
		p.pos++
	}
	// A date-time may separate date and time with one space:
	// 1979-05-27 07:32:00Z.
	if p.pos-start == 10 && p.src[start+4] == '-' && p.hasPrefix(" ") &&
		p.pos+3 < len(p.src) && isDigit(p.src[p.pos+1]) && isDigit(p.src[p.pos+2]) && p.src[p.pos+3] == ':' {
		p.pos++
		for !p.eof() && isBareValueChar(p.peek()) {
			p.pos++
		}
	}
	tok := string(p.src[start:p.pos])
	switch tok {
	case "":
		return nil, p.errorf("expected a value, found %q", p.peek())
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	if c := tok[0]; !(isDigit(c) || c == '+' || c == '-' || strings.HasPrefix(tok, "inf") || strings.HasPrefix(tok, "nan")) {
		return nil, p.errorf("%q is not a TOML value (strings need quotes)", tok)
	}
	return tok, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isBareValueChar(c byte) bool {
	return isBareKeyChar(c) || c == '+' || c == '.' || c == ':'
}

func (p *tomlParser) array() (any, error) {
	p.pos++ // [
	var out []any
	for {
		p.skipBlank(true)
		if p.eof() {
			return nil, p.errorf("array is never closed")
		}
		if p.peek() == ']' {
			p.pos++
			return out, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.skipBlank(true)
		if p.eof() {
			return nil, p.errorf("array is never closed")
		}
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
		default:
			return nil, p.errorf("expected ',' or ']' in an array, found %q", p.peek())
		}
	}
}

// inlineTable reads { k = v, ... }. Newlines are tolerated inside (TOML 1.1
// allows them) because rejecting them would only turn away valid files.
func (p *tomlParser) inlineTable() (any, error) {
	p.pos++ // {
	t := map[string]any{}
	for {
		p.skipBlank(true)
		if p.eof() {
			return nil, p.errorf("inline table is never closed")
		}
		if p.peek() == '}' {
			p.pos++
			return t, nil
		}
		if err := p.keyValue(t); err != nil {
			return nil, err
		}
		p.skipBlank(true)
		if p.eof() {
			return nil, p.errorf("inline table is never closed")
		}
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
		default:
			return nil, p.errorf("expected ',' or '}' in an inline table, found %q", p.peek())
		}
	}
}

func (p *tomlParser) literalString() (string, error) {
	p.pos++ // '
	start := p.pos
	for !p.eof() && p.peek() != '\'' {
		if p.peek() == '\n' {
			return "", p.errorf("string is not closed on its line")
		}
		p.pos++
	}
	if p.eof() {
		return "", p.errorf("string is never closed")
	}
	s := string(p.src[start:p.pos])
	p.pos++
	return s, nil
}

func (p *tomlParser) basicString() (string, error) {
	p.pos++ // "
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errorf("string is never closed")
		}
		c := p.peek()
		switch c {
		case '"':
			p.pos++
			return b.String(), nil
		case '\n':
			return "", p.errorf("string is not closed on its line")
		case '\\':
			if err := p.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

// multilineString reads a multi-line string, basic (between triple double
// quotes) or literal (between triple single quotes). A newline right after
// the opening delimiter is dropped; in basic ones a backslash at the end of
// a line joins it to the next non-blank text.
func (p *tomlParser) multilineString(delim string) (string, error) {
	p.pos += 3
	if p.hasPrefix("\r\n") {
		p.pos += 2
	} else if p.hasPrefix("\n") {
		p.pos++
	}
	basic := delim == `"""`
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errorf("multi-line string is never closed")
		}
		if p.hasPrefix(delim) {
			// Up to two quotes may sit right before the closing delimiter.
			n := 0
			for p.pos+n < len(p.src) && p.src[p.pos+n] == delim[0] {
				n++
			}
			if n > 5 {
				return "", p.errorf("too many quotes at the end of a multi-line string")
			}
			b.WriteString(strings.Repeat(delim[:1], n-3))
			p.pos += n
			return b.String(), nil
		}
		c := p.peek()
		if basic && c == '\\' {
			rest := p.pos + 1
			for rest < len(p.src) && (p.src[rest] == ' ' || p.src[rest] == '\t') {
				rest++
			}
			if rest < len(p.src) && (p.src[rest] == '\n' || p.src[rest] == '\r') {
				p.pos = rest
				for !p.eof() && strings.IndexByte(" \t\r\n", p.peek()) >= 0 {
					p.pos++
				}
				continue
			}
			if err := p.escape(&b); err != nil {
				return "", err
			}
			continue
		}
		b.WriteByte(c)
		p.pos++
	}
}

// escape decodes one backslash escape at p.pos into b.
func (p *tomlParser) escape(b *strings.Builder) error {
	if p.pos+1 >= len(p.src) {
		return p.errorf("string is never closed")
	}
	c := p.src[p.pos+1]
	p.pos += 2
	simple := map[byte]byte{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', 'e': 0x1b, '"': '"', '\\': '\\'}
	if r, ok := simple[c]; ok {
		b.WriteByte(r)
		return nil
	}
	digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
	if digits == 0 || p.pos+digits > len(p.src) {
		return p.errorf("invalid escape \\%c", c)
	}
	n, err := strconv.ParseUint(string(p.src[p.pos:p.pos+digits]), 16, 32)
	if err != nil || !utf8.ValidRune(rune(n)) {
		return p.errorf("invalid escape \\%c%s", c, p.src[p.pos:p.pos+digits])
	}
	b.WriteRune(rune(n))
	p.pos += digits
	return nil
}
