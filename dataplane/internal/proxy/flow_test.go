package proxy

import "testing"

func TestFlowCheck(t *testing.T) {
	sink := parseLabels([]string{"external_sink"})
	for _, tc := range []struct {
		name    string
		touched flowLabel
		labels  flowLabel
		refused bool
	}{
		{"fresh session may send", 0, sink, false},
		{"private data alone may be sent", privateData, sink, false},
		{"untrusted content alone may be sent", untrustedContent, sink, false},
		{"both: the sink is refused", privateData | untrustedContent, sink, true},
		{"both: a non-sink is fine", privateData | untrustedContent, privateData, false},
		{"a tool that reads and sends is refused after both", exfiltration, parseLabels([]string{"private_data", "external_sink"}), true},
	} {
		if got := exfiltrates(tc.touched, tc.labels); got != tc.refused {
			t.Errorf("%s: refused = %v, want %v", tc.name, got, tc.refused)
		}
	}
	if parseLabels([]string{"bogus", "private_data"}) != privateData {
		t.Error("unknown labels must be ignored")
	}
}
