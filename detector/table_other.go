//go:build !linux

package detector

func adviseHuge([]slot) {}
