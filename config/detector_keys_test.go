package config

import (
	"strings"
	"testing"
	"time"
)

func TestDetectorKeys(t *testing.T) {
	c, err := Parse([]byte("detector:\n  dormant: 240h\n  learn: 0s\n  fold_local_part: false\n  subaddress_separators: \"+-\"\n  flush_interval: 250ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Detector
	if d.Dormant.D() != 240*time.Hour || d.Learn != 0 || d.FoldLocalPart || d.SubaddressSeparators != "+-" || d.FlushInterval.D() != 250*time.Millisecond {
		t.Fatalf("decoded %+v", d)
	}
	def := Default().Detector
	if def.Dormant.D() != 720*time.Hour || def.Learn.D() != 72*time.Hour || !def.FoldLocalPart || def.SubaddressSeparators != "+" || def.FlushInterval.D() != time.Second {
		t.Fatalf("defaults %+v", def)
	}
	for in, key := range map[string]string{
		"detector:\n  dormant: 0s\n":                  "detector.dormant",
		"detector:\n  flush_interval: -1s\n":          "detector.flush_interval",
		"detector:\n  learn: -1h\n":                   "detector.learn",
		"detector:\n  subaddress_separators: \"@\"\n": "detector.subaddress_separators",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want it to name %s", in, err, key)
		}
	}
}
