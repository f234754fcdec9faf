package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/grants"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/telemetry"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// fakeAS is an authorization server whose refresh tokens rotate: a refresh
// token works once, as with most providers.
type fakeAS struct {
	srv        *httptest.Server
	refreshes  atomic.Int32
	registered atomic.Int32
	mu         sync.Mutex
	valid      map[string]bool // refresh tokens that still work
	n          int
}

func newFakeAS(t *testing.T) *fakeAS {
	as := &fakeAS{valid: map[string]bool{"rt-0": true}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": as.srv.URL, "authorization_endpoint": as.srv.URL + "/authorize",
			"token_endpoint": as.srv.URL + "/token", "jwks_uri": as.srv.URL + "/jwks", "response_types_supported": []string{"code"},
			"registration_endpoint":            as.srv.URL + "/register",
			"code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, r *http.Request) {
		as.registered.Add(1)
		var meta map[string]any
		_ = json.NewDecoder(r.Body).Decode(&meta)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": "registered-gw", "redirect_uris": meta["redirect_uris"]})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		as.refreshes.Add(1)
		time.Sleep(20 * time.Millisecond) // concurrent callers overlap
		_ = r.ParseForm()
		as.mu.Lock()
		defer as.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		rt := r.PostForm.Get("refresh_token")
		if r.PostForm.Get("grant_type") != "refresh_token" || !as.valid[rt] {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		delete(as.valid, rt)
		as.n++
		next := "rt-" + string(rune('0'+as.n))
		as.valid[next] = true
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + next, "token_type": "Bearer", "expires_in": 3600, "refresh_token": next})
	})
	as.srv = httptest.NewServer(mux)
	t.Cleanup(as.srv.Close)
	return as
}

func testUserAuth(t *testing.T, as *fakeAS) (*userAuth, *upstream) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	key, err := grants.LoadKey(filepath.Join(dir, "key"), true)
	if err != nil {
		t.Fatal(err)
	}
	store, err := grants.NewDir(filepath.Join(dir, "grants"), key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ctx, Config{Telemetry: telemetry.NewQueue(16), PublicURL: "http://gw.test", Grants: store})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{spec: &agentv1.Upstream{Name: "up", Url: "http://up.test/mcp", Transport: agentv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Auth: &agentv1.UpstreamAuth{Mode: agentv1.AuthMode_AUTH_MODE_OAUTH_USER, ClientId: "gw", Issuer: as.srv.URL}}, creds: &Credentials{}}
	return p.users, u
}

// Concurrent requests of one person with an expired access token refresh
// it once: the refresh token rotates, so a second refresh with the old one
// would be refused and cost the person their grant.
func TestGrantRefreshesOnceAndRotates(t *testing.T) {
	as := newFakeAS(t)
	a, u := testUserAuth(t, as)
	ctx := context.Background()
	g := grant{AccessToken: "at-old", RefreshToken: "rt-0", Expiry: time.Now().Add(-time.Minute), ClientID: "gw", Created: time.Now()}
	if err := a.store.Put(ctx, kindGrant, grantScope(u), "user:alice", g, time.Hour); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ct, err := a.token(ctx, u, "user:alice")
			if err == nil && ct.token != "at-rt-1" {
				err = errors.New("token " + ct.token)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes for 8 concurrent requests, want 1", n)
	}
	var kept grant
	if ok, _ := a.store.Get(ctx, kindGrant, grantScope(u), "user:alice", &kept); !ok || kept.RefreshToken != "rt-1" || kept.AccessToken != "at-rt-1" {
		t.Fatalf("kept grant %+v, want the rotated tokens", kept)
	}

	// A refused refresh removes the grant: the person is asked again.
	kept.Expiry, kept.RefreshToken = time.Now().Add(-time.Minute), "revoked"
	if err := a.store.Put(ctx, kindGrant, grantScope(u), "user:bob", kept, time.Hour); err != nil {
		t.Fatal(err)
	}
	var nc needConsent
	if _, err := a.token(ctx, u, "user:bob"); !errors.As(err, &nc) {
		t.Fatalf("a refused refresh: %v, want consent", err)
	}
	if ok, _ := a.store.Get(ctx, kindGrant, grantScope(u), "user:bob", &kept); ok {
		t.Fatal("the refused grant was kept")
	}
	// Nobody is anonymous at an upstream that acts as each person.
	if _, err := a.token(ctx, u, ""); err == nil {
		t.Fatal("an anonymous caller got a token")
	}
	// A grant does not follow the upstream to another server.
	moved := &upstream{spec: &agentv1.Upstream{Name: "up", Url: "http://elsewhere.test/mcp", Auth: u.spec.Auth}, creds: u.creds}
	if _, err := a.token(ctx, moved, "user:alice"); !errors.As(err, &nc) {
		t.Fatalf("alice's grant at the moved upstream: %v, want consent", err)
	}
}

// Without a configured client the gateway registers one (RFC 7591), once,
// and a confirmed consent link sends the browser to the authorization
// server with PKCE (S256), the state and the resource (RFC 8707).
func TestConsentRegistersAndRedirects(t *testing.T) {
	as := newFakeAS(t)
	a, u := testUserAuth(t, as)
	u.spec.Auth.ClientId = ""
	a.p.mu.Lock()
	a.p.upstreams["up"] = u // not started: taken out before the proxy stops
	a.p.mu.Unlock()
	t.Cleanup(func() {
		a.p.mu.Lock()
		delete(a.p.upstreams, "up")
		a.p.mu.Unlock()
	})
	ctx := context.Background()
	for range 2 {
		if _, err := a.consentError(ctx, u, "user:alice", nil); err != nil {
			t.Fatal(err)
		}
	}
	res, _ := a.consentError(ctx, u, "user:alice", nil)
	ep, ok := res.InputRequests[consentInput].(*mcp.ElicitParams)
	if !ok || ep.Mode != "url" || !strings.HasPrefix(ep.URL, "http://gw.test/oauth/consent/") {
		t.Fatalf("input request %+v", res.InputRequests)
	}
	state := strings.TrimPrefix(ep.URL, "http://gw.test/oauth/consent/")
	h := a.p.Handler()
	// Until the person signed in at the identity provider in this browser,
	// the link goes nowhere near the upstream (here the gateway has no
	// login client, and says so).
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/oauth/consent/"+state, nil))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "--login-client-id") {
			t.Fatalf("%s before signing in: %d %s", method, rec.Code, rec.Body)
		}
	}
	// As after serveLogin: the link is bound to this browser's cookie.
	var c consent
	if ok, _ := a.store.Get(ctx, kindConsent, "", state, &c); !ok {
		t.Fatal("no consent record")
	}
	sum := sha256.Sum256([]byte("browser-cookie"))
	c.Browser = hex.EncodeToString(sum[:])
	if err := a.store.Put(ctx, kindConsent, "", state, c, time.Minute); err != nil {
		t.Fatal(err)
	}
	inBrowser := func(method, cookie string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/oauth/consent/"+state, nil)
		req.AddCookie(&http.Cookie{Name: consentCookie, Value: cookie})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := inBrowser(http.MethodPost, "another-browser"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("another browser continues: %d", rec.Code)
	}
	get := inBrowser(http.MethodGet, "browser-cookie")
	if get.Code != http.StatusOK || !strings.Contains(get.Body.String(), "user:alice") || !strings.Contains(get.Body.String(), "http://up.test/mcp") {
		t.Fatalf("consent page %d: %s", get.Code, get.Body)
	}
	for range 2 {
		post := inBrowser(http.MethodPost, "browser-cookie")
		loc, err := url.Parse(post.Header().Get("Location"))
		if post.Code != http.StatusSeeOther || err != nil {
			t.Fatalf("continue: %d %v", post.Code, err)
		}
		q := loc.Query()
		if loc.Path != "/authorize" || q.Get("client_id") != "registered-gw" || q.Get("state") != state || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("resource") != "http://up.test/mcp" || q.Get("redirect_uri") != "http://gw.test/oauth/callback" {
			t.Fatalf("authorization URL %s", loc)
		}
	}
	if n := as.registered.Load(); n != 1 {
		t.Fatalf("registered %d times, want once", n)
	}
	// A made-up link and a callback without a known state are refused.
	for _, path := range []string{"/oauth/consent/made-up", "/oauth/callback?state=made-up&code=x"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code < 400 {
			t.Errorf("%s: %d", path, rec.Code)
		}
	}
}

// A client's requests to an upstream that acts as each person never carry
// the upstream's own credential (it serves only discovery): an anonymous
// client's request is refused before it is sent.
func TestPerPersonNeverSendsTheDiscoveryCredential(t *testing.T) {
	var seen atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer up.Close()
	t.Setenv("MCP_CREDENTIAL_DISCOVERY", "discovery-secret")
	a, u := testUserAuth(t, newFakeAS(t))
	u.spec.Url, u.spec.CredentialRef, u.users = up.URL, "env:MCP_CREDENTIAL_DISCOVERY", a
	u.creds = &Credentials{Env: []string{"MCP_CREDENTIAL_*"}}
	hc, err := u.clientFor("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Get(up.URL); err == nil || !strings.Contains(err.Error(), "authenticate to the gateway") {
		t.Fatalf("an anonymous client's request: %v", err)
	}
	if _, err := u.transport(false, ""); err != nil {
		t.Fatal(err)
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
	// The gateway's own discovery session does carry it.
	own, err := u.httpClient()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := own.Get(up.URL); err != nil || resp.StatusCode != http.StatusUnauthorized || seen.Load() != 1 {
		t.Fatalf("discovery request: %v %v", resp, err)
	}
}
