// Package thirdparty holds patched copies of dependencies; its test keeps
// each copy honest: upstream's files, byte for byte, except the patch
// documented next to it.
package thirdparty

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// upstreamDir downloads module@version into the module cache and returns its directory.
func upstreamDir(t *testing.T, module string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = t.TempDir() // outside this module: go.sum is left alone
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", module, err, out)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", module, info.Error, err)
	}
	return info.Dir
}

// withoutFunc drops a top-level function and the comment above it.
func withoutFunc(t *testing.T, src, name string) string {
	t.Helper()
	start := strings.Index(src, "\nfunc "+name+"(")
	if start < 0 {
		t.Fatalf("no func %s", name)
	}
	end := strings.Index(src[start:], "\n}\n")
	if end < 0 {
		t.Fatalf("func %s does not end", name)
	}
	head := src[:start]
	for { // the doc comment
		i := strings.LastIndex(head, "\n")
		if i < 0 || !strings.HasPrefix(head[i+1:], "//") {
			break
		}
		head = head[:i]
	}
	return head + src[start+end+2:]
}

func TestGoSDKIsUpstreamPlusPatch(t *testing.T) {
	upstream := upstreamDir(t, "github.com/modelcontextprotocol/go-sdk@v1.8.0")
	// The patched files, and the functions the patches change (PORTCULLIS.md).
	patched := map[string][]string{
		"internal/json/json.go": {"Unmarshal"},
		"mcp/client.go": {"NewClient", "(cs *ClientSession) sendingMethodInfos",
			"AddSendingCustomMethod[P paramsPtr[PT], R Result, PT any]", "(c *Client) disconnect"},
		"mcp/server.go":             {"(s *Server) disconnect"},
		"internal/jsonrpc2/conn.go": {"(c *Connection) handleAsync"},
	}
	// Fields the patches add to option structs, with their comments.
	closedHandler := func(session string) string {
		return "\t// If non-nil, called once a session has ended (closed by either side, or\n" +
			"\t// its connection lost), just before [" + session + ".Wait] returns. It is called\n" +
			"\t// as the session's connection finishes: it must not block or call the\n" +
			"\t// session's methods.\n" +
			"\tSessionClosedHandler func(*" + session + ")\n"
	}
	added := map[string]string{"mcp/client.go": closedHandler("ClientSession"), "mcp/server.go": closedHandler("ServerSession")}
	n := 0
	err := filepath.WalkDir("go-sdk", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("go-sdk", path)
		if rel == "PORTCULLIS.md" {
			return nil
		}
		ours, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		theirs, err := os.ReadFile(filepath.Join(upstream, rel))
		if err != nil {
			t.Errorf("%s is not in upstream v1.8.0", rel)
			return nil
		}
		n++
		if funcs, ok := patched[rel]; ok {
			if string(ours) == string(theirs) {
				t.Errorf("%s: the patch is missing", rel)
			}
			o, u := string(ours), string(theirs)
			if a := added[rel]; a != "" {
				if strings.Count(o, a) != 1 {
					t.Errorf("%s: the added field is missing", rel)
				}
				o = strings.Replace(o, a, "", 1)
			}
			for _, f := range funcs {
				o, u = withoutFunc(t, o, f), withoutFunc(t, u, f)
			}
			if o != u {
				t.Errorf("%s differs from upstream outside funcs %v", rel, funcs)
			}
			return nil
		}
		if string(ours) != string(theirs) {
			t.Errorf("%s differs from upstream v1.8.0; it is not one of the patched files", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 40 {
		t.Fatalf("only %d files compared", n)
	}
}
