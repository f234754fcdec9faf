package proxy

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/segmentio/encoding/json"
)

// maxArgsDepth bounds the nesting of a tool call's arguments.
const maxArgsDepth = 64

// ambiguousArgs returns why a tool call's arguments could be read two ways,
// or "": a name repeated in one object, or two names equal but for case.
// Access-rule conditions see one reading; an upstream may take another (Go's
// encoding/json keeps the last duplicate and matches names regardless of
// case, as bytes.EqualFold does), so such arguments are refused before any
// rule runs.
func ambiguousArgs(args []byte) string {
	if bytes.Count(args, []byte(":")) < 2 {
		return "" // two names need two colons
	}
	var backing [8]argsObject
	stack := backing[:0]
	t := json.NewTokenizer(args)
	for t.Next() {
		switch t.Delim {
		case '{', '[':
			if len(stack) >= maxArgsDepth {
				return fmt.Sprintf("the arguments are nested deeper than %d levels", maxArgsDepth)
			}
			stack = append(stack, argsObject{array: t.Delim == '['})
			continue
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if !t.IsKey || len(stack) == 0 {
			continue
		}
		if prev, ok := stack[len(stack)-1].add(t.String()); ok {
			if string(prev) == string(t.String()) {
				return fmt.Sprintf("the arguments repeat the name %q in one object", truncate(string(prev), 64))
			}
			return fmt.Sprintf("the arguments hold both %q and %q, names an upstream may read as one", truncate(string(prev), 64), truncate(string(t.String()), 64))
		}
	}
	if t.Err != nil || len(stack) > 0 {
		return "the arguments are not valid JSON"
	}
	return ""
}

// argsObject holds the names seen in one object of the arguments.
type argsObject struct {
	array bool
	names [][]byte          // while few: compared with bytes.EqualFold
	many  map[string][]byte // case-folded → as sent, beyond maxLinearNames
}

const maxLinearNames = 32

// add records a name and returns an earlier one equal to it but for case.
func (o *argsObject) add(name []byte) ([]byte, bool) {
	if o.many == nil {
		for _, n := range o.names {
			if bytes.EqualFold(n, name) {
				return n, true
			}
		}
		if len(o.names) < maxLinearNames {
			o.names = append(o.names, name)
			return nil, false
		}
		o.many = make(map[string][]byte, 2*maxLinearNames)
		for _, n := range o.names {
			o.many[fold(n)] = n
		}
	}
	k := fold(name)
	if prev, ok := o.many[k]; ok {
		return prev, true
	}
	o.many[k] = name
	return nil, false
}

// fold maps each rune to the least of its simple case-folding orbit, so that
// two names fold alike exactly when bytes.EqualFold holds.
func fold(b []byte) string {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		out = utf8.AppendRune(out, least)
	}
	return string(out)
}
