package build

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// stripComments blanks out // and /* */ comments that are outside string
// literals. Blanking (rather than deleting) keeps every byte offset, so a
// json.SyntaxError offset still points at the right line and column of the
// original file. quotes lists the characters that open a string: `"` for
// JSONC, `"'` + "`" for JavaScript config files (read only loosely).
func stripComments(src []byte, quotes string) ([]byte, error) {
	out := bytes.Clone(src)
	var quote byte // the quote of the string we are in, or 0
	for i := 0; i < len(out); i++ {
		c := out[i]
		if quote != 0 {
			switch c {
			case '\\':
				i++ // skip the escaped character, whatever it is
			case quote:
				quote = 0
			}
			continue
		}
		if bytes.IndexByte([]byte(quotes), c) >= 0 {
			quote = c
			continue
		}
		if c != '/' || i+1 >= len(out) {
			continue
		}
		switch out[i+1] {
		case '/':
			for ; i < len(out) && out[i] != '\n'; i++ {
				out[i] = ' '
			}
		case '*':
			end := bytes.Index(out[i+2:], []byte("*/"))
			if end < 0 {
				return nil, fmt.Errorf("comment opened at %s is never closed", position(src, i))
			}
			stop := i + 2 + end + 2
			for ; i < stop; i++ {
				if out[i] != '\n' && out[i] != '\r' {
					out[i] = ' '
				}
			}
			i-- // the loop's i++ moves to the byte after the comment
		}
	}
	return out, nil
}

// stripTrailingCommas blanks out commas that are followed (after whitespace)
// by a closing } or ]: JSONC allows them, encoding/json does not. Comments
// must already be blanked.
func stripTrailingCommas(src []byte) []byte {
	out := bytes.Clone(src)
	inString := false
	for i := 0; i < len(out); i++ {
		c := out[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ',':
			j := i + 1
			for j < len(out) && (out[j] == ' ' || out[j] == '\t' || out[j] == '\n' || out[j] == '\r') {
				j++
			}
			if j < len(out) && (out[j] == '}' || out[j] == ']') {
				out[i] = ' '
			}
		}
	}
	return out
}

// decodeJSONC parses JSON with comments and trailing commas (the dialect of
// wrangler.jsonc, tsconfig.json and bun.lock) into v. Errors carry the line and
// column in the original text.
func decodeJSONC(src []byte, v any) error {
	clean, err := stripComments(blankBOM(src), `"`)
	if err != nil {
		return err
	}
	return decodeJSON(stripTrailingCommas(clean), v)
}

// decodeJSON is json.Unmarshal with errors that say where, as a person
// counts: line and column rather than a byte offset.
func decodeJSON(src []byte, v any) error {
	err := json.Unmarshal(blankBOM(src), v)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// Offset counts the bytes read, the offending one included.
		return fmt.Errorf("%s: %s", position(src, max(int(syn.Offset)-1, 0)), syn.Error())
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field == "" {
			return fmt.Errorf("expected a JSON %s, found %s", jsonKind(v), typ.Value)
		}
		return fmt.Errorf("%s: unexpected %s", typ.Field, typ.Value)
	}
	return err
}

func jsonKind(v any) string {
	switch v.(type) {
	case *map[string]any:
		return "object"
	case *[]any:
		return "array"
	}
	return "value"
}

// blankBOM replaces a leading UTF-8 byte order mark with spaces: editors on
// Windows write one, npm accepts it, encoding/json does not.
func blankBOM(src []byte) []byte {
	if bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) {
		src = bytes.Clone(src)
		copy(src, "   ")
	}
	return src
}

// position renders the index of a byte as "line L, column C" (both from 1).
func position(src []byte, offset int) string {
	if offset > len(src) {
		offset = len(src)
	}
	line := 1 + bytes.Count(src[:offset], []byte("\n"))
	col := offset - bytes.LastIndexByte(src[:offset], '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
