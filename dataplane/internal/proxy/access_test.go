package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

func rulesOf(t testing.TB, keys []*agentv1.ClientKey, rs ...*agentv1.AccessRule) *accessIndex {
	t.Helper()
	k, rules, err := compileAccess(&agentv1.PolicyBundle{AccessRules: rs, ClientAuth: &agentv1.ClientAuth{Keys: keys}})
	if err != nil {
		t.Fatal(err)
	}
	return indexRules(rules, k)
}

func key(principal string, groups ...string) *agentv1.ClientKey {
	sum := sha256.Sum256([]byte(principal))
	return &agentv1.ClientKey{Sha256: hex.EncodeToString(sum[:]), Principal: principal, Groups: groups}
}

func rule(id, principal, vs, pattern string, allow bool, cond string) *agentv1.AccessRule {
	e := agentv1.Effect_EFFECT_DENY
	if allow {
		e = agentv1.Effect_EFFECT_ALLOW
	}
	return &agentv1.AccessRule{Id: id, Principal: principal, VirtualServer: vs, ToolPattern: pattern, Effect: e, Condition: cond}
}

func TestDecide(t *testing.T) {
	// ci is a known key (indexed); ann is not (a full scan): both must decide alike.
	rules := rulesOf(t, []*agentv1.ClientKey{key("apikey:ci")},
		rule("no-prod-writes", "*", "*", "db__write*", false, `has(args.env) && args.env == "prod"`),
		rule("ci-db", "apikey:ci", "main", "db__*", true, ""),
		rule("analysts", "group:analysts", "*", "db__read*", true, ""),
		rule("no-shell", "*", "*", "shell__*", false, ""),
		rule("small-queries", "group:analysts", "*", "db__query", true, `int(args.limit) <= 100`),
		rule("people-read-notes", "*", "*", "notes__*", true, `tool == "notes__read" && principal.startsWith("user:")`),
	)
	ci := identity{principal: "apikey:ci"}
	ann := identity{principal: "user:ann", groups: []string{"analysts"}}
	anon := identity{}
	for _, tc := range []struct {
		id         identity
		vs, tool   string
		args       string
		allowed    bool
		rule       string
		listedToo  bool
		listedWant bool
	}{
		{ci, "main", "db__write_row", `{"env":"dev"}`, true, "ci-db", true, true},
		{ci, "main", "db__write_row", `{"env":"prod"}`, false, "no-prod-writes", false, false},
		{ci, "other", "db__read_row", `{}`, false, "", true, false},
		{ann, "other", "db__read_row", `{}`, true, "analysts", true, true},
		{ann, "main", "shell__exec", `{}`, false, "no-shell", true, false},
		{ann, "main", "db__query", `{"limit":50}`, true, "small-queries", true, true},
		{ann, "main", "db__query", `{"limit":5000}`, false, "", false, false},
		{ann, "main", "db__query", `{}`, false, "", false, false}, // condition errors: not allowed
		{anon, "main", "db__read_row", `{}`, false, "", true, false},
		{ann, "main", "notes__read", `{}`, true, "people-read-notes", true, true},
		{ann, "main", "notes__write", `{}`, false, "", false, false},
		{ci, "main", "notes__read", `{}`, false, "", false, false},
	} {
		name := fmt.Sprintf("%s %s %s %s", tc.id.principal, tc.vs, tc.tool, tc.args)
		ok, r := decide(rules, tc.id, tc.vs, tc.tool, []byte(tc.args))
		if ok != tc.allowed || r != tc.rule {
			t.Errorf("%s: decide = %v by %q, want %v by %q", name, ok, r, tc.allowed, tc.rule)
		}
		if tc.listedToo {
			if got := visible(rules, tc.id, tc.vs, tc.tool); got != tc.listedWant {
				t.Errorf("%s: visible = %v, want %v", name, got, tc.listedWant)
			}
		}
	}
	if ok, _ := decide(nil, anon, "main", "anything", nil); !ok {
		t.Error("without rules every approved tool may be called")
	}
	if _, _, err := compileAccess(&agentv1.PolicyBundle{AccessRules: []*agentv1.AccessRule{rule("bad", "*", "*", "*", true, "args.x +")}}); err == nil {
		t.Error("a condition that does not compile must refuse the bundle")
	}
	if _, _, err := compileAccess(&agentv1.PolicyBundle{AccessRules: []*agentv1.AccessRule{rule("bad", "*", "*", "[", true, "")}}); err == nil {
		t.Error("a bad glob must refuse the bundle")
	}
}

// BenchmarkDecide measures the access decision for a call without a CEL
// condition, with 100 rules in front of the matching one and 10,000 tools.
func BenchmarkDecide(b *testing.B) {
	var rs []*agentv1.AccessRule
	for i := range 100 {
		rs = append(rs, rule(fmt.Sprintf("r%d", i), fmt.Sprintf("apikey:team-%d", i), "*", fmt.Sprintf("up%d__*", i), true, ""))
	}
	rs = append(rs, rule("everyone-reads", "*", "main", "*__read_*", true, ""))
	rules := rulesOf(b, []*agentv1.ClientKey{key("apikey:someone", "a", "b")}, rs...)
	tools := make([]string, 10000)
	for i := range tools {
		tools[i] = fmt.Sprintf("up%d__read_%d", 1000+i%50, i)
	}
	id := identity{principal: "apikey:someone", groups: []string{"a", "b"}}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if ok, _ := decide(rules, id, "main", tools[i%len(tools)], nil); !ok {
			b.Fatal("denied")
		}
		i++
	}
}

// BenchmarkDecideCondition is one allow rule with a CEL condition on the
// arguments, as the relay bench's "every check" path has.
func BenchmarkDecideCondition(b *testing.B) {
	rules := rulesOf(b, []*agentv1.ClientKey{key("apikey:someone", "builders")},
		rule("deny-shell", "*", "*", "*__shell*", false, ""),
		rule("builders", "group:builders", "main", "demo__*", true, "size(string(args.message)) < 1000"))
	id := identity{principal: "apikey:someone", groups: []string{"builders"}}
	args := json.RawMessage(`{"message":"benchmark payload"}`)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := decide(rules, id, "main", "demo__echo", args); !ok {
			b.Fatal("denied")
		}
	}
}

// TestDecodeArgs: conditions see the arguments' object, and nothing of
// arguments that are not one (not a half-decoded object).
func TestDecodeArgs(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"x","b":[1,{"c":null}]}`: `{"a":"x","b":[1,{"c":null}]}`,
		"{\"a\":\"\xff\"}":             "{\"a\":\"\ufffd\"}", // invalid UTF-8, replaced as encoding/json does
		``:                             `{}`,
		`[1]`:                          `{}`,
		`{"a":1,"b":01}`:               `{}`,
		`{"a":1} {"b":2}`:              `{}`,
	} {
		got, err := json.Marshal(decodeArgs([]byte(in)))
		if err != nil || string(got) != want {
			t.Errorf("decodeArgs(%q) = %s (%v), want %s", in, got, err, want)
		}
	}
}
