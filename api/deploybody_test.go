package api

import (
	"bytes"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

func TestReadDeployBody(t *testing.T) {
	body := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	tests := []struct {
		name     string
		sent     []byte
		declared int64
		status   int // 0: read
		maxCap   int // the buffer may be no larger than this
	}{
		{"declared size, small", body(100), 100, 0, 101},
		{"declared size, large", body(commitAfter * 3), commitAfter * 3, 0, commitAfter*3 + 1},
		{"unknown size", body(commitAfter + 10), -1, 0, 2 * (commitAfter + 10)},
		{"declares 50 MiB, sends 100 bytes", body(100), libra.MaxBodyBytes, 0, commitAfter + 1},
		{"declares less than it sends", body(5000), 10, 0, 2 * 5000},
		{"exactly the limit", body(libra.MaxBodyBytes), libra.MaxBodyBytes, 0, libra.MaxBodyBytes + 1},
		{"over the limit", body(libra.MaxBodyBytes + 1), -1, http.StatusRequestEntityTooLarge, 0},
		{"empty", nil, 0, http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, e := readDeployBody(bytes.NewReader(tt.sent), tt.declared)
			if tt.status != 0 {
				if e == nil || e.GetStatus() != tt.status {
					t.Fatalf("error %v, want status %d", e, tt.status)
				}
				return
			}
			if e != nil {
				t.Fatalf("error %v", e)
			}
			if !bytes.Equal(got, tt.sent) {
				t.Fatalf("read %d bytes, want the %d sent", len(got), len(tt.sent))
			}
			t.Logf("%d bytes in a buffer of %d", len(got), cap(got))
			if cap(got) > tt.maxCap {
				t.Errorf("buffer of %d bytes for %d, want at most %d", cap(got), len(got), tt.maxCap)
			}
		})
	}
}

func TestDecodeDeployErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, body, field, message string
	}{
		{"not JSON", `{"projectId":`, "", "not valid JSON"},
		{"not an object", `[1,2]`, "", "must be a JSON object"},
		{"unknown name", `{"projectId":"p","orgId":"o","userId":"u","InitFiles":[]}`, "InitFiles", "case-sensitive"},
		{"missing orgId", `{"projectId":"p","userId":"u"}`, "orgId", "is required"},
		{"wrong type deep", `{"projectId":"p","orgId":"o","userId":"u","historyMessages":[{"role":"user","content":"x","diff":[{"path":"a","type":"create","modified":5}]}]}`,
			"historyMessages.diff.modified", "must be a string, not number"},
		{"missing diff type", `{"projectId":"p","orgId":"o","userId":"u","historyMessages":[{"role":"user","content":"x","diff":[{"path":"a"}]}]}`,
			"historyMessages[0].diff[0].type", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, e := decodeDeploy([]byte(tt.body))
			if e == nil {
				t.Fatal("accepted")
			}
			if e.GetStatus() != http.StatusBadRequest || !strings.Contains(e.Message, tt.message) {
				t.Errorf("%d %q, want 400 saying %q", e.GetStatus(), e.Message, tt.message)
			}
			details, _ := e.Details.([]FieldError)
			if tt.field != "" && (len(details) == 0 || details[0].Field != tt.field) {
				t.Errorf("details %+v, want field %s", details, tt.field)
			}
		})
	}
}

// The documented limits are the enforced ones.
func TestDeployFieldsMatchTheSchema(t *testing.T) {
	f, _ := reflect.TypeFor[DeployRequest]().FieldByName("HistoryMessages")
	if got := f.Tag.Get("maxItems"); got != strconv.Itoa(maxHistoryMessages) {
		t.Errorf("historyMessages maxItems %q, enforced %d", got, maxHistoryMessages)
	}
	if len(deployFields) != 9 || strings.Join(requiredDeployFields, ",") != "projectId,orgId,userId" {
		t.Errorf("fields %v, required %v", deployFields, requiredDeployFields)
	}
}
