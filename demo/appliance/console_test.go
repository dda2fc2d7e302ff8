package appliance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sockshift/sockshift/web"
	"image"
	"image/png"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/sockshift/sockshift/demo/appliance"
	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// startDemo runs the appliance in this process on a fresh lab and waits
// until its built-in clients talk through the VIP.
func startDemo(t *testing.T) string {
	t.Helper()
	nstest.Privileged(t)
	exe := labtest.Binary(t)
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs labtest.Output
	done := make(chan error, 1)
	go func() {
		done <- appliance.Run(ctx, appliance.Config{Listen: addr, Prefix: labtest.Prefix(), Exe: exe,
			BreakHold: 2 * time.Second, // as long as the checks of a broken hand-off need
			Log:       log.New(&logs, "demo: ", log.Lmicroseconds)})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo: %v\n%s", err, logs.String())
			}
		case <-time.After(60 * time.Second):
			t.Errorf("the demo did not stop\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := getState(addr)
		if err == nil && st.Holder == "a" && st.Client != nil && st.Client.Bytes > 0 && len(st.Connections) >= 3 {
			return addr
		}
		select {
		case err := <-done:
			t.Fatalf("the demo ended early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not come up: %v %+v\n%s", err, st, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// browser starts headless Chromium and records every request it makes and
// every script error or console error it reports.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	nstest.NeedTool(t, "chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath("chromium"),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		// Without these, Chromium phones home, and on a closed network its
		// connections are refused.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	b := &browser{ctx: ctx}
	// Listen starts the browser; the network and log domains are enabled
	// with the tab.
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("exception: %s at %s:%d", msg, d.URL, d.LineNumber+1))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				b.problems = append(b.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			// CSP violations and failed loads are reported here.
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.problems = append(b.problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v\nproblems: %v", what, err, b.report())
	}
}

func (b *browser) eval(t *testing.T, expr string) string {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) report() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.problems)
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second),
			chromedp.WithPollingInterval(50*time.Millisecond))(ctx, tg)
		if err != nil {
			return chromedp.Void{}, fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return chromedp.Void{}, nil
	}
}

// js runs a statement for its effect.
func js(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool]("("+expr+", true)")(ctx, tg)
		return chromedp.Void{}, err
	}
}

func click(id string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.ID(id)) }

func text(id string) string { return fmt.Sprintf("document.getElementById(%q).textContent", id) }

// The console in a real browser against a real demo: it loads with no
// script error and no request beyond the console, the button hands off
// and the page shows the new holder without a reload, step mode walks
// through every phase, and the pcap of the hand-off holds the client's
// packets and the gratuitous ARP, with no reset.
func TestConsoleInChromium(t *testing.T) {
	addr := startDemo(t)
	b := newBrowser(t)
	base := "http://" + addr

	// Loaded once: everything after happens without a reload.
	b.run(t, "load the console",
		chromedp.Navigate(base+"/"),
		waitJS(text("live")+` === "live"`),
		waitJS(text("holder")+` === "Server A"`),
		js(`window.__loadedOnce = true`),
		// The lab picture names both servers' MACs and the client's ARP entry.
		waitJS(`document.getElementById("topo").textContent.includes("ARP: 192.0.2.100 → Server A")`),
		// Samples arrive and are drawn.
		waitJS(`document.getElementById("client").textContent.includes("throughput")`),
	)

	b.run(t, "hand off with the button",
		click("handoff"),
		waitJS(text("holder")+` === "Server B"`),
		waitJS(`document.querySelector("#report .title.ok") !== null && `+text("report")+`.includes("Server A  →  Server B")`),
		waitJS(`!document.getElementById("sequence").hidden && document.getElementById("seqimg").complete && document.getElementById("seqimg").naturalWidth > 0`),
		waitJS(`!document.getElementById("moved").hidden && document.getElementById("movedrows").children.length >= 10`),
		waitJS(`document.getElementById("topo").textContent.includes("ARP: 192.0.2.100 → Server B")`),
		waitJS(`window.__loadedOnce === true`),
	)
	pcapAfterHandOff(t, base)

	time.Sleep(2 * time.Second) // a few more seconds of the live graph, for the screenshot

	// Step mode: one click per phase, back to A.
	b.run(t, "start step mode",
		click("stepmode"),
		click("handoff"),
		waitJS(`!document.getElementById("stepper").hidden && `+text("stepname")+` === "Next: Quiesce"`),
		waitJS(text("stepcmd")+`.includes("ss -tn")`),
	)
	var phases []string
	for i := 0; ; i++ {
		if i > 12 {
			t.Fatalf("step mode did not complete after %d steps: %v", i, phases)
		}
		b.run(t, "wait for a phase", waitJS(`document.getElementById("stepper").hidden || !document.getElementById("stepnext").disabled`))
		name := b.eval(t, `document.getElementById("stepper").hidden ? "" : document.getElementById("stepname").textContent`)
		if name == "" {
			break
		}
		phases = append(phases, strings.TrimPrefix(name, "Next: "))
		checkStepCommands(t, name, b.eval(t, text("stepcmd")))
		if name == "Next: Release the address" {
			// The README's screenshot: the last hand-off, and a class in
			// step mode about to remove the address from the source.
			time.Sleep(time.Second)
			screenshot(t, b)
		}
		b.run(t, "step "+name, click("stepnext"),
			waitJS(fmt.Sprintf(`document.getElementById("stepper").hidden || %s !== %q`, text("stepname"), name)))
	}
	b.run(t, "step mode ends", waitJS(text("message")+`.startsWith("Step-mode hand-off")`))
	want := []string{"Quiesce", "Freeze", "Release the address", "Dump", "Transfer", "Restore", "Commit and announce", "Resume"}
	if !slices.Equal(phases, want) {
		t.Fatalf("phases stepped through: %v, want %v; %s", phases, want, b.eval(t, text("message")))
	}
	b.run(t, "step mode completes",
		waitJS(text("message")+` === "Step-mode hand-off complete."`),
		waitJS(text("holder")+` === "Server A"`),
		waitJS(`window.__loadedOnce === true`),
	)
	// A reload still shows the latest hand-off (the step-mode one, to A).
	b.run(t, "reload shows the latest hand-off",
		chromedp.Reload(),
		waitJS(`window.__loadedOnce === undefined`),
		waitJS(text("report")+`.includes("→  Server A")`),
	)

	// Abort at Restore: the report says the hand-off was aborted there and
	// nothing moved, never "N connections moved".
	b.run(t, "step mode, aborted at restore", click("stepmode"), click("handoff"),
		waitJS(`!document.getElementById("stepper").hidden && !document.getElementById("stepnext").disabled`))
	for i := 0; ; i++ {
		name := b.eval(t, text("stepname"))
		if name == "Next: Restore" {
			break
		}
		if i > 8 {
			t.Fatalf("step mode never reached Restore: %s", name)
		}
		b.run(t, "step "+name, click("stepnext"),
			waitJS(fmt.Sprintf(`%s !== %q && !document.getElementById("stepnext").disabled`, text("stepname"), name)))
	}
	b.run(t, "abort", click("stepabort"), waitJS(text("message")+`.startsWith("Step-mode hand-off ended")`))
	title := b.eval(t, `document.querySelector("#report .title").textContent`)
	chips := b.eval(t, `document.querySelector("#report .chips").textContent`)
	if !strings.Contains(title, "aborted before restore") || !strings.Contains(title, "nothing moved") || strings.Contains(chips, "connections moved") {
		t.Errorf("an aborted hand-off's report reads %q / %q", title, chips)
	}

	if p := b.report(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
	b.mu.Lock()
	reqs := slices.Clone(b.requests)
	b.mu.Unlock()
	if len(reqs) < 4 {
		t.Errorf("only %d requests seen: %v", len(reqs), reqs)
	}
	for _, u := range reqs {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page made an external request: %s", u)
		}
	}
}

// checkStepCommands runs the shell commands a step shows (those that only
// look: ss, ip addr show, ip neigh show) as the page shows them, and checks
// that what the step's text says matches what they see: in step mode the
// target takes the VIP only at the commit, with its sockets already
// rebuilt.
func checkStepCommands(t *testing.T, step, shown string) {
	t.Helper()
	outputs := map[string]string{}
	for line := range strings.Lines(shown) {
		cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "$ ")
		if !ok {
			t.Errorf("%s: the command line %q does not start with $", step, line)
			continue
		}
		if i := strings.Index(cmd, "    #"); i >= 0 {
			cmd = strings.TrimSpace(cmd[:i])
		}
		if strings.Contains(cmd, "addr add") || strings.Contains(cmd, "addr del") || strings.Contains(cmd, "arping") {
			continue // they change the lab: the step itself does that
		}
		out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
		if err != nil {
			t.Errorf("%s: `%s` as the page shows it: %v\n%s", step, cmd, err, out)
		}
		outputs[cmd] = string(out)
	}
	for cmd, out := range outputs {
		switch {
		case step == "Next: Commit and announce" && strings.Contains(cmd, "addr show"):
			if strings.Contains(out, "192.0.2.100") {
				t.Errorf("before the commit the target already holds the VIP:\n%s", out)
			}
		case step == "Next: Commit and announce" && strings.Contains(cmd, " ss "):
			if !strings.Contains(out, "192.0.2.100:7 ") {
				t.Errorf("before the commit `%s` should list the rebuilt sockets:\n%s", cmd, out)
			}
		}
	}
}

// skipAnnounceStalls hands off without the announce and checks what the
// report says happened: the client sent to the old server's MAC, nothing
// answered, it stalled until the console sent the missing ARP.
func skipAnnounceStalls(t *testing.T, base string) breakReport {
	t.Helper()
	rep := postHandOff(t, base, `{"break":{"skip_announce":true}}`)
	if rep.GapUS < 500_000 || !strings.Contains(rep.Note, "gratuitous ARP it had skipped") {
		t.Errorf("skipped announce: the client should stall until the repair: %+v", rep)
	}
	f := rep.Fate
	if f == nil || f.Stalled == 0 || f.WorstStallMS < 500 || f.ToSource == 0 || f.ReResolvedMS < 1000 || f.Reset != 0 {
		t.Errorf("skipped announce: the client's frames should show a stall until the repair: %+v", f)
	}
	if !strings.Contains(rep.Note, "stalled for up to") || strings.Contains(rep.Note, "no connection stalled") {
		t.Errorf("skipped announce: the note should say the connections stalled: %q", rep.Note)
	}
	return rep
}

// The lab is sealed from its host: on a host with IPv4 forwarding on (and
// ARP settings that would announce the VIP), whose settings the lab's new
// namespaces copy, skipping the announce still stalls the client, and the
// report says so. The host is not changed: labtest.LeakyHost writes its
// settings into the lab's namespaces as they are created.
func TestSkipAnnounceStallsOnALeakyHost(t *testing.T) {
	labtest.LeakyHost(t)
	base := "http://" + startDemo(t)
	skipAnnounceStalls(t, base)
}

// nsOf is the namespace of server role, as the console's state says.
func nsOf(t *testing.T, base, role string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Nodes []struct{ Name, Namespace string } `json:"nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.Name == role {
			return n.Namespace
		}
	}
	t.Fatalf("no node %s in the state", role)
	return ""
}

// pcapAfterHandOff checks the capture of the latest hand-off: the client's
// TCP packets both ways, the gratuitous ARP for the VIP, no reset.
func pcapAfterHandOff(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/api/handoffs/latest.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("latest.pcap: %s", resp.Status)
	}
	r, err := pcapgo.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("latest.pcap does not open as pcap: %v", err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	vip := net.ParseIP("192.0.2.100").To4()
	var toVIP, fromVIP, garp, resets int
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if a, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
			if bytes.Equal(a.SourceProtAddress, vip) && bytes.Equal(a.DstProtAddress, vip) {
				garp++
			}
			continue
		}
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			continue
		}
		if tcp.RST {
			resets++
		}
		switch {
		case ip.DstIP.Equal(vip):
			toVIP++
		case ip.SrcIP.Equal(vip):
			fromVIP++
		}
	}
	if toVIP == 0 || fromVIP == 0 || garp == 0 || resets != 0 {
		t.Fatalf("latest.pcap: %d TCP to the VIP, %d from it, %d gratuitous ARP, %d resets", toVIP, fromVIP, garp, resets)
	}
}

// capturedResets lists the resets in the latest capture, for a failure
// message.
func capturedResets(t *testing.T, base string) []string {
	resp, err := http.Get(base + "/api/handoffs/latest.pcap")
	if err != nil {
		return []string{err.Error()}
	}
	defer resp.Body.Close()
	r, err := pcapgo.NewReader(resp.Body)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			return out
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if eth != nil && ip != nil && tcp != nil && tcp.RST {
			out = append(out, fmt.Sprintf("%s %s>%s %s:%d>%s:%d seq %d ack %d", ci.Timestamp.Format("15:04:05.000000"),
				eth.SrcMAC, eth.DstMAC, ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort, tcp.Seq, tcp.Ack))
		}
	}
}

// screenshot takes the console from its top to the end of "What moved".
func screenshot(t *testing.T, b *browser) {
	t.Helper()
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	bottom := b.eval(t, `String(Math.ceil(document.getElementById("moved").getBoundingClientRect().bottom + window.scrollY + 16))`)
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if w := img.Bounds().Dx(); w < 1000 {
		t.Errorf("screenshot %d px wide", w)
	}
	var h int
	fmt.Sscan(bottom, &h)
	if h > 200 && h < img.Bounds().Dy() {
		if sub, ok := img.(interface {
			SubImage(image.Rectangle) image.Image
		}); ok {
			var buf bytes.Buffer
			enc := png.Encoder{CompressionLevel: png.BestCompression}
			if err := enc.Encode(&buf, sub.SubImage(image.Rect(0, 0, img.Bounds().Dx(), h))); err != nil {
				t.Fatal(err)
			}
			shot = buf.Bytes()
		}
	}
	// SOCKSHIFT_SCREENSHOT=docs/console.png keeps it for the README.
	path := os.Getenv("SOCKSHIFT_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "console.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

type breakReport struct {
	OK      bool   `json:"ok"`
	From    string `json:"from"`
	To      string `json:"to"`
	GapUS   int64  `json:"gap_us"`
	Note    string `json:"note"`
	Error   string `json:"error"`
	Capture *struct {
		Resets    int  `json:"resets"`
		Announced bool `json:"announced"`
	} `json:"capture"`
	Connections int       `json:"connections"`
	Fate        *web.Fate `json:"fate"`
}

func postHandOff(t *testing.T, base, body string) breakReport {
	t.Helper()
	rep := tryHandOff(t, base, body)
	if !rep.OK {
		t.Fatalf("hand-off %s: %+v", body, rep)
	}
	return rep
}

func tryHandOff(t *testing.T, base, body string) breakReport {
	t.Helper()
	resp, err := http.Post(base+"/api/handoff", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep breakReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("hand-off %s: %s: %v", body, resp.Status, err)
	}
	if rep.OK != (resp.StatusCode == http.StatusOK) {
		t.Fatalf("hand-off %s: %s %+v", body, resp.Status, rep)
	}
	return rep
}

// The break-it toggles show why the steps exist, and the demo runs on
// after each: without the announce the client stalls until the missing
// ARP is sent; with the address kept on the source as well, the source
// resets the connection, which the capture shows.
func TestBreakItShowsWhyEachStepExists(t *testing.T) {
	base := "http://" + startDemo(t)

	rep := skipAnnounceStalls(t, base)
	if rep.Capture == nil || rep.Capture.Resets != 0 {
		t.Errorf("skipped announce: capture %+v, want no reset", rep.Capture)
	}
	if st, err := getState(base[len("http://"):]); err != nil || st.Holder != "b" {
		t.Fatalf("after the skipped announce: holder %q, %v", st.Holder, err)
	}

	// With the address kept, the client's segments may reach the frozen
	// sockets during the dump, and the hand-off then rolls back (and says
	// so); try again until one goes through.
	for i := 0; ; i++ {
		rep = tryHandOff(t, base, `{"to":"a","break":{"skip_announce":true,"keep_vip":true}}`)
		if rep.OK || i == 4 {
			break
		}
		if !strings.Contains(rep.Note, "rolled back") {
			t.Fatalf("a failed break-it hand-off should say why: %+v", rep)
		}
	}
	if !rep.OK || rep.Capture == nil || rep.Capture.Resets == 0 || !strings.Contains(rep.Note, "reset") {
		t.Errorf("address kept on the source: want a reset in the capture: %+v %+v", rep, rep.Capture)
	}
	// The report says what happened: connections reset by the source that
	// kept the address, none "moved"; and the target, put right, keeps no
	// socket no client can reach (a chat nick would collide later).
	if f := rep.Fate; f == nil || f.Reset == 0 || f.ResetBy != rep.From || strings.Contains(rep.Note, "moved") {
		t.Errorf("address kept: the report should say the connections were reset by %s: %+v %q", rep.From, rep.Fate, rep.Note)
	}
	for _, addr := range []string{"192.0.2.100", "192.0.2.101"} { // echo's and chat's
		if out := nstest.Run(t, "ip", "netns", "exec", nsOf(t, base, rep.To), "ss", "-Htn", "state", "established", "src", addr); strings.TrimSpace(out) != "" {
			t.Errorf("after the repair %s still has connections on %s, which it no longer holds:\n%s", rep.To, addr, out)
		}
	}
	// Put right: one server holds the VIP, and the clients are back.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := getState(base[len("http://"):])
		holders := 0
		for _, n := range st.Nodes {
			if n.HoldsVIP {
				holders++
			}
		}
		if err == nil && holders == 1 && len(st.Connections) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lab was not put right: %d holders, %+v, %v", holders, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And a normal hand-off works again.
	st, _ := getState(base[len("http://"):])
	rep = postHandOff(t, base, `{}`)
	// The client may still reset the leftovers of the broken connection
	// (the closed copies retransmit their FIN); no server resets anything.
	if rep.From != st.Holder || rep.Capture == nil || !rep.Capture.Announced {
		t.Errorf("a normal hand-off after the broken ones: %+v %+v", rep, rep.Capture)
	}
	for _, r := range capturedResets(t, base) {
		if strings.Contains(r, " 192.0.2.100:") && !strings.Contains(r, ">192.0.2.100:") {
			t.Errorf("a server reset a connection in a normal hand-off: %s", r)
		}
	}
}

// A class goes through step mode at a talking pace, two seconds a step or
// more, and the guide's clients ride it out with their default flags: the
// ping client of exercise 1 (no error: it waits for its echo, and having
// been acknowledged before the freeze it has nothing to resend) and the
// slow stream of exercise 4, whose line each second shows the frozen
// connection's retransmissions while they happen.
func TestGuideClientsOutlastStepModeAtTalkingPace(t *testing.T) {
	base := "http://" + startDemo(t)
	resp, err := http.Get(base + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		ClientHost struct{ Namespace string } `json:"client_host"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.ClientHost.Namespace == "" {
		t.Fatal("the state names no client namespace")
	}
	client := func(args ...string) (*exec.Cmd, *labtest.Output) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", st.ClientHost.Namespace, labtest.Binary(t), "client", "--addr", "192.0.2.100:7"}, args...)...)
		var out labtest.Output
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &out
	}
	// As exercises 1 and 4 write them, in the one-host lab.
	ping, pingOut := client("--mode", "ping", "--interval", "100ms")
	stream, streamOut := client("--mode", "stream", "--rate", "10000")
	time.Sleep(2 * time.Second)

	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %s", path, body, resp.Status)
		}
	}
	lastLine := func(out *labtest.Output) string {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[len(lines)-1]
	}
	post("/api/handoff", `{"step":true}`)
	var retransSeen bool
	re := regexp.MustCompile(`(\d+) retransmits`)
	for i := 0; i < 8; i++ {
		time.Sleep(2 * time.Second) // the class talks
		if m := re.FindStringSubmatch(lastLine(streamOut)); m != nil && m[1] != "0" {
			retransSeen = true
		}
		post("/api/step", `{}`)
	}
	time.Sleep(3 * time.Second)
	for _, c := range []*exec.Cmd{ping, stream} {
		c.Process.Signal(syscall.SIGINT)
		c.Wait()
	}
	for _, out := range []*labtest.Output{pingOut, streamOut} {
		if !strings.Contains(lastLine(out), " 0 errors") {
			t.Errorf("a guide's client did not outlast step mode at two seconds a step:\n%s", out.String())
		}
	}
	if !retransSeen {
		t.Errorf("while frozen the stream's lines never showed a retransmission:\n%s", streamOut.String())
	}
}
