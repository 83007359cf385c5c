package scale

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/rest"
)

// counts are Prometheus samples by series (name{labels}), as scraped.
type counts map[string]float64

var sampleRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)`)

// parseSamples reads the text exposition format, keeping series whose
// metric name is in names.
func parseSamples(r io.Reader, names ...string) (counts, error) {
	out := counts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sampleRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		for _, n := range names {
			if m[1] == n {
				v, err := strconv.ParseFloat(m[3], 64)
				if err != nil {
					return nil, fmt.Errorf("sample %q: %w", sc.Text(), err)
				}
				out[m[1]+m[2]] = v
			}
		}
	}
	return out, sc.Err()
}

// label returns the value of key in a series name{...}.
func label(series, key string) string {
	i := strings.Index(series, key+`="`)
	if i < 0 {
		return ""
	}
	rest := series[i+len(key)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

// apiWrites scrapes kube-apiserver's apiserver_request_total.
func apiRequests(ctx context.Context, cfg *rest.Config) (counts, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("apiserver http client: %w", err)
	}
	return scrape(ctx, hc, strings.TrimSuffix(cfg.Host, "/")+"/metrics", "apiserver_request_total")
}

func scrape(ctx context.Context, hc *http.Client, url string, names ...string) (counts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseSamples(resp.Body, names...)
}

var mutating = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true, "DELETECOLLECTION": true}

// writeTally is the mutating requests between two scrapes, by
// verb resource/subresource code.
type writeTally map[string]int

func writesBetween(before, after counts) writeTally {
	t := writeTally{}
	for s, v := range after {
		verb := label(s, "verb")
		if !mutating[verb] {
			continue
		}
		if d := int(v - before[s]); d > 0 {
			res := label(s, "resource")
			if sub := label(s, "subresource"); sub != "" {
				res += "/" + sub
			}
			t[verb+" "+res+" "+label(s, "code")] += d
		}
	}
	return t
}

// sum adds the entries whose key has the given resource ("daximages/status").
func (t writeTally) sum(resource string) int {
	n := 0
	for k, v := range t {
		if strings.Fields(k)[1] == resource {
			n += v
		}
	}
	return n
}

func (t writeTally) String() string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d; ", k, t[k])
	}
	return strings.TrimSuffix(b.String(), "; ")
}
