// Package scan looks for what a hostile MCP server hides in a tool
// definition: invisible or direction-changing characters, terminal escapes,
// instructions aimed at the model, references to other tools or to secrets,
// links and encoded blobs. It reports findings for a person to weigh; it
// blocks nothing by itself.
package scan

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"
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
		// The same in other languages: "ignore the previous instructions",
		// "do not tell the user".
		regexp.MustCompile(`(?i)\bignor(a|e|ez|er|iere|ieren|ate)\b.{0,30}\b(instrucciones|instructions|instruções|instrucoes|istruzioni|anweisungen|befehle|regeln|consignes)\b`),
		regexp.MustCompile(`(?i)\b(no|não|nao|non|ne|nicht)\b.{0,20}\b(digas|informes|menciones|cuentes|dis|dites|informez|diga|conte|informe|dire|dica|sag|sage|sagen|erwähne|erwähnen)\b.{0,30}\b(usuario|usuário|utilisateur|utente|benutzer|nutzer|anwender)`),
		regexp.MustCompile(`(?i)(игнорир|проигнорир|забудь|забудьте).{0,30}(инструкц|указани|правил)`),
		regexp.MustCompile(`(?i)не\s+(говори|сообщай|рассказывай|говорите|сообщайте).{0,20}пользовател`),
		regexp.MustCompile(`(忽略|无视|無視|忘记|忘記).{0,12}(指令|指示|说明|說明|命令|提示)`),
		regexp.MustCompile(`(不要|别|請勿|请勿|不得).{0,6}(告诉|告訴|通知|提醒).{0,4}(用户|用戶|使用者)`),
		regexp.MustCompile(`(指示|命令|プロンプト).{0,12}(無視|忘れ)`),
		regexp.MustCompile(`ユーザー(に|へ).{0,12}(言わ|伝え|知らせ|教え)(ないで|るな)`),
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
	if m, ok := v.(map[string]any); ok {
		if name, ok := m["name"].(string); ok {
			s.lookalikeName(name)
		}
	}
	s.limits()
	sort.SliceStable(s.out, func(i, j int) bool { return rank(s.out[i].Severity) < rank(s.out[j].Severity) })
	return s.out, nil
}

// lookalikeName flags a name that reads as another tool's: the same TR39
// skeleton ("send_emaіl" with a Cyrillic і for "send_email").
func (s *scanner) lookalikeName(name string) {
	sk := skeleton(name)
	for _, o := range s.others {
		if o != name && skeleton(o) == sk {
			s.add("lookalike_name", High, "name", fmt.Sprintf("%s reads as the tool %s", Visible(name), Visible(o)))
			return
		}
	}
}

// skeleton is what a name looks like: NFKC (fullwidth and mathematical
// letters), then the Unicode confusables skeleton (UTS #39), case-folded.
func skeleton(t string) string {
	return strings.ToLower(confusables.Skeleton(norm.NFKC.String(t)))
}

// limits adds a finding when the scan stopped at a limit: what it did not
// look at must be weighed too (fail closed), never passed silently.
func (s *scanner) limits() {
	var hit []string
	if s.deep {
		hit = append(hit, fmt.Sprintf("values nested deeper than %d levels", maxDepth))
	}
	if s.strings > maxStrings {
		hit = append(hit, fmt.Sprintf("more than %d strings", maxStrings))
	}
	if s.full {
		hit = append(hit, fmt.Sprintf("more than %d findings", maxFindings))
	}
	if len(hit) > 0 {
		s.out = append(s.out, Finding{Kind: "scan_limit", Severity: High, Path: "", Excerpt: "not scanned past the limits: " + strings.Join(hit, ", ")})
	}
}

// Text scans one string, as found at path.
func Text(path, text string, otherTools []string) []Finding {
	s := &scanner{others: otherTools}
	s.text(path, text)
	s.limits()
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
	deep    bool // a value past maxDepth was not scanned
	full    bool // findings past maxFindings were dropped
	decoded int  // depth of base64 decoding under way
}

const maxDepth = 64

func (s *scanner) add(kind string, sev Severity, path, excerpt string) {
	if len(s.out) >= maxFindings-1 { // the last place is for scan_limit
		s.full = true
		return
	}
	s.out = append(s.out, Finding{Kind: kind, Severity: sev, Path: path, Excerpt: excerpt})
}

func (s *scanner) walk(path string, v any, depth int) {
	if depth > maxDepth {
		s.deep = true
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
	prev := rune(-1)
	for i, r := range t {
		switch {
		case r >= 0xE0000 && r <= 0xE007F:
			tags = append(tags, r)
		case isBidi(r):
			s.add("bidi_control", High, path, around(t, i))
		case (r == 0xFE0E || r == 0xFE0F) && prev >= 0x20 && !isZeroWidth(prev):
			// one text or emoji presentation selector after a visible
			// character, as in "☀️": how text uses it, nothing hidden
		case isZeroWidth(r):
			s.add("zero_width", Medium, path, around(t, i))
		case r < 0x20 && r != '\n' && r != '\r' && r != '\t' && r != 0x1b:
			s.add("control_character", Medium, path, around(t, i))
		}
		prev = r
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
	// The patterns read the text as written (NFKC) and as it looks (look-
	// alikes mapped to the ASCII they imitate).
	plain, lookalike := deconfuse(stripInvisible(t))
	if lookalike != "" {
		s.add("lookalike_characters", Medium, path, "look-alike characters in "+clip(Visible(lookalike)))
	}
	readings := []string{plain}
	if written := norm.NFKC.String(stripInvisible(t)); written != plain {
		readings = append(readings, written)
	}
	for _, re := range instructionREs {
		for _, text := range readings {
			if loc := re.FindStringIndex(text); loc != nil {
				s.add("instruction", High, path, clip(text[loc[0]:loc[1]]))
				break
			}
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
		s.decodedText(path, m)
	}
	// Base64 cut into chunks ("aWdub3Jl" + "IHByZXZp…"): joined, it must
	// decode to text to count, which long words and identifiers do not.
	for _, m := range chunksRE.FindAllString(plain, 3) {
		joined := chunkSepRE.ReplaceAllString(m, "")
		if len(joined) >= 40 && !base64RE.MatchString(m) && s.decodedText(path, joined) {
			s.add("encoded_blob", Medium, path, clip(m))
		}
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

var (
	chunksRE   = regexp.MustCompile(`(?:[A-Za-z0-9+/_-]{4,}={0,2}["'\s+,.|]{1,8}){2,}[A-Za-z0-9+/_-]{2,}={0,2}`)
	chunkSepRE = regexp.MustCompile(`["'\s+,.|]`)
)

// decodedText decodes base64 that hides text and scans that text too (one
// level deep); it reports whether b decoded to text.
func (s *scanner) decodedText(path, b string) bool {
	if s.decoded > 0 {
		return false
	}
	b = strings.TrimRight(b, "=")
	var out []byte
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(b); err == nil {
			out = d
			break
		}
	}
	if len(out) < 16 || !utf8.Valid(out) || strings.ContainsFunc(string(out), func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' && r != '\r' }) {
		return false
	}
	s.decoded++
	s.text(path+" (base64)", string(out))
	s.decoded--
	return true
}

// deconfuse maps look-alike characters to the ASCII they imitate, so that
// the patterns read what a person reads: NFKC folds fullwidth and
// mathematical letters, the Unicode confusables (UTS #39) Cyrillic і, о, е
// and the like; ASCII stays as it is. It returns a word in which look-alikes
// sat among ASCII letters (a disguise, not another script), or "".
func deconfuse(t string) (string, string) {
	folded := norm.NFKC.String(t)
	if isASCII(folded) {
		return folded, ""
	}
	var b strings.Builder
	var word []rune
	mixed, ascii, faked := "", false, false
	flush := func() {
		if ascii && faked && mixed == "" {
			mixed = string(word)
		}
		word, ascii, faked = word[:0], false, false
	}
	for _, r := range folded {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush()
			b.WriteRune(r)
			continue
		}
		word = append(word, r)
		if r < 0x80 {
			ascii = true
			b.WriteRune(r)
			continue
		}
		if sk := confusables.Skeleton(string(r)); sk != "" && isASCII(sk) {
			faked = true
			b.WriteString(sk)
			continue
		}
		b.WriteRune(r)
	}
	flush()
	return b.String(), mixed
}

func isASCII(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] >= 0x80 {
			return false
		}
	}
	return true
}

func wordAt(s string, i, n int) bool {
	isWord := func(b byte) bool { return b == '_' || b == '-' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	return (i == 0 || !isWord(s[i-1])) && (i+n >= len(s) || !isWord(s[i+n]))
}

func isBidi(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}

func isZeroWidth(r rune) bool {
	return r == 0x200B || r == 0x200C || r == 0x200D || r == 0x2060 || r == 0xFEFF || r == 0x180E || r == 0x00AD ||
		(r >= 0x2061 && r <= 0x2064) || // invisible math operators
		(r >= 0xFE00 && r <= 0xFE0F) || (r >= 0xE0100 && r <= 0xE01EF) // variation selectors
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
