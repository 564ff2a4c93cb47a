package build

import (
	"bytes"
	"fmt"
)

// JavaScript config files (next.config.js, astro.config.mjs) are code, and
// only looked at loosely, for a setting written as a literal: this blanks
// their comments so that a commented-out setting does not count. It is not
// a JSON reader (those are hujson and encoding/json, see jsonc.go), and a
// JavaScript parser would be far more than this needs.

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

// position renders the index of a byte as "line L, column C" (both from 1).
func position(src []byte, offset int) string {
	if offset > len(src) {
		offset = len(src)
	}
	line := 1 + bytes.Count(src[:offset], []byte("\n"))
	col := offset - bytes.LastIndexByte(src[:offset], '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
