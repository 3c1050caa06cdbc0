//go:build !linux

package recipients

func adviseHuge([]slot) {}
