//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

// Built with -tags pprof (bench/relay/profile.sh does), the binary serves
// net/http/pprof on the address in SPAMSURGE_PPROF, when set. Ordinary
// builds have no such listener.
func init() {
	if addr := os.Getenv("SPAMSURGE_PPROF"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
