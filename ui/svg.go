package ui

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"

	"github.com/ocimirror/proxy/internal/units"
)

// The charts are inline SVG drawn here, no chart library: presentation
// attributes only (the content security policy allows no inline styles), a
// role="img" with a label and a <title> that says what the chart shows, and
// every text escaped.

// series is one line of a chart.
type series struct {
	Name   string
	Class  string // a CSS class for its colour: s1, s2
	Points []point
}

const (
	chartW, chartH = 600, 160
	padL, padR     = 56, 8
	padT, padB     = 10, 22
)

// lineChart draws series against time over [from, to]. label is the chart's
// accessible name; unit formats the axis values.
func lineChart(label string, from, to time.Time, unit func(float64) string, ss ...series) template.HTML {
	var b strings.Builder
	maxV := 0.0
	for _, s := range ss {
		for _, p := range s.Points {
			maxV = max(maxV, p.V)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	span := to.Sub(from).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 {
		return padL + (chartW-padL-padR)*min(max(t.Sub(from).Seconds()/span, 0), 1)
	}
	y := func(v float64) float64 { return padT + (chartH-padT-padB)*(1-v/maxV) }
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`,
		chartW, chartH, html.EscapeString(label), html.EscapeString(label))
	// Axes and gridlines at 0, half and max.
	for _, f := range []float64{0, 0.5, 1} {
		yy := y(maxV * f)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, yy, chartW-padR, yy)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-4, yy+4, html.EscapeString(unit(maxV*f)))
	}
	layout := "15:04"
	if span > 12*3600 {
		layout = "Jan 2 15:04"
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text>`, padL, chartH-4, html.EscapeString(from.UTC().Format(layout)))
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-padR, chartH-4, html.EscapeString(to.UTC().Format("15:04 UTC")))
	for _, s := range ss {
		if len(s.Points) == 0 {
			continue
		}
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.V)))
		}
		if len(pts) == 1 { // one point: a short flat segment so it shows
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.Points[0].At)+2, y(s.Points[0].V)))
		}
		fmt.Fprintf(&b, `<polyline class="line %s" fill="none" points="%s"><title>%s</title></polyline>`,
			html.EscapeString(s.Class), strings.Join(pts, " "), html.EscapeString(s.Name))
	}
	if len(ss) == 0 || allEmpty(ss) {
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="middle">no samples yet</text>`, chartW/2, chartH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text above is escaped
}

func allEmpty(ss []series) bool {
	for _, s := range ss {
		if len(s.Points) > 0 {
			return false
		}
	}
	return true
}

// part is one part of a bar.
type part struct {
	Name  string
	Class string
	V     float64
}

// barChart is a horizontal bar of total width: the parts side by side, each
// as wide as its share of total (total 0: the parts' sum).
func barChart(label string, total float64, parts ...part) template.HTML {
	sum := 0.0
	for _, p := range parts {
		sum += p.V
	}
	if total <= 0 {
		total = sum
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bar" viewBox="0 0 600 24" role="img" aria-label="%s" preserveAspectRatio="none"><title>%s</title>`,
		html.EscapeString(label), html.EscapeString(label))
	b.WriteString(`<rect class="track" x="0" y="0" width="600" height="24"/>`)
	at := 0.0
	for _, p := range parts {
		if total <= 0 || p.V <= 0 {
			continue
		}
		w := min(600*p.V/total, 600-at)
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="0" width="%.1f" height="24"><title>%s</title></rect>`,
			html.EscapeString(p.Class), at, w, html.EscapeString(p.Name))
		at += w
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text above is escaped
}

// perSecond formats a rate.
func perSecond(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f/s", v)
	}
	return fmt.Sprintf("%.0f/s", v)
}

// count formats a count per interval.
func count(v float64) string { return fmt.Sprintf("%.0f", v) }

// bytesPerSecond formats a byte rate.
func bytesPerSecond(v float64) string { return units.Bytes(int64(v)) + "/s" }
