package cloudflare

import "testing"

func TestAssetHash(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, want string
	}{
		// The vector published with wrangler's hashing (specs/README.md).
		{"published vector", "index.html", "hello\n", "051240d22ab9086ec5997a6d1ad35ec1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AssetHash([]byte(tc.content), tc.file); got != tc.want {
				t.Fatalf("AssetHash(%q, %q) = %s, want %s", tc.content, tc.file, got, tc.want)
			}
		})
	}
	// The extension is part of the hash: the same bytes under another
	// type are another asset (Cloudflare serves the type with it).
	a, b, c := AssetHash([]byte("x"), "a.html"), AssetHash([]byte("x"), "a.txt"), AssetHash([]byte("x"), "dir.v1/noext")
	if a == b || b == c || len(a) != 32 {
		t.Fatalf("hashes do not depend on the extension: %s %s %s", a, b, c)
	}
}
