package build

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tailscale/hujson"
)

// decodeJSONC parses JSON with comments and trailing commas (the dialect of
// wrangler.jsonc, tsconfig.json and bun.lock) into v. Errors carry the line and
// column in the original text.
func decodeJSONC(src []byte, v any) error {
	// Standardize blanks comments and trailing commas with spaces, so
	// offsets in the result are offsets in src.
	std, err := hujson.Standardize(blankBOM(src))
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "hujson: "))
	}
	return decodeJSON(std, v)
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
