package onboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"image/png"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"
)

// decodeQR reads a PNG back with a QR decoder of another project than the encoder, so
// that the test does not share the encoder's mistakes.
func decodeQR(t *testing.T, b []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("read bitmap: %v", err)
	}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decode QR code: %v", err)
	}
	return res.GetText()
}

func TestQRImageDecodesToDCAccount(t *testing.T) {
	ts := newTestServer(t, Options{})
	for _, method := range []string{"GET", "HEAD"} {
		w := ts.do(method, "Chat.Example:443", "/new.png", "192.0.2.1:1")
		if w.Code != 200 || w.Header().Get("Content-Type") != "image/png" {
			t.Fatalf("%s: %d %q", method, w.Code, w.Header().Get("Content-Type"))
		}
		if method == "HEAD" {
			continue
		}
		if got, want := decodeQR(t, w.Body.Bytes()), "DCACCOUNT:https://chat.example/new"; got != want {
			t.Fatalf("QR code says %q, want %q", got, want)
		}
	}
	// Cached per domain, not mixed up between them.
	w := ts.do("GET", "_self.example", "/new.png", "192.0.2.1:1")
	if got, want := decodeQR(t, w.Body.Bytes()), "DCACCOUNT:https://_self.example/new"; got != want {
		t.Fatalf("QR code says %q, want %q", got, want)
	}
}

func TestEncodeQR(t *testing.T) {
	for _, domain := range []string{
		"a.example",
		"chat.example",
		"_self-signed.test.example",
		strings.Repeat("x", 63) + "." + strings.Repeat("y", 63) + "." + strings.Repeat("z", 63) + ".example",
	} {
		text := DCAccountURL(domain)
		b, err := EncodeQR(text)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		if got := decodeQR(t, b); got != text {
			t.Errorf("QR code says %q, want %q", got, text)
		}
		img, _ := png.Decode(bytes.NewReader(b))
		// A quiet zone of 4 modules of 8 pixels: the corners are white.
		if r, g, bl, _ := img.At(31, 31).RGBA(); r != 0xffff || g != 0xffff || bl != 0xffff {
			t.Errorf("%s: pixel (31,31) is not white", domain)
		}
		if r, _, _, _ := img.At(32, 32).RGBA(); r != 0 {
			t.Errorf("%s: the finder pattern does not start at (32,32)", domain)
		}
	}
}

func TestPage(t *testing.T) {
	ts := newTestServer(t, Options{})
	w := ts.do("GET", "chat.example", "/", "192.0.2.1:1")
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
	}
	page := w.Body.String()
	for _, want := range []string{
		"<h1>chat.example</h1>",
		`<img src="/new.png" alt="QR code of DCACCOUNT:https://chat.example/new">`,
		`<a class="button" href="/new">`,
		"<code>DCACCOUNT:https://chat.example/new</code>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "self-signed") {
		t.Errorf("page has a script or the self-signed note:\n%s", page)
	}
	for _, attr := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(attr[1], "/") || strings.HasPrefix(attr[1], "//") {
			t.Errorf("page refers to %q, not to its own host", attr[1])
		}
	}
	// The policy allows exactly the style that the page has, and nothing from elsewhere.
	csp := w.Header().Get("Content-Security-Policy")
	start, end := strings.Index(page, "<style>"), strings.Index(page, "</style>")
	if start < 0 || end < start {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(page[start+len("<style>") : end]))
	for _, want := range []string{"default-src 'none'", "img-src 'self'", "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q allows too much", csp)
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	if head := ts.do("HEAD", "chat.example", "/", "192.0.2.1:1"); head.Code != 200 {
		t.Errorf("HEAD: %d", head.Code)
	}
}

func TestPageVariants(t *testing.T) {
	ts := newTestServer(t, Options{})
	closed := ts.do("GET", "closed.example", "/", "192.0.2.1:1").Body.String()
	if !strings.Contains(closed, "Registration is closed on closed.example") || strings.Contains(closed, "<img") {
		t.Errorf("closed registration page:\n%s", closed)
	}
	self := ts.do("GET", "_self.example", "/", "192.0.2.1:1").Body.String()
	if !strings.Contains(self, "self-signed certificate") || !strings.Contains(self, "DCACCOUNT:https://_self.example/new") {
		t.Errorf("self-signed page:\n%s", self)
	}
}

// TestPageEscapes shows that a domain name reaches the page only as text.
func TestPageEscapes(t *testing.T) {
	h, err := NewHandler(Options{
		Domain: func(context.Context, string) (Info, bool) {
			return Info{Name: `x"><b>.example`, RegistrationOpen: true}, true
		},
		Exists: never,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "https://chat.example/", nil))
	page := w.Body.String()
	if strings.Contains(page, "<b>") || !strings.Contains(page, "x&#34;&gt;&lt;b&gt;.example") {
		t.Errorf("domain not escaped:\n%s", page)
	}
}
