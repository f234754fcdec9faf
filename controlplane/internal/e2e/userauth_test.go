package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/devidp"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/callevent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
)

// whoAmI is an MCP server that requires a bearer token from the IdP meant
// for it, as a real per-user remote server does: it serves RFC 9728
// metadata naming the IdP, and its tool answers the token's subject. It
// records every token it was sent.
type whoAmI struct {
	url       string // its MCP endpoint
	audiences []string
	verifier  *oidc.IDTokenVerifier
	srv       *http.Server

	mu   sync.Mutex
	seen []string
}

// listenWhoAmI reserves the server's address, so that the IdP can name it
// as an audience before the server starts.
func listenWhoAmI(t *testing.T) (*whoAmI, net.Listener) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &whoAmI{url: "http://" + ln.Addr().String() + "/mcp"}, ln
}

func (w *whoAmI) start(t *testing.T, ln net.Listener, issuer string, audiences ...string) {
	prov, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	w.audiences, w.verifier = audiences, prov.Verifier(&oidc.Config{SkipClientIDCheck: true})
	srv := mcp.NewServer(&mcp.Implementation{Name: "whoami", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "Tells whom the server sees."}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sub=" + req.Extra.TokenInfo.UserID}}}, nil, nil
	})
	prm := w.url[:strings.LastIndex(w.url, "/mcp")] + "/.well-known/oauth-protected-resource/mcp"
	mux := http.NewServeMux()
	mux.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: w.url, AuthorizationServers: []string{issuer}}))
	mux.Handle("/mcp", auth.RequireBearerToken(w.verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: prm})(
		mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)))
	w.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = w.srv.Serve(ln) }()
	t.Cleanup(func() { _ = w.srv.Close() })
}

func (w *whoAmI) verify(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	w.mu.Lock()
	w.seen = append(w.seen, token)
	w.mu.Unlock()
	idt, err := w.verifier.Verify(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	if !slices.ContainsFunc(idt.Audience, func(a string) bool { return slices.Contains(w.audiences, a) }) {
		return nil, fmt.Errorf("%w: audience %v is not this server's", auth.ErrInvalidToken, idt.Audience)
	}
	return &auth.TokenInfo{UserID: idt.Subject, Expiration: idt.Expiry}, nil
}

func (w *whoAmI) sawToken(token string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.seen, token)
}

// TestPerPersonUpstreamAuth: two people call the same tools of upstreams
// that act as each person. With oauth_user, a person without a grant gets
// a URL elicitation of the gateway's consent link; after signing in at the
// upstream's authorization server (the dev IdP, found from the upstream's
// RFC 9728 metadata) the call goes through with that person's token, and
// disconnecting removes it. With token_exchange, the gateway exchanges the
// caller's token at the IdP. Each sees their own subject; the clients' own
// tokens never reach an upstream; call events record whom the upstream saw.
func TestPerPersonUpstreamAuth(t *testing.T) {
	ctx := viewer.System(context.Background())
	gwAddr := freeAddr(t)
	gwURL := "http://" + gwAddr
	resource := gwURL + "/mcp/main"
	personal, personalLn := listenWhoAmI(t)
	exchanged, exchangedLn := listenWhoAmI(t)
	const gwClient, gwSecret = "portcullis-gw", "gw-secret"
	idp, err := devidp.Start(ctx, devidp.Config{ClientID: "console", ClientSecret: "unused", RedirectURIs: []string{"http://127.0.0.1/cb"},
		Users: []devidp.User{alice, bob}, Logger: testutil.Logger(),
		Services: []devidp.Service{
			{ID: "gw-discovery", Secret: "s", Audience: []string{personal.url, exchanged.url}},
		},
		// The gateway's client: at the upstreams' authorization server (here
		// the same provider) and to verify who opens a consent link.
		Clients: []devidp.Client{{ID: gwClient, Secret: gwSecret, RedirectURIs: []string{gwURL + "/oauth/callback", gwURL + "/oauth/login"}},
			// People's MCP client, which signs them in for the gateway.
			{ID: "mcp-client", Secret: "s", RedirectURIs: []string{mcpClientRedirect}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	// Each upstream takes only tokens whose audience is its own URL: the
	// gateway asks for them (RFC 8707's resource; RFC 8693's audience).
	personal.start(t, personalLn, idp.Issuer(), personal.url)
	exchanged.start(t, exchangedLn, idp.Issuer(), exchanged.url)
	token := func(id string) string { return serviceToken(t, idp, id, "s") }

	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	ten, err := cp.Tenants.CreateTenant(ctx, "People", "people", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(ctx, ten.ID, "vpc")
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's own discovery uses a service credential; people's calls never do.
	who := tenantSpec("who", "streamable_http", personal.url, "")
	who.CredentialRef = "env:MCP_CREDENTIAL_DISCOVERY"
	who.Auth = tenant.AuthSpec{Mode: "oauth_user", ClientID: gwClient, ClientSecretRef: "env:MCP_CREDENTIAL_GW_SECRET", Scopes: []string{"openid", "offline_access"}}
	tx := tenantSpec("tx", "streamable_http", exchanged.url, "")
	tx.CredentialRef = "env:MCP_CREDENTIAL_DISCOVERY"
	tx.Auth = tenant.AuthSpec{Mode: "token_exchange", ClientID: gwClient, ClientSecretRef: "env:MCP_CREDENTIAL_GW_SECRET"}
	bad := tx
	bad.Auth.ClientID = ""
	if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, bad); err == nil || !strings.Contains(err.Error(), "token_exchange needs the gateway's OAuth client id") {
		t.Fatalf("token exchange without a client: %v", err)
	}
	for _, spec := range []tenant.UpstreamSpec{who, tx} {
		if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cp.Tenants.CreateVirtualServer(ctx, ten.ID, gw.ID, "main", []string{"tx", "who"}); err != nil {
		t.Fatal(err)
	}
	if err := cp.Access.SetClientIdentityProvider(ctx, ten.ID, idp.Issuer(), "groups"); err != nil {
		t.Fatal(err)
	}
	if err := cp.Access.SetClientAuth(ctx, ten.ID, gw.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Access.CreateRule(ctx, ten.ID, gw.ID, access.Rule{Principal: "*", VirtualServer: "main", ToolPattern: "*", Effect: "allow"}); err != nil {
		t.Fatal(err)
	}
	enroll, err := cp.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), gwAddr, "PORTCULLIS_ENROLL_TOKEN="+enroll,
		"MCP_CREDENTIAL_DISCOVERY="+token("gw-discovery"), "MCP_CREDENTIAL_GW_SECRET="+gwSecret,
		"PORTCULLIS_LOGIN_CLIENT_ID="+gwClient, "PORTCULLIS_LOGIN_CLIENT_SECRET="+gwSecret)
	pinWhenDiscovered(t, cp, ten.ID, "who", "whoami")
	pinWhenDiscovered(t, cp, ten.ID, "tx", "whoami")

	type person struct {
		name, jwt string
		login     devidp.User
		elicited  atomic.Int32
		consent   atomic.Bool  // whether to sign in when asked
		openAs    *devidp.User // who opens the link, if not the person
		completed chan string  // elicitation IDs the gateway says completed
		cs        *mcp.ClientSession
	}
	// Each person's MCP client signs them in at the identity provider for
	// the gateway: they are user:dev-user-1 and user:dev-user-2 there.
	people := []*person{{name: "alice", jwt: userToken(t, idp, alice, resource), login: alice}, {name: "bob", jwt: userToken(t, idp, bob, resource), login: bob}}
	for _, p := range people {
		p.consent.Store(true)
		p.completed = make(chan string, 4)
		c := mcp.NewClient(&mcp.Implementation{Name: "client-" + p.name, Version: "1"}, &mcp.ClientOptions{
			Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
			ElicitationCompleteHandler: func(_ context.Context, req *mcp.ElicitationCompleteNotificationRequest) {
				p.completed <- req.Params.ElicitationID
			},
		})
		eventually(t, p.name+" connects", func() error {
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource,
				HTTPClient: &http.Client{Transport: bearerTransport{base: http.DefaultTransport, token: p.jwt}}},
				&mcp.ClientSessionOptions{ProtocolVersion: sessionProtocol})
			p.cs = cs
			return err
		})
		defer p.cs.Close()
	}
	// call calls a tool as a client application does with URL elicitation
	// (-32042): it shows the person the link (here: signs in there, or
	// declines), waits until the gateway says the elicitation completed,
	// and calls again.
	call := func(p *person, tool string) (string, error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		res, err := p.cs.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
		var je *jsonrpc.Error
		if errors.As(err, &je) && je.Code == mcp.CodeURLElicitationRequired {
			var data struct{ Elicitations []*mcp.ElicitParams }
			if err := json.Unmarshal(je.Data, &data); err != nil || len(data.Elicitations) != 1 {
				return "", fmt.Errorf("URL elicitation data %s: %v", je.Data, err)
			}
			e := data.Elicitations[0]
			p.elicited.Add(1)
			if e.Mode != "url" || !strings.HasPrefix(e.URL, gwURL+"/oauth/consent/") || e.ElicitationID == "" {
				return "", fmt.Errorf("elicitation %+v is not the gateway's consent link", e)
			}
			if !p.consent.Load() {
				return "", err // the person declined: the call stays refused
			}
			opener := p.login
			if p.openAs != nil {
				opener = *p.openAs
			}
			if err := signInAt(e.URL, opener); err != nil {
				return "", err
			}
			select {
			case id := <-p.completed:
				if id != e.ElicitationID {
					return "", fmt.Errorf("completed elicitation %q, want %q", id, e.ElicitationID)
				}
			case <-cctx.Done():
				return "", errors.New("the gateway never said the elicitation completed")
			}
			res, err = p.cs.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
		}
		if err != nil {
			return "", err
		}
		text := res.Content[0].(*mcp.TextContent).Text
		if res.IsError {
			return "", fmt.Errorf("tool error: %s", text)
		}
		return text, nil
	}

	// A consent link opened by someone else: the gateway signs the opener
	// in at the identity provider and refuses, before any authorization.
	people[0].openAs = &bob
	if got, err := call(people[0], "who__whoami"); err == nil || !strings.Contains(err.Error(), "made for another person") {
		t.Fatalf("alice's link opened by bob: %q, %v; want a refusal", got, err)
	}
	people[0].openAs = nil
	people[0].elicited.Store(0)

	// oauth_user: the first call asks for consent; each person then calls as themselves.
	for i, p := range people {
		got, err := call(p, "who__whoami")
		want := fmt.Sprintf("sub=dev-user-%d", i+1)
		if err != nil || got != want || p.elicited.Load() != 1 {
			t.Fatalf("%s's first call: %q, %v after %d elicitations; want %q after one consent", p.name, got, err, p.elicited.Load(), want)
		}
		if got, err := call(p, "who__whoami"); err != nil || got != want || p.elicited.Load() != 1 {
			t.Fatalf("%s's second call: %q, %v after %d elicitations; want %q without asking again", p.name, got, err, p.elicited.Load(), want)
		}
	}
	// Connections: each person sees their own, and can disconnect.
	connections := func(p *person, method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, gwURL+"/oauth/connections"+path, nil)
		req.Header.Set("Authorization", "Bearer "+p.jwt)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := connections(people[1], http.MethodGet, ""); code != http.StatusOK || !strings.Contains(body, `"upstream":"who"`) ||
		!strings.Contains(body, `"subject":"dev-user-2"`) || !strings.Contains(body, `"principal":"user:dev-user-2"`) {
		t.Fatalf("bob's connections: %d %s", code, body)
	}
	if code, body := connections(people[0], http.MethodDelete, "/who"); code != http.StatusNoContent {
		t.Fatalf("alice disconnects: %d %s", code, body)
	}
	if _, body := connections(people[0], http.MethodGet, ""); strings.Contains(body, `"upstream":"who"`) {
		t.Fatalf("alice's connections after disconnecting: %s", body)
	}
	people[0].consent.Store(false)
	if got, err := call(people[0], "who__whoami"); err == nil || people[0].elicited.Load() != 2 {
		t.Fatalf("alice's call after disconnecting and declining: %q, %v after %d elicitations; want a refusal after a new consent request", got, err, people[0].elicited.Load())
	}
	if got, err := call(people[1], "who__whoami"); err != nil || got != "sub=dev-user-2" {
		t.Fatalf("bob after alice disconnected: %q, %v", got, err)
	}

	// Session-less (2026-07-28): the consent is an input request, which the
	// SDK client answers (signing in) and sends the call again with.
	var asked atomic.Int32
	modern := mcp.NewClient(&mcp.Implementation{Name: "client-alice-modern", Version: "1"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked.Add(1)
			if req.Params.Mode != "url" || !strings.HasPrefix(req.Params.URL, gwURL+"/oauth/consent/") {
				return nil, fmt.Errorf("input request %+v is not the gateway's consent link", req.Params)
			}
			if err := signInAt(req.Params.URL, alice); err != nil {
				return nil, err
			}
			return &mcp.ElicitResult{Action: "accept"}, nil
		},
	})
	mcs, err := modern.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource,
		HTTPClient: &http.Client{Transport: bearerTransport{base: http.DefaultTransport, token: people[0].jwt}}},
		&mcp.ClientSessionOptions{ProtocolVersion: statelessProtocol})
	if err != nil {
		t.Fatal(err)
	}
	defer mcs.Close()
	res, err := mcs.CallTool(ctx, &mcp.CallToolParams{Name: "who__whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "sub=dev-user-1" || asked.Load() != 1 {
		t.Fatalf("alice on 2026-07-28: %+v, %v after %d input requests; want sub=dev-user-1 after one", res, err, asked.Load())
	}
	if got, err := call(people[0], "who__whoami"); err != nil || got != "sub=dev-user-1" || people[0].elicited.Load() != 2 {
		t.Fatalf("alice's session after she connected again: %q, %v", got, err)
	}

	// token_exchange: no interaction; the upstream sees each caller's own subject.
	for i, p := range people {
		if got, err := call(p, "tx__whoami"); err != nil || got != fmt.Sprintf("sub=dev-user-%d", i+1) {
			t.Fatalf("%s through token exchange: %q, %v", p.name, got, err)
		}
	}
	for _, p := range people {
		if personal.sawToken(p.jwt) || exchanged.sawToken(p.jwt) {
			t.Errorf("%s's own token reached an upstream", p.name)
		}
	}
	// Admins see the connections (from the gateway's events) and revoke one:
	// the gateway deletes bob's grant with its next bundle, and bob is asked again.
	key, _, err := cp.IDs.CreateAPIKey(ctx, ten.ID, "people-admin", viewer.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	run := cliAs(t, runBinary, cp.PublicURL(), key)
	listed := func() map[string]*adminv1.Connection {
		var out adminv1.ListConnectionsResponse
		if err := protojson.Unmarshal([]byte(run("connections", "list", "--output", "json")), &out); err != nil {
			t.Fatal(err)
		}
		by := map[string]*adminv1.Connection{}
		for _, c := range out.GetConnections() {
			by[c.GetUpstream()+" "+c.GetPrincipal()] = c
		}
		return by
	}
	eventually(t, "both people's connections listed", func() error {
		by := listed()
		a, b := by["who user:dev-user-1"], by["who user:dev-user-2"]
		if a.GetState() != "connected" || a.GetUpstreamIdentity() != "dev-user-1" || b.GetState() != "connected" || b.GetUpstreamIdentity() != "dev-user-2" {
			return fmt.Errorf("connections %v", by)
		}
		return nil
	})
	if out := run("connections", "revoke", listed()["who user:dev-user-2"].GetId()); !strings.Contains(out, "Revoked user:dev-user-2's authorization at who") {
		t.Fatalf("revoke: %s", out)
	}
	people[1].consent.Store(false)
	before := people[1].elicited.Load()
	eventually(t, "bob's grant revoked at the gateway", func() error {
		if got, err := call(people[1], "who__whoami"); err == nil {
			return fmt.Errorf("bob still calls as %q", got)
		} else if people[1].elicited.Load() == before {
			return fmt.Errorf("refused without a new consent request: %v", err)
		}
		return nil
	})
	if got, err := call(people[0], "who__whoami"); err != nil || got != "sub=dev-user-1" {
		t.Fatalf("alice after bob's revocation: %q, %v", got, err)
	}
	if c := listed()["who user:dev-user-2"]; c.GetState() != "revoked" {
		t.Fatalf("bob's connection after the revocation: %v", c)
	}

	eventually(t, "call events naming whom each upstream saw", func() error {
		for _, c := range []struct{ principal, upstream, identity string }{
			{"user:dev-user-1", "who", "dev-user-1"}, {"user:dev-user-2", "who", "dev-user-2"},
			{"user:dev-user-1", "tx", "dev-user-1"}, {"user:dev-user-2", "tx", "dev-user-2"},
		} {
			n, err := cp.DB.CallEvent.Query().Where(callevent.Principal(c.principal), callevent.Upstream(c.upstream),
				callevent.UpstreamIdentity(c.identity), callevent.DecisionEQ(callevent.DecisionAllow)).Count(ctx)
			if err != nil || n == 0 {
				return fmt.Errorf("%+v: %d events, %v", c, n, err)
			}
		}
		return nil
	})
}

// signInAt opens a consent link as a browser would: the person signs in at
// the identity provider (the gateway checks who opened the link), continues
// on the gateway's page, and signs in at the upstream's authorization
// server (here the same dev IdP, without single sign-on); the redirects end
// at the gateway's callback.
func signInAt(link string, u devidp.User) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(link)
	for step := 0; err == nil && step < 8; step++ {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		at := resp.Request.URL
		switch id := at.Query().Get("authRequestID"); {
		case at.Path == "/login/username" && id != "":
			login := *at
			login.RawQuery = ""
			resp, err = c.PostForm(login.String(), url.Values{"id": {id}, "username": {u.Email}, "password": {u.Password}})
		case resp.StatusCode == http.StatusOK && strings.Contains(string(page), "consent-continue"):
			resp, err = c.PostForm(link, nil) // the person continues
		case resp.StatusCode == http.StatusOK && strings.Contains(string(page), "Connected"):
			return nil
		default:
			return fmt.Errorf("at %s (%d): %.400s", at, resp.StatusCode, page)
		}
	}
	if err != nil {
		return err
	}
	return errors.New("the consent link did not end at the gateway's callback")
}

// mcpClientRedirect is where the dev IdP sends people's MCP client its code.
const mcpClientRedirect = "http://127.0.0.1:1/mcp-client/callback"

// userToken signs a person in at the dev IdP as an MCP client does
// (authorization code with PKCE and the gateway as the resource) and
// returns their JWT access token for the gateway.
func userToken(t *testing.T, idp *devidp.IdP, u devidp.User, resource string) string {
	t.Helper()
	cfg := &oauth2.Config{ClientID: "mcp-client", ClientSecret: "s", RedirectURL: mcpClientRedirect,
		Endpoint: oauth2.Endpoint{AuthURL: idp.Issuer() + "/authorize", TokenURL: idp.Issuer() + "/oauth/token"}, Scopes: []string{"openid"}}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), mcpClientRedirect) {
			code = r.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(cfg.AuthCodeURL("state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login := *resp.Request.URL
	id := login.Query().Get("authRequestID")
	login.RawQuery = ""
	if resp, err = c.PostForm(login.String(), url.Values{"id": {id}, "username": {u.Email}, "password": {u.Password}}); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("signing %s in: no code (at %s)", u.Email, resp.Request.URL)
	}
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("signing %s in: %v", u.Email, err)
	}
	return tok.AccessToken
}
