package remote

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
)

// envName is what a shell accepts as a variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Script is the bash script that runs c in the project directory with
// c.Env added. Every word is quoted, so nothing in an argument or a value is
// read by the shell.
//
//	(cd libra-project && export 'K=v' && 'npm' 'run' 'build') 2>&1
func Script(c libra.Command) (string, error) {
	if len(c.Args) == 0 || c.Args[0] == "" {
		return "", errors.New("sandbox: empty command")
	}
	var exports []string
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !envName.MatchString(k) {
			return "", fmt.Errorf("sandbox: invalid environment variable name %q", k)
		}
		exports = append(exports, "export "+Quote(k+"="+c.Env[k])+" && ")
	}
	var words []string
	for _, a := range c.Args {
		if strings.ContainsRune(a, 0) {
			return "", errors.New("sandbox: command argument contains NUL")
		}
		words = append(words, Quote(a))
	}
	// A subshell, so that nothing stays behind in a provider's session.
	return "(cd " + ProjectDir + " && " + strings.Join(exports, "") + strings.Join(words, " ") + ") 2>&1", nil
}

// Quote makes s one single-quoted shell word.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
