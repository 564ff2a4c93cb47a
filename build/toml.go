package build

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// parseTOML reads a TOML document (wrangler.toml) into nested maps. Errors
// say where, as a person counts: line and column.
func parseTOML(src []byte) (map[string]any, error) {
	var doc map[string]any
	err := toml.Unmarshal(src, &doc)
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := de.Error()
		if strings.Contains(msg, "at start of value") {
			// The usual slip: a bare word where a string was meant.
			msg += " (strings need quotes)"
		}
		return nil, fmt.Errorf("line %d, column %d: %s", line, col, msg)
	}
	if err != nil {
		return nil, err
	}
	return doc, nil
}
