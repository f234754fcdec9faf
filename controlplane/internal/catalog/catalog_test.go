package catalog

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	apiv0 "github.com/modelcontextprotocol/registry/pkg/api/v0"

	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
)

const integrity = "sha512-5U3OZh8Xq0Li4nA26l6uNvV9/1suMDuWSn+NjLZIhzinhMY6N3A4DCrxVecBGPf2PsNFKTEv5krxGPRwzxc7jQ=="

func parse(t *testing.T, doc string) *apiv0.ServerJSON {
	t.Helper()
	var sj apiv0.ServerJSON
	if err := json.Unmarshal([]byte(doc), &sj); err != nil {
		t.Fatal(err)
	}
	return &sj
}

func TestFromServerJSONPackage(t *testing.T) {
	sj := parse(t, `{"name":"io.github.acme/weather","version":"1.0.0","title":"Weather","description":"Forecasts.",
		"packages":[
			{"registryType":"pypi","identifier":"weather","version":"1.0.0","transport":{"type":"stdio"}},
			{"registryType":"npm","identifier":"@acme/weather","version":"1.0.0","transport":{"type":"stdio"},"runtimeHint":"npx",
			 "runtimeArguments":[{"type":"named","name":"-y"}],
			 "packageArguments":[{"type":"positional","value":"stdio"},{"type":"named","name":"--port","default":"8080"},{"type":"positional","valueHint":"config"}],
			 "environmentVariables":[{"name":"WEATHER_KEY","description":"API key","isSecret":true,"isRequired":true}]}],
		"remotes":[{"type":"streamable-http","url":"https://{host}/mcp","variables":{"host":{"default":"weather.acme.test"}},
			"headers":[{"name":"Authorization","isSecret":true,"isRequired":true}]}]}`)
	d, err := FromServerJSON(sj, ImportOptions{Integrity: integrity})
	if err != nil {
		t.Fatal(err)
	}
	if d.Transport != catalogentry.TransportPackage || d.Package.Name != "@acme/weather" || d.Package.Version != "1.0.0" || d.Package.Integrity != integrity {
		t.Fatalf("package: %+v", d)
	}
	if want := []string{"stdio", "--port", "8080"}; !slices.Equal(d.Args, want) {
		t.Errorf("args %q, want %q (runtime arguments are npx's; an optional argument without a value is left out)", d.Args, want)
	}
	if want := []schematype.CatalogCredential{{Kind: "env", Name: "WEATHER_KEY", Description: "API key", Secret: true, Required: true}}; !slices.Equal(d.Credentials, want) {
		t.Errorf("credentials %+v", d.Credentials)
	}

	// The remote, when asked for: variables filled from their defaults, headers needed.
	r, err := FromServerJSON(sj, ImportOptions{Remote: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Transport != catalogentry.TransportStreamableHTTP || r.URL != "https://weather.acme.test/mcp" || len(r.Credentials) != 1 || r.Credentials[0].Kind != "header" {
		t.Fatalf("remote: %+v", r)
	}
}

func TestFromServerJSONRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		opt  ImportOptions
		want string
	}{
		"no integrity": {`{"name":"io.x/y","version":"1","packages":[{"registryType":"npm","identifier":"y","version":"1.0.0","transport":{"type":"stdio"}}]}`,
			ImportOptions{}, "npm view y@1.0.0 dist.integrity"},
		"a range": {`{"name":"io.x/y","version":"1","packages":[{"registryType":"npm","identifier":"y","version":"^1.0.0","transport":{"type":"stdio"}}]}`,
			ImportOptions{Integrity: integrity}, "exact version"},
		"only pypi and oci": {`{"name":"io.x/y","version":"1","packages":[{"registryType":"pypi","identifier":"y","version":"1.0.0","transport":{"type":"stdio"}},{"registryType":"oci","identifier":"ghcr.io/x/y:1","transport":{"type":"stdio"}}]}`,
			ImportOptions{}, "offers pypi package (stdio), oci package (stdio)"},
		"a required argument without a value": {`{"name":"io.x/y","version":"1","packages":[{"registryType":"npm","identifier":"y","version":"1.0.0","transport":{"type":"stdio"},"packageArguments":[{"type":"positional","valueHint":"dir","isRequired":true}]}]}`,
			ImportOptions{Integrity: integrity}, `argument "dir" needs a value`},
		"a variable in an argument": {`{"name":"io.x/y","version":"1","packages":[{"registryType":"npm","identifier":"y","version":"1.0.0","transport":{"type":"stdio"},"packageArguments":[{"type":"named","name":"--dir","value":"{dir}"}]}]}`,
			ImportOptions{Integrity: integrity}, "fixed arguments"},
		"a URL variable without a default": {`{"name":"io.x/y","version":"1","remotes":[{"type":"streamable-http","url":"https://{tenant}.x.test/mcp"}]}`,
			ImportOptions{}, "{tenant}"},
		"a plain http URL is fine but not a file one": {`{"name":"io.x/y","version":"1","remotes":[{"type":"streamable-http","url":"file:///etc/passwd"}]}`,
			ImportOptions{}, "absolute http(s) URL"},
		"a bad name": {`{"name":"../../etc","version":"1","remotes":[{"type":"streamable-http","url":"https://x.test/mcp"}]}`,
			ImportOptions{}, "not a server name"},
		"no version": {`{"name":"io.x/y","remotes":[{"type":"streamable-http","url":"https://x.test/mcp"}]}`,
			ImportOptions{}, "version"},
		"remote asked, none offered": {`{"name":"io.x/y","version":"1","packages":[{"registryType":"npm","identifier":"y","version":"1.0.0","transport":{"type":"stdio"}}]}`,
			ImportOptions{Remote: true}, "no streamable-http remote"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromServerJSON(parse(t, tc.doc), tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
