package main

import (
	"math"
	"testing"
	"time"
)

func TestSlope(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4}
	ys := []float64{10, 12, 14, 16, 18}
	if got := slope(xs, ys); math.Abs(got-2) > 1e-9 {
		t.Errorf("slope = %v, want 2", got)
	}
	if got := slope([]float64{1}, []float64{5}); got != 0 {
		t.Errorf("slope of one point = %v, want 0", got)
	}
	if got := slope(xs, []float64{3, 1, 3, 1, 3}); math.Abs(got) > 1e-9 {
		t.Errorf("slope of noise around a level = %v, want 0", got)
	}
}

func TestTrendLimit(t *testing.T) {
	l := trendLimit{floor: 32, perHour: 16}
	if got := l.limit(3 * time.Minute); got != 32 {
		t.Errorf("short run: limit %v, want the floor 32", got)
	}
	if got := l.limit(4 * time.Hour); got != 64 {
		t.Errorf("4 h: limit %v, want 64", got)
	}
}
