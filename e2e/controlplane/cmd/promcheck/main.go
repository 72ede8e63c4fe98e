// Command promcheck parses Prometheus text exposition format from stdin with the reference
// parser (github.com/prometheus/common/expfmt, the one Prometheus itself used for the text
// format) under the legacy (strict) name rules, and prints the families as JSON on stdout.
// Malformed input is an error (exit 1) naming the line.
//
// kubetrail's tests use it to check that `kubetrail record --metrics-addr` serves what a
// Prometheus server can scrape, without trusting a parser written alongside the code under test.
//
//	curl -s localhost:9090/metrics | promcheck
//	{"kubetrail_cached_pods":{"type":"GAUGE","samples":[{"labels":{},"value":26}]},...}
package main

import (
	"encoding/json"
	"fmt"
	"os"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type sample struct {
	Labels map[string]string `json:"labels"`
	// Counter, gauge and untyped value; for a histogram, its sample count.
	Value float64 `json:"value"`
	// Histograms only.
	Sum     *float64           `json:"sum,omitempty"`
	Buckets map[string]float64 `json:"buckets,omitempty"`
}

type family struct {
	Type    string   `json:"type"`
	Help    string   `json:"help"`
	Samples []sample `json:"samples"`
}

func main() {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "promcheck: not valid Prometheus text format: %v\n", err)
		os.Exit(1)
	}
	out := map[string]family{}
	for name, mf := range families {
		f := family{Type: mf.GetType().String(), Help: mf.GetHelp()}
		for _, m := range mf.GetMetric() {
			s := sample{Labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				s.Labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.Value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.Value = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				s.Value = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				s.Value = float64(h.GetSampleCount())
				sum := h.GetSampleSum()
				s.Sum = &sum
				s.Buckets = map[string]float64{}
				for _, b := range h.GetBucket() {
					s.Buckets[fmt.Sprint(b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			default:
				fmt.Fprintf(os.Stderr, "promcheck: %s: unexpected type %s\n", name, mf.GetType())
				os.Exit(1)
			}
			f.Samples = append(f.Samples, s)
		}
		out[name] = f
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "promcheck: %v\n", err)
		os.Exit(1)
	}
}
