package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The systems drawn as bars; tmpfs is the line at 1.
var chartSystems = []struct{ Key, Color string }{
	{"loopback", "#9a9a9a"},
	{"loopback-pt", "#4f81bd"},
	{"mmapfs", "#e3732c"},
	{"mmapfs-mapped", "#f2b134"},
	{"mmapfs-nocount", "#b7950b"},
	{"mmapfs-store", "#8e44ad"},
	{"mmapfs-store-mapped", "#c39bd3"},
	{"mmapfs-user", "#27ae60"},
	{"disk", "#5d4037"},
	{"mmapfs-store-disk", "#c0392b"},
}

// legendPerRow is how many systems a row of the legend holds.
const legendPerRow = 5

// drawSVG draws a horizontal bar chart: for each workload one bar per
// system but tmpfs, its ratio to tmpfs on a logarithmic axis (speed
// ratios, and for memory the cost ratio).
func drawSVG(out *reportOut) []byte {
	legendRows := (len(chartSystems) + 1 + legendPerRow - 1) / legendPerRow // and "tmpfs = 1"
	const (
		left, plotW, right = 270.0, 560.0, 70.0
		barH, barGap       = 8.0, 1.0
		groupGap           = 10.0
	)
	top := 98.0 + 16*float64(legendRows)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, w := range out.Workloads {
		for _, s := range chartSystems {
			if v, ok := w.RatioToTmpfs[s.Key]; ok {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 2
	}
	lo = math.Min(0.1, math.Pow(10, math.Floor(math.Log10(lo))))
	var ticks []float64
	for e := math.Log10(lo); e <= 6; e++ {
		for _, m := range []float64{1, 2, 5} {
			ticks = append(ticks, m*math.Pow(10, e))
		}
	}
	top2 := 2.0
	for _, t := range ticks {
		if t >= hi*1.02 && t >= 2 {
			top2 = t
			break
		}
	}
	hi = top2
	x := func(v float64) float64 {
		v = math.Min(math.Max(v, lo), hi)
		return left + plotW*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	groupH := float64(len(chartSystems))*(barH+barGap) - barGap + groupGap
	plotH := float64(len(out.Workloads)) * groupH
	width, height := left+plotW+right, top+plotH+50

	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`,
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>`)
	p(`<text x="10" y="20" font-size="15" font-weight="bold">mmapfs benchmark: each system relative to tmpfs (log scale)</text>`)
	sub := "speed ÷ tmpfs's speed, higher is better; memory: bytes ÷ tmpfs's bytes, lower is better"
	p(`<text x="10" y="38" fill="#444">%s</text>`, html.EscapeString(sub))
	for i, k := range []string{"machine", "mode"} {
		v := out.Run[k]
		if k == "machine" && out.Run["date"] != "" {
			v += ", " + out.Run["date"]
		}
		p(`<text x="10" y="%d" font-size="10" fill="#666">%s</text>`, 54+14*i, html.EscapeString(v))
	}
	legendAt := func(i int) (float64, float64) {
		return 10 + 130*float64(i%legendPerRow), 84 + 16*float64(i/legendPerRow)
	}
	for i, s := range chartSystems {
		lx, ly := legendAt(i)
		p(`<rect x="%.1f" y="%.1f" width="12" height="10" fill="%s"/>`, lx, ly, s.Color)
		p(`<text x="%.1f" y="%.1f">%s</text>`, lx+16, ly+9, html.EscapeString(labelOf(s.Key)))
	}
	lx, ly := legendAt(len(chartSystems))
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-dasharray="4 3"/>`, lx, ly+5, lx+20, ly+5)
	p(`<text x="%.1f" y="%.1f">tmpfs = 1</text>`, lx+24, ly+9)

	// Grid and axis.
	for _, t := range ticks {
		if t < lo*0.999 || t > hi*1.001 {
			continue
		}
		xx := x(t)
		stroke := "#e4e4e4"
		if t == 1 {
			stroke = "black"
		}
		dash := ""
		if t == 1 {
			dash = ` stroke-dasharray="4 3"`
		}
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"%s/>`, xx, top-4, xx, top+plotH, stroke, dash)
		p(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%s</text>`, xx, top+plotH+16, fmtTick(t))
	}
	p(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">ratio to tmpfs</text>`, left+plotW/2, top+plotH+34)

	for i, w := range out.Workloads {
		y0 := top + float64(i)*groupH
		label := w.Label
		if w.Key == "mem" {
			label = "memory per byte (lower is better)"
		}
		midY := y0 + (groupH-groupGap)/2 + 4
		p(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-8, midY, html.EscapeString(label))
		if i > 0 {
			p(`<line x1="10" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#f0f0f0"/>`, y0-groupGap/2, width-10, y0-groupGap/2)
		}
		for j, s := range chartSystems {
			y := y0 + float64(j)*(barH+barGap)
			v, ok := w.RatioToTmpfs[s.Key]
			if !ok {
				p(`<text x="%.1f" y="%.1f" font-size="8" fill="#999">n/a</text>`, left+3, y+barH-1)
				continue
			}
			xv := x(v)
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s × tmpfs</title></rect>`,
				left, y, math.Max(xv-left, 1), barH, s.Color,
				html.EscapeString(labelOf(s.Key)), html.EscapeString(w.Label), fmtRatio(v))
			p(`<text x="%.1f" y="%.1f" font-size="8" fill="#333">%s</text>`, xv+3, y+barH-1, fmtRatio(v))
		}
	}
	p(`</svg>`)
	return []byte(b.String())
}

func fmtTick(t float64) string {
	if t >= 1 {
		return fmt.Sprintf("%g", t)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", t), "0"), ".")
}
