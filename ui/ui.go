// Package ui holds the console's templ components, their view models and the
// static assets (htmx, vendored; the stylesheet). Components take view-model
// structs and hold no business logic; handlers in controlplane/internal/web
// fill the models.
package ui

import (
	"embed"
	"encoding/json"
	"time"
)

// Static is served at /static/.
//
//go:embed static
var Static embed.FS

// HTMX is the vendored htmx file name under /static/.
const HTMX = "htmx-2.0.11.min.js"

// Page is what every page's layout needs.
type Page struct {
	Title     string
	Active    string // nav item
	UserEmail string
	CSRF      string
	Tenant    TenantRef
	Tenants   []TenantRef
	Role      string
	CanAdmin  bool
	// CanApprove is true for approvers and above.
	CanApprove bool
	// PendingChanges counts change requests awaiting a decision (nav badge).
	PendingChanges int
	Error          string
	Notice         string
}

// TenantRef names a tenant the user belongs to.
type TenantRef struct {
	ID, Slug, Name, Role string
}

// HXHeaders is the hx-headers attribute carrying the CSRF token on every
// htmx request.
func (p Page) HXHeaders() string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": p.CSRF})
	return string(b)
}

// Ago renders a time as a short relative duration.
func Ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := time.Since(*t).Round(time.Second)
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return d.String() + " ago"
	case d < time.Hour:
		return (d / time.Minute * time.Minute).String() + " ago"
	case d < 48*time.Hour:
		return (d / time.Hour * time.Hour).String() + " ago"
	}
	return t.Format("2006-01-02")
}

// Expiry renders a certificate's expiry: the date, and a warning class when
// it is near (a week) or past.
func Expiry(t *time.Time) (string, string) {
	if t == nil {
		return "unknown", "muted"
	}
	left := time.Until(*t)
	switch {
	case left <= 0:
		return "expired " + t.Format("2006-01-02 15:04"), "bad"
	case left < 7*24*time.Hour:
		return t.Format("2006-01-02 15:04"), "warn"
	}
	return t.Format("2006-01-02"), "muted"
}

// Short shortens a hash for display.
func Short(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// Dashboard is the home page.
type Dashboard struct {
	Page
	Gateways, AgentsOnline, AgentsTotal, Upstreams, Tools, ToolsPinned, ToolsDrifted, ToolsUnapproved, PendingChanges int
	Traffic, Latency                                                                                                  Chart
	Recent                                                                                                            []AuditRow
}

// Tenants is the tenant picker and creation form.
type Tenants struct {
	Page
}

// Member is one row of the members page.
type Member struct {
	ID, Email, Name, Role string
	Pending               bool
	Since                 time.Time
	// LastOwner is the tenant's only owner: not offered removal.
	LastOwner bool
}

// Members is the members page.
type Members struct {
	Page
	Members []Member
	Roles   []string
}

// Agent is one running gateway instance.
type Agent struct {
	ID, Hostname, Version string
	Connected             bool
	LastSeen              *time.Time
	AppliedVersion        uint64
	LastNack              string
	Revoked               bool
	CertExpires           *time.Time
}

// Gateway is one row of the gateways page, or the gateway detail page.
type Gateway struct {
	ID, Name      string
	Created       time.Time
	Agents        []Agent
	Online        int
	PolicyVersion uint64
}

// Live counts the agents that are not revoked.
func (g Gateway) Live() int {
	n := 0
	for _, a := range g.Agents {
		if !a.Revoked {
			n++
		}
	}
	return n
}

// Gateways is the gateways page.
type Gateways struct {
	Page
	Gateways []Gateway
}

// GatewayDetail is one gateway with enrollment, agents and its servers.
type GatewayDetail struct {
	Page
	Gateway        Gateway
	Upstreams      []Upstream
	VirtualServers []VirtualServer
	// Tokens are the gateway's enrollment tokens (admins only).
	Tokens []EnrollmentToken
}

// EnrollmentToken is one issued enrollment token (never its secret).
type EnrollmentToken struct {
	ID               string
	Created, Expires time.Time
	Uses, MaxUses    int
	// State is "usable", "used up" or "expired".
	State string
}

// UpstreamEdit is the form that changes or deletes an upstream.
type UpstreamEdit struct {
	Page
	ID, Name, Gateway, GatewayID             string
	Run                                      UpstreamRun
	Labels                                   string
	DenySampling, DenyElicitation, DenyRoots bool
	// ServedBy names the virtual servers that serve it (it cannot be deleted then).
	ServedBy []string
}

// VirtualServerEdit is the form that changes or deletes a virtual server.
type VirtualServerEdit struct {
	Page
	ID, Name, Gateway, GatewayID string
	Upstreams, Renames           string
	Unprefixed                   bool
}

// Enrollment is the once-shown enrollment token.
type Enrollment struct {
	Token, ControlPlane string
	Expires             time.Time
	Uses                int // agents it may enroll
}

// Upstream is one row of the upstreams page.
type Upstream struct {
	ID, Gateway, GatewayID, Name, Transport, Target, Labels string
	Reachable                                               bool
	LastError                                               string
	// Denied lists what the upstream may not ask of clients ("sampling, roots"), or "".
	Denied string
	// TreeID is a package upstream's dependency tree item (its SBOM), TreeStatus whether it is approved.
	TreeID, TreeStatus string
}

// Upstreams is the upstreams page.
type Upstreams struct {
	Page
	Upstreams []Upstream
	Gateways  []Gateway
	// Catalog lists the approved catalog entries (NAME@VERSION) to add from.
	Catalog []string
}

// UpstreamRun is how an upstream runs, as its create and edit forms show it.
type UpstreamRun struct {
	// Transport is streamable_http, stdio, package or catalog.
	Transport, URL, Command, Credential string
	// Package is ECOSYSTEM:NAME@VERSION, with its integrity, executable and arguments.
	Package, Integrity, Bin, Args string
	// CatalogEntry is the entry it runs; Catalog the approved entries.
	CatalogEntry string
	Catalog      []string
	// Auth is whose credential requests for a client carry (static, none,
	// oauth_user or token_exchange), with the OAuth client's settings.
	Auth, ClientID, ClientSecretRef, Scopes, Issuer, Resource string
}

// VirtualServer is one row of the virtual servers page.
type VirtualServer struct {
	ID, Gateway, Name string
	Upstreams         []string
	// Naming is how tool names are exposed: "upstream__tool" or "unprefixed", with renames counted.
	Naming string
}

// VirtualServers is the virtual servers page.
type VirtualServers struct {
	Page
	VirtualServers []VirtualServer
	Gateways       []Gateway
}

// Tool is one row of the tools page.
type Tool struct {
	ID, Upstream, Name, Live, Pinned, Status string
	Kind                                     string
	Labels                                   []string
	LastSeen                                 time.Time
}

// Tools is the tools page.
type Tools struct {
	Page
	Tools []Tool
}

// APIKey is one row of the API keys page.
type APIKey struct {
	ID, Name, Role string
	Created        time.Time
	LastUsed       *time.Time
	Revoked        bool
}

// APIKeys is the API keys page.
type APIKeys struct {
	Page
	Keys   []APIKey
	Secret string // shown once after creation
	Roles  []string
}

// AuditRow is one audit event.
type AuditRow struct {
	Time                              time.Time
	Actor, Action, Target, TargetName string
	Before, After                     string
}

// Audit is the audit log page.
type Audit struct {
	Page
	Events        []AuditRow
	Action, Actor string // the filters
	// Older links the next page; Newest says this is not the first.
	Older  string
	Newest bool
}

// Error is an error page.
type Error struct {
	Page
	Status  int
	Message string
}

// ChangeRow is one change request in a list.
type ChangeRow struct {
	ID, Tool, Upstream, Gateway, Kind, Status, From, To, RequestedBy string
	ItemKind                                                         string // tool, prompt, resource, resource_template, package
	Created                                                          time.Time
	Approvals, Required, Findings                                    int
}

// ItemLabel names what the request is about for people.
func (c ChangeRow) ItemLabel() string { return ItemLabel(c.ItemKind) }

// ItemLabel names an item kind for people.
func ItemLabel(kind string) string {
	switch kind {
	case "", "tool":
		return "tool"
	case "resource_template":
		return "resource template"
	}
	return kind
}

// KindLabel names a change kind for people.
func (c ChangeRow) KindLabel() string {
	switch c.Kind {
	case "tool_added":
		return "new " + c.ItemLabel()
	case "tool_changed":
		return c.ItemLabel() + " definition changed"
	case "package_added":
		return "new package"
	case "package_changed":
		return "package changed" // its version or its dependencies
	case "package_removed":
		return "package removed"
	case "tool_removed":
		return c.ItemLabel() + " removed"
	}
	return c.Kind
}

// Changes is the change requests page.
type Changes struct {
	Page
	Status   string // filter; "" for all
	Statuses []string
	Rows     []ChangeRow
}

// FindingRow is one scanner finding.
type FindingRow struct{ Kind, Severity, Path, Excerpt string }

// DiffRow is one row of a side-by-side diff.
type DiffRow struct {
	Op, Left, Right string
	LeftNo, RightNo int
}

// DecisionRow is one approval or rejection.
type DecisionRow struct {
	Decision, Actor, Comment string
	At                       time.Time
}

// AgentAck tells whether an agent applied a change's policy version.
type AgentAck struct {
	Hostname  string
	Connected bool
	Applied   uint64
	AppliedAt *time.Time
}

// ChangeAgents is the polled partial showing each agent's ACK.
type ChangeAgents struct {
	ID            string
	PolicyVersion uint64
	Agents        []AgentAck
}

// AllApplied reports whether every agent runs the change's policy version.
func (c ChangeAgents) AllApplied() bool {
	for _, a := range c.Agents {
		if a.Applied < c.PolicyVersion {
			return false
		}
	}
	return c.PolicyVersion > 0
}

// ChangeDetail is one change request's review page.
type ChangeDetail struct {
	Page
	Row                    ChangeRow
	Comment                string
	DecidedBy              string
	DecidedAt              *time.Time
	FromDef, ToDef         string
	Diff                   []DiffRow
	Findings, FromFindings []FindingRow
	Decisions              []DecisionRow
	Progress               ChangeAgents
	// CanDecide is false for the requester, for someone who already decided, and for closed requests.
	CanDecide bool
	// HighFindings counts the new definition's high-severity findings.
	HighFindings int
	WhyNot       string
}

// Settings is the change-management settings page.
type Settings struct {
	Page
	ApprovalsRequired int
	ResultAction      string // annotate, redact or block
	// CatalogOnly: upstreams may only run approved catalog entries; owners (CanOwn) set it.
	CatalogOnly, CanOwn bool
}

// ToolVersion is one distinct definition of a tool.
type ToolVersion struct {
	Sha256              string
	FirstSeen, LastSeen time.Time
	Live, Pinned        bool
	Findings            []FindingRow
	Definition          string
}

// ToolDetail is a tool's page: its versions and change requests.
type ToolDetail struct {
	Page
	Tool      Tool
	AllLabels []string
	Versions  []ToolVersion
	Requests  []ChangeRow
}

// HasLabel reports whether t carries label l.
func (t Tool) HasLabel(l string) bool {
	for _, x := range t.Labels {
		if x == l {
			return true
		}
	}
	return false
}

// ClientKey is one row of the client keys table.
type ClientKey struct {
	ID, Name string
	Groups   []string
	Created  time.Time
	Revoked  bool
}

// AccessRule is one row of a gateway's rules.
type AccessRule struct {
	ID, Principal, VirtualServer, ToolPattern, Effect, Condition, Description string
	Position                                                                  int
}

// GatewayAccess is one gateway's authentication switch and rules.
type GatewayAccess struct {
	ID, Name                string
	AuthRequired            bool
	Rules                   []AccessRule
	RatePrincipal, RateTool int // calls per minute; 0 = unlimited
}

// Access is the access page: client keys and, per gateway, rules.
type Access struct {
	Page
	Issuer, GroupClaim string // the tenant's identity provider for MCP clients
	Keys               []ClientKey
	Secret             string // a new key's secret, shown once
	Gateways           []GatewayAccess
}

// Chart is a server-side SVG bar chart; the handler computes the geometry.
type Chart struct {
	Title, Unit string
	Width       int
	Height      int
	Max         string // label of the top of the scale
	Bars        []Bar
	Legend      []LegendItem
	Empty       bool
	// Ticks mark the time axis, evenly spaced from the oldest minute to the newest.
	Ticks []Tick
}

// Tick is one mark of a chart's time axis.
type Tick struct {
	X     int // centre of the minute's bar
	Label string
}

// Bar is one rectangle of a chart.
type Bar struct {
	X, Y, W, H int
	Class      string // css class: allow, deny, latency
	Title      string // tooltip
}

// LegendItem names a bar class.
type LegendItem struct{ Class, Label string }

// CallEvent is one row of the telemetry explorer.
type CallEvent struct {
	Time                                                    time.Time
	Principal, VirtualServer, Upstream, Tool, Method, Error string
	Decision, Reason, ReasonHref                            string
	LatencyMs                                               string
	// UpstreamIdentity is whom the upstream saw (per-person authorization).
	UpstreamIdentity string
}

// ToolTraffic is one row of the per-tool breakdown.
type ToolTraffic struct {
	Gateway, VirtualServer, Upstream, Tool string
	Href                                   string // the explorer filtered to this tool
	Calls, Denies, Errors                  int64
	P95Ms                                  string
}

// Telemetry is the explorer page.
type Telemetry struct {
	Page
	Decision, Tool, Principal, Upstream string
	Events                              []CallEvent
	// Older links the next page; Newest says this is not the first.
	Older   string
	Newest  bool
	Traffic Chart
	Top     []ToolTraffic
}

// Catalog is the tenant's catalog of approved servers.
type Catalog struct {
	Page
	Entries []CatalogRow
}

// CatalogRow is one entry of the catalog.
type CatalogRow struct {
	ID, Name, Version, Title, Description string
	// Runs is the package (with its arguments) or the URL; Needs the variables and headers it needs.
	Runs, Needs, Integrity string
	Status, RequestedBy    string
	Approvals, Required    int
	Decisions              []string
	Created                time.Time
}

// Connections is the connections page.
type Connections struct {
	Page
	Rows []ConnectionRow
	// Own is the signed-in person's principal at the gateways, if known:
	// they may revoke their own connections.
	Own string
}

// ConnectionRow is a person's authorization at an upstream.
type ConnectionRow struct {
	ID, Gateway, Upstream, Principal, Identity, State string
	Connected, Changed                                time.Time
}
