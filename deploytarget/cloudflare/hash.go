package cloudflare

import (
	"encoding/base64"
	"encoding/hex"
	"path"
	"strings"

	"github.com/zeebo/blake3"
)

// AssetHash is wrangler's hash of a static asset: the first 32 hex digits
// of BLAKE3 over the base64 of the content followed by the file's extension
// without its dot. Cloudflare keys stored assets by it, so it must match
// wrangler's byte for byte or every deploy would upload everything again.
func AssetHash(content []byte, name string) string {
	h := blake3.New()
	enc := base64.NewEncoder(base64.StdEncoding, h)
	_, _ = enc.Write(content) // a hash's Write never fails
	_ = enc.Close()
	_, _ = h.Write([]byte(strings.TrimPrefix(path.Ext(name), ".")))
	return hex.EncodeToString(h.Sum(nil))[:32]
}
