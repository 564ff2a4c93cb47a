package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// testOrgBlobs: blobs are recorded per org, so one org never sees
// another's; recording again refreshes the size; many digests at once
// cross the statements' chunk size.
func testOrgBlobs(t *testing.T, s libra.Store) {
	now := libra.Now()
	a, b, c := libra.OrgBlob{Digest: "sha256:aa", Size: 1}, libra.OrgBlob{Digest: "sha256:bb", Size: 2}, libra.OrgBlob{Digest: "sha256:cc", Size: 3}
	if err := s.RecordBlobs(ctx, "o1", []libra.OrgBlob{a, b, a}, now); err != nil {
		t.Fatalf("record: %v", err)
	}
	if err := s.RecordBlobs(ctx, "o2", []libra.OrgBlob{c}, now); err != nil {
		t.Fatalf("record: %v", err)
	}
	tests := []struct {
		org  string
		ask  []string
		want map[string]int64
	}{
		{"o1", []string{"sha256:aa", "sha256:cc", "sha256:zz"}, map[string]int64{"sha256:aa": 1}},
		{"o2", []string{"sha256:aa", "sha256:bb", "sha256:cc"}, map[string]int64{"sha256:cc": 3}},
		{"nobody", []string{"sha256:aa"}, map[string]int64{}},
		{"o1", nil, map[string]int64{}},
	}
	for _, tt := range tests {
		got, err := s.OrgBlobs(ctx, tt.org, tt.ask)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("OrgBlobs(%s, %v) = %v, %v; want %v", tt.org, tt.ask, got, err, tt.want)
		}
	}
	list, err := s.ListOrgBlobs(ctx, "o1")
	if err != nil || !reflect.DeepEqual(list, []libra.OrgBlob{a, b}) {
		t.Fatalf("ListOrgBlobs(o1) = %v, %v; want %v", list, err, []libra.OrgBlob{a, b})
	}
	if empty, err := s.ListOrgBlobs(ctx, "nobody"); err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("ListOrgBlobs(nobody) = %v, %v; want an empty slice", empty, err)
	}
	if err := s.RecordBlobs(ctx, "o1", []libra.OrgBlob{{Digest: "sha256:aa", Size: 10}}, now.Add(time.Second)); err != nil {
		t.Fatalf("record again: %v", err)
	}
	if got, _ := s.OrgBlobs(ctx, "o1", []string{"sha256:aa"}); got["sha256:aa"] != 10 {
		t.Fatalf("recorded again with size 10: got %v", got)
	}
	checkManyOrgBlobs(t, s, now)
}

func checkManyOrgBlobs(t *testing.T, s libra.Store, now time.Time) {
	const n = 1234
	blobs := make([]libra.OrgBlob, n)
	ask := make([]string, 0, 2*n)
	for i := range blobs {
		blobs[i] = libra.OrgBlob{Digest: fmt.Sprintf("sha256:%064d", i), Size: int64(i)}
		ask = append(ask, blobs[i].Digest, fmt.Sprintf("sha256:x%063d", i))
	}
	if err := s.RecordBlobs(ctx, "many", blobs, now); err != nil {
		t.Fatalf("record %d: %v", n, err)
	}
	got, err := s.OrgBlobs(ctx, "many", ask)
	if err != nil || len(got) != n || got[blobs[n-1].Digest] != n-1 {
		t.Fatalf("OrgBlobs of %d recorded among %d asked: %d found, %v", n, len(ask), len(got), err)
	}
}
