package detector

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// FuzzObserve feeds the detector an arbitrary sequence of observations:
// clock jumps forward and back (up to weeks), spam and ham, rejected
// recipients, odd senders and addresses. It must never panic, and what it
// reports must stay finite and sane.
func FuzzObserve(f *testing.F) {
	f.Add([]byte("\x00\x10\x01a\x02b\x03\xff\xff\x04c"))
	f.Add([]byte("\x7f\x7f\x7f\x7f\x01\x01\x01\x01\x80\x00\x80\x00\xff\x00\x00\x00"))
	f.Fuzz(fuzzObserve)
}

func fuzzObserve(t *testing.T, data []byte) {
	// Each 4 bytes may advance the clock by up to a day, integrated
	// minute by minute: keep a run to a few hundred of them.
	data = data[:min(len(data), 2048)]
	{
		d, err := New(Options{Key: testKey(t, 3), Store: store.NewMemory(), Warmup: time.Hour, Learn: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		at := t0
		for len(data) >= 4 {
			step := int16(binary.LittleEndian.Uint16(data))
			op, arg := data[2], data[3]
			data = data[4:]
			// Mostly forward in minutes, sometimes back, sometimes days.
			dt := time.Duration(step) * time.Minute
			if op&0x80 != 0 {
				dt *= 60
			}
			at = at.Add(dt)
			o := ingest.Observation{Time: at, Spam: op&1 != 0,
				From: fmt.Sprintf("x@s%d.example", arg%7), ClientIP: fmt.Sprintf("192.0.2.%d", arg)}
			switch op % 5 {
			case 0:
				o.From = ""
			case 1:
				o.Rejected = []string{fmt.Sprintf("ghost%d@example.net", arg)}
			case 2:
				o.ClientIP = "not an ip"
			}
			for k := 0; k < int(arg%5)+1; k++ {
				o.Rcpt = append(o.Rcpt, fmt.Sprintf("u%d@example.net", (int(arg)+k*31)%97))
			}
			if op%11 == 0 {
				o.Rcpt = append(o.Rcpt, "no-at-sign", "")
			}
			d.Observe(o)
			if op%13 == 0 {
				d.Tick(at.Add(time.Duration(arg) * time.Hour))
			}
		}
		if d.AtRisk() < 0 {
			t.Fatalf("at risk %d", d.AtRisk())
		}
		for _, v := range []float64{d.phiC, d.phiSlowC, d.cusumAll.s, d.cusumNovel.s, d.st.Num / d.st.Den} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("statistics not finite: phi %v phiSlow %v s %v sN %v rate %v", d.phiC, d.phiSlowC, d.cusumAll.s, d.cusumNovel.s, d.st.Num/d.st.Den)
			}
		}
		d.season.compute(&d.st.rhythm, d.st.phi())
		for _, x := range append(d.season.fh[:], d.season.fw[:]...) {
			if math.IsNaN(x) || x <= 0 {
				t.Fatalf("rhythm factors %v %v", d.season.fh, d.season.fw)
			}
		}
		for _, in := range d.Incidents() {
			if math.IsNaN(in.Observed) || math.IsNaN(in.Expected) || math.IsNaN(in.Score) || in.Expected < 0 {
				t.Fatalf("incident %+v", in)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
