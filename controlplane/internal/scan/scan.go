// Package scan looks for what a hostile MCP server hides in a tool
// definition: invisible or direction-changing characters, terminal escapes,
// instructions aimed at the model, references to other tools or to secrets,
// links and encoded blobs. It reports findings for a person to weigh; it
// blocks nothing by itself.
package scan

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Severity ranks a finding.
type Severity string

// Severities.
const (
	High   Severity = "high"
	Medium Severity = "medium"
	Low    Severity = "low"
)

// Finding is one suspicious thing at one place in a definition.
type Finding struct {
	Kind     string   `json:"kind"`
	Severity Severity `json:"severity"`
	// Path locates the string in the definition, e.g. "inputSchema.properties.city.description".
	Path string `json:"path"`
	// Excerpt shows the match with invisible characters made visible.
	Excerpt string `json:"excerpt"`
}

// Limits keep scanning bounded whatever the input.
const (
	maxFindings = 200
	maxStrings  = 10000
	excerptLen  = 120
)

var (
	ansiRE         = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])`)
	urlRE          = regexp.MustCompile(`(?i)\b(?:https?|ftp|file|data|javascript)://[^\s"'<>)\]]+|\bdata:[a-z]+/[a-z0-9.+-]+;base64,`)
	base64RE       = regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}|[A-Za-z0-9_-]{60,}`)
	secretPathRE   = regexp.MustCompile(`(?i)(~|\$HOME|/home/[^/\s]+|/root)?/?\.ssh(/[\w.-]*)?|\bid_(rsa|dsa|ecdsa|ed25519)\b|\.aws/credentials|\.env\b|/etc/(passwd|shadow)|\.kube/config|\.netrc|\.npmrc|\.pypirc|\.docker/config\.json|\.git-credentials|\bkeychain\b|\bwallet\.dat\b|\bprivate[_ ]key\b|\bapi[_ -]?keys?\b|\bsecrets?\b|\bpasswords?\b|\bcredentials?\b`)
	instructionREs = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|other|system)\b.{0,40}\b(instructions?|prompts?|rules|messages?|guidelines)\b`),
		regexp.MustCompile(`(?i)\b(do not|don't|never)\b.{0,30}\b(tell|inform|mention|reveal|show|alert|notify)\b.{0,30}\b(the )?(user|human)\b`),
		regexp.MustCompile(`(?i)<\s*/?\s*(important|system|instructions?|secret|admin|hidden)\s*>`),
		regexp.MustCompile(`(?i)\b(system prompt|you are now|new instructions|act as|jailbreak|developer mode)\b`),
		regexp.MustCompile(`(?i)\b(before|after|instead of)\b.{0,40}\b(using|calling|invoking|running)\b.{0,40}\b(this|any|the|another|other)\b.{0,20}\btools?\b`),
		regexp.MustCompile(`(?i)\b(always|must|immediately)\b.{0,40}\b(send|upload|post|forward|exfiltrate|email|copy)\b`),
		regexp.MustCompile(`(?i)\b(read|cat|open|include|attach)\b.{0,30}\b(file|contents?)\b.{0,40}\b(and|then)\b.{0,30}\b(pass|send|include|put)\b`),
	}
)

// Definition scans every string of a canonical tool definition. otherTools
// are names of the tenant's other tools: a description that mentions one is
// a sign of cross-tool steering ("shadowing").
func Definition(def []byte, otherTools []string) ([]Finding, error) {
	var v any
	if err := json.Unmarshal(def, &v); err != nil {
		return nil, fmt.Errorf("scan: definition is not JSON: %w", err)
	}
	s := &scanner{others: otherTools}
	s.walk("", v, 0)
	sort.SliceStable(s.out, func(i, j int) bool { return rank(s.out[i].Severity) < rank(s.out[j].Severity) })
	return s.out, nil
}

// Text scans one string, as found at path.
func Text(path, text string, otherTools []string) []Finding {
	s := &scanner{others: otherTools}
	s.text(path, text)
	return s.out
}

func rank(s Severity) int {
	switch s {
	case High:
		return 0
	case Medium:
		return 1
	}
	return 2
}

type scanner struct {
	others  []string
	out     []Finding
	strings int
}

func (s *scanner) add(kind string, sev Severity, path, excerpt string) {
	if len(s.out) >= maxFindings {
		return
	}
	s.out = append(s.out, Finding{Kind: kind, Severity: sev, Path: path, Excerpt: excerpt})
}

func (s *scanner) walk(path string, v any, depth int) {
	if depth > 64 {
		return
	}
	switch x := v.(type) {
	case string:
		s.text(path, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s.text(join(path, k)+" (key)", k) // keys can hide text too
			s.walk(join(path, k), x[k], depth+1)
		}
	case []any:
		for i, e := range x {
			s.walk(fmt.Sprintf("%s[%d]", path, i), e, depth+1)
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func (s *scanner) text(path, t string) {
	if s.strings++; s.strings > maxStrings || t == "" {
		return
	}
	if !utf8.ValidString(t) {
		s.add("invalid_utf8", High, path, Visible(t))
	}
	var tags []rune
	for i, r := range t {
		switch {
		case r >= 0xE0000 && r <= 0xE007F:
			tags = append(tags, r)
		case isBidi(r):
			s.add("bidi_control", High, path, around(t, i))
		case isZeroWidth(r):
			s.add("zero_width", Medium, path, around(t, i))
		case r < 0x20 && r != '\n' && r != '\r' && r != '\t' && r != 0x1b:
			s.add("control_character", Medium, path, around(t, i))
		}
	}
	if len(tags) > 0 {
		// Tag characters spell ASCII invisibly: show what they say.
		var hidden strings.Builder
		for _, r := range tags {
			if r >= 0xE0020 && r <= 0xE007E {
				hidden.WriteRune(r - 0xE0000)
			}
		}
		s.add("unicode_tags", High, path, "hidden text: "+clip(hidden.String()))
	}
	if loc := ansiRE.FindStringIndex(t); loc != nil {
		s.add("ansi_escape", High, path, around(t, loc[0]))
	}
	plain := stripInvisible(t)
	for _, re := range instructionREs {
		if loc := re.FindStringIndex(plain); loc != nil {
			s.add("instruction", High, path, clip(plain[loc[0]:loc[1]]))
		}
	}
	if loc := secretPathRE.FindStringIndex(plain); loc != nil {
		s.add("secret_reference", Medium, path, around(plain, loc[0]))
	}
	for _, m := range urlRE.FindAllString(plain, 5) {
		s.add("url", Low, path, clip(m))
	}
	for _, m := range base64RE.FindAllString(plain, 3) {
		if !strings.ContainsAny(m, "0123456789") && !strings.ContainsAny(m, "+/") {
			continue // a long identifier, not an encoding
		}
		s.add("encoded_blob", Medium, path, clip(m))
	}
	lower := strings.ToLower(plain)
	for _, o := range s.others {
		if len(o) < 4 {
			continue
		}
		if i := strings.Index(lower, strings.ToLower(o)); i >= 0 && wordAt(lower, i, len(o)) {
			s.add("mentions_other_tool", Medium, path, around(plain, i))
		}
	}
}

func wordAt(s string, i, n int) bool {
	isWord := func(b byte) bool { return b == '_' || b == '-' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	return (i == 0 || !isWord(s[i-1])) && (i+n >= len(s) || !isWord(s[i+n]))
}

func isBidi(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}

func isZeroWidth(r rune) bool {
	return r == 0x200B || r == 0x200C || r == 0x200D || r == 0x2060 || r == 0xFEFF || r == 0x180E || r == 0x00AD || (r >= 0xFE00 && r <= 0xFE0F)
}

func stripInvisible(t string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 0xE0000 && r <= 0xE007F) || isBidi(r) || isZeroWidth(r) {
			return -1
		}
		return r
	}, t)
}

// Visible renders invisible and control characters as <U+XXXX>.
func Visible(t string) string {
	var b strings.Builder
	for _, r := range t {
		switch {
		case r == utf8.RuneError, r < 0x20 && r != '\n' && r != '\t', r == 0x7f, (r >= 0xE0000 && r <= 0xE007F), isBidi(r), isZeroWidth(r):
			fmt.Fprintf(&b, "<U+%04X>", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func around(t string, i int) string {
	start := max(0, i-40)
	for start > 0 && !utf8.RuneStart(t[start]) {
		start--
	}
	end := min(len(t), i+80)
	for end < len(t) && !utf8.RuneStart(t[end]) {
		end++
	}
	return clip(Visible(t[start:end]))
}

func clip(s string) string {
	if utf8.RuneCountInString(s) <= excerptLen {
		return s
	}
	r := []rune(s)
	return string(r[:excerptLen]) + "…"
}
