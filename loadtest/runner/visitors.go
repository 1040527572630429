package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

const browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

// newVisitors creates n visitors on base through the public API, as a shop's
// traffic would (three sneaker category views, a product view and a cart
// add each), and writes their visitor values to path, one per line.
func newVisitors(base string, n int, path string) ([]string, error) {
	const body = `{"events":[{"type":"page_view","url":"/demo/c/sneakers"},{"type":"page_view","url":"/demo/c/sneakers"},` +
		`{"type":"page_view","url":"/demo/c/sneakers"},{"type":"page_view","url":"/demo/p/sneaker-air-45"},` +
		`{"type":"cart_add","sku":"sneaker-air-45","category":"sneakers","price":129.95}]}`
	out := make([]string, n)
	err := parallel(n, func(i int) (err error) {
		if out[i], err = postForCookie(base+"/v1/events", body, 202); err != nil {
			return fmt.Errorf("creating a visitor: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// parallel runs f for 0..n-1 on 16 goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func post(url, body string, want int, into any) error {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", browserUA)
	return do(req, want, into)
}

// postForCookie posts as a browser and returns the visitor cookie the
// service set: browsers never get the visitor value in a body.
func postForCookie(url, body string, want int) (string, error) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", browserUA)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return "", fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "etl" {
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("%s %s: no visitor cookie set", req.Method, req.URL.Path)
}

func do(req *http.Request, want int, into any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	if into == nil {
		return nil
	}
	return json.Unmarshal(b, into)
}

// checkPersonalised asks for a decision for a sample of visitors and fails
// unless each is personalised (the sneaker hero) and not degraded: the runs
// measure the real work, not a fallback.
func checkPersonalised(base string, visitors []string) error {
	for i := 0; i < len(visitors); i += 1 + len(visitors)/20 {
		var d struct {
			Blocks   map[string]struct{ ID string }
			Degraded bool
		}
		body := `{"visitor":"` + visitors[i] + `","slots":["home-hero","banner-top","home-picks"],"context":{"url":"/demo/"}}`
		if err := post(base+"/v1/decide", body, 200, &d); err != nil {
			return err
		}
		// hero-bold: the variant of the -experiment document's experiment.
		if hero := d.Blocks["home-hero"].ID; d.Degraded || (hero != "hero-sneakers" && hero != "hero-bold") {
			return fmt.Errorf("visitor %s not personalised: %+v", visitors[i], d)
		}
	}
	return nil
}

// counter reads one counter from a node's /metrics.
func counter(admin, name string) (float64, error) {
	resp, err := client.Get(admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(name+" ")) {
			return strconv.ParseFloat(string(line[len(name)+1:]), 64)
		}
	}
	return 0, sc.Err()
}

// storedViews sums, over visitors, the stored count of page views of url,
// read back through the admin API.
func storedViews(admin string, visitors []string, url string) (int, error) {
	total := 0
	for _, v := range visitors {
		req, _ := http.NewRequest("GET", admin+"/admin/v1/profiles/"+v, nil)
		var p struct {
			Primary struct {
				Behaviour []struct {
					Event, URL string
					Total      int
				}
			}
		}
		if err := do(req, 200, &p); err != nil {
			return 0, err
		}
		for _, b := range p.Primary.Behaviour {
			if b.Event == "page_view" && b.URL == url {
				total += b.Total
			}
		}
	}
	return total, nil
}
