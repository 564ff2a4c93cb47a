package fakecloudflare

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

// CustomHostname is a Cloudflare for SaaS custom hostname as the fake holds
// it. A new one is pending (its owner has not yet published the ownership
// TXT record, its certificate awaits validation) until a test moves it on
// with SetCustomHostname, as Cloudflare's own checks would.
type CustomHostname struct {
	ID, Hostname, Origin string
	Status, SSLStatus    string
	// VerificationErrors are Cloudflare's reasons the hostname is not
	// active yet; SSLErrors its reasons the certificate is not.
	VerificationErrors, SSLErrors []string
	OwnershipName, OwnershipValue string
	SSLTXTName, SSLTXTValue       string
	CreatedAt                     time.Time
}

// SetCustomHostname moves a custom hostname to status and sslStatus with
// the errors Cloudflare would report; false when there is no such hostname.
func (f *Fake) SetCustomHostname(hostname, status, sslStatus string, verificationErrors ...string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hostnames[hostname]
	if !ok {
		return false
	}
	h.Status, h.SSLStatus, h.VerificationErrors = status, sslStatus, verificationErrors
	return true
}

// CustomHostnames returns copies of the zone's custom hostnames.
func (f *Fake) CustomHostnames() map[string]CustomHostname {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]CustomHostname, len(f.hostnames))
	for k, v := range f.hostnames {
		out[k] = *v
	}
	return out
}

// zoneAuthorized checks the token and that the zone is the account's.
func (f *Fake) zoneAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if !f.authorized(w, r, f.AccountID) {
		return false
	}
	if r.PathValue("zone") != f.ZoneID {
		writeError(w, http.StatusNotFound, 7003, "Could not route to "+r.URL.Path+", perhaps your object identifier is invalid?")
		return false
	}
	return true
}

// postCustomHostname creates a custom hostname. Like Cloudflare it refuses
// a duplicate, and a custom origin that has no DNS record in the zone (in
// the fake: that is not one of its Workers custom domains).
func (f *Fake) postCustomHostname(w http.ResponseWriter, r *http.Request) {
	if !f.zoneAuthorized(w, r) {
		return
	}
	var body struct {
		Hostname string `json:"hostname"`
		Origin   string `json:"custom_origin_server"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Hostname == "" {
		writeError(w, http.StatusBadRequest, 1411, "hostname is required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.hostnames[body.Hostname] != nil:
		writeError(w, http.StatusConflict, 1406, "Duplicate custom hostname found.")
		return
	case body.Origin != "" && f.domains[body.Origin] == "":
		writeError(w, http.StatusBadRequest, 1439, "custom_origin_server "+body.Origin+" has no DNS record in the zone")
		return
	}
	h := &CustomHostname{ID: newID(), Hostname: body.Hostname, Origin: body.Origin, Status: "pending",
		SSLStatus: "pending_validation", OwnershipName: "_cf-custom-hostname." + body.Hostname, OwnershipValue: newID(),
		SSLTXTName: "_acme-challenge." + body.Hostname, SSLTXTValue: newID(), CreatedAt: time.Now().UTC(),
		VerificationErrors: []string{"custom hostname does not CNAME to this zone."}}
	f.hostnames[body.Hostname] = h
	writeResult(w, http.StatusOK, h.json())
}

// listCustomHostnames answers the zone's custom hostnames, filtered by
// hostname (an exact match, as the fake keeps it simple).
func (f *Fake) listCustomHostnames(w http.ResponseWriter, r *http.Request) {
	if !f.zoneAuthorized(w, r) {
		return
	}
	want := r.URL.Query().Get("hostname")
	f.mu.Lock()
	out := []any{}
	names := make([]string, 0, len(f.hostnames))
	for name := range f.hostnames {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if want == "" || strings.EqualFold(want, name) {
			out = append(out, f.hostnames[name].json())
		}
	}
	f.mu.Unlock()
	writeResult(w, http.StatusOK, out)
}

// json is the hostname in the API's shape.
func (h *CustomHostname) json() map[string]any {
	ssl := map[string]any{
		"id": uuidOf(h.ID), "method": "txt", "type": "dv", "status": h.SSLStatus,
		"validation_records": []any{map[string]any{"txt_name": h.SSLTXTName, "txt_value": h.SSLTXTValue}},
	}
	if h.SSLStatus == "active" {
		ssl["validation_records"] = []any{}
	}
	out := map[string]any{
		"id": h.ID, "hostname": h.Hostname, "status": h.Status, "ssl": ssl,
		"created_at":             h.CreatedAt.Format(time.RFC3339),
		"ownership_verification": map[string]any{"type": "txt", "name": h.OwnershipName, "value": h.OwnershipValue},
		"verification_errors":    append([]string{}, h.VerificationErrors...),
	}
	if h.Origin != "" {
		out["custom_origin_server"] = h.Origin
	}
	return out
}

// listDomains answers the account's Workers custom domains, filtered as
// the query asks.
func (f *Fake) listDomains(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	q := r.URL.Query()
	if z := q.Get("zone_id"); z != "" && z != f.ZoneID {
		writeResult(w, http.StatusOK, []any{})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []any{}
	for host, service := range f.domains {
		if q.Get("service") != "" && q.Get("service") != service || q.Get("hostname") != "" && q.Get("hostname") != host {
			continue
		}
		out = append(out, map[string]any{"id": "d-" + host, "cert_id": "9fdf92c8-64c2-4a3d-b1af-e15304961145",
			"hostname": host, "service": service, "zone_id": f.ZoneID, "zone_name": f.ZoneName})
	}
	writeResult(w, http.StatusOK, out)
}

// uuidOf shapes a 32-hex id as the UUID the spec wants for a certificate.
func uuidOf(id string) string {
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}
