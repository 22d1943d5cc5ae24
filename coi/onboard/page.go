package onboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/png"
	"net/http"

	qrcode "github.com/yeqown/go-qrcode/v2"
)

// pageTemplate is the web page of one chatmail domain. It has no script and loads
// nothing but its own QR code, so the strict policy of pagePolicy holds.
const pageTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Domain}}: chat account</title>
<style>{{.Style}}</style>
</head>
<body>
<main>
<h1>{{.Domain}}</h1>
{{- if .Open}}
<p>Scan this code with Delta Chat to get a chat account on {{.Domain}}.</p>
<img src="{{.QR}}" alt="QR code of {{.DCAccount}}">
<p><a class="button" href="{{.New}}">Open in Delta Chat</a></p>
<p class="small">The button works on a device that has Delta Chat installed.</p>
{{- if .SelfSigned}}
<p class="note">This server has a self-signed certificate, and Delta Chat refuses one when it
scans this code. Apps that POST to {{.New}} get a dclogin: link that works.</p>
{{- end}}
<code>{{.DCAccount}}</code>
{{- else}}
<p>Registration is closed on {{.Domain}}: it makes no new accounts.</p>
{{- end}}
</main>
</body>
</html>
`

// pageStyle is the page's only style. It is inline so that the page is one file, and
// pagePolicy allows exactly this text by its hash.
const pageStyle = `body{margin:0;font-family:system-ui,sans-serif;background:#f4f5f7;color:#1c1e21}
main{max-width:26rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border-radius:.75rem;text-align:center;box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.5rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
img{display:block;width:16rem;max-width:100%;height:auto;margin:1rem auto;image-rendering:pixelated}
a.button{display:inline-block;padding:.6rem 1.2rem;border-radius:.4rem;background:#2766d6;color:#fff;text-decoration:none;font-weight:600}
.small{font-size:.85rem;color:#555}
.note{font-size:.9rem;color:#8a4b00;text-align:left}
code{display:block;margin-top:1rem;font-size:.8rem;color:#555;overflow-wrap:anywhere}
`

// pagePolicy is the page's Content-Security-Policy: nothing but its own image and its
// own style, so that even a mistake in the template cannot run a script.
func pagePolicy() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; img-src 'self'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// DCAccountURL is what the QR code of domain says: Delta Chat POSTs to the URL after
// the colon and configures the account it gets (§4).
func DCAccountURL(domain string) string {
	return "DCACCOUNT:https://" + domain + PathNew
}

type pageData struct {
	Domain     string
	Open       bool
	SelfSigned bool
	QR         string
	New        string
	DCAccount  string
	Style      template.CSS
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, info Info) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var buf bytes.Buffer
	err := h.page.Execute(&buf, pageData{
		Domain:     info.Name,
		Open:       info.RegistrationOpen,
		SelfSigned: info.SelfSigned,
		QR:         PathQR,
		New:        PathNew,
		DCAccount:  DCAccountURL(info.Name),
		Style:      template.CSS(pageStyle),
	})
	if err != nil {
		h.log.Error("onboard: page failed", "domain", info.Name, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", h.csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	w.Write(buf.Bytes())
}

func (h *Handler) serveQR(w http.ResponseWriter, r *http.Request, info Info) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !info.RegistrationOpen {
		// The page shows no code then; one fetched anyway would only lead to a 403.
		http.NotFound(w, r)
		return
	}
	img, err := h.qrPNG(info.Name)
	if err != nil {
		h.log.Error("onboard: QR code failed", "domain", info.Name, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "image/png")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "public, max-age=86400")
	w.Write(img)
}

// maxCachedQR bounds the PNG cache; a host has a handful of chatmail domains, so
// emptying it when full costs nothing in practice.
const maxCachedQR = 256

// qrPNG is the QR code of DCAccountURL(domain) as a PNG. The image depends on the
// domain alone, so it is made once: encoding tries all eight masks on goroutines, work
// that a flood of image requests should not repeat.
func (h *Handler) qrPNG(domain string) ([]byte, error) {
	h.qrMu.Lock()
	defer h.qrMu.Unlock()
	if b, ok := h.qr[domain]; ok {
		return b, nil
	}
	b, err := EncodeQR(DCAccountURL(domain))
	if err != nil {
		return nil, err
	}
	if len(h.qr) >= maxCachedQR {
		clear(h.qr)
	}
	h.qr[domain] = b
	return b, nil
}

const (
	// qrScale is pixels per module: sharp on screens and print without scaling.
	qrScale = 8
	// qrQuietZone is the blank border, in modules, that ISO/IEC 18004 requires and
	// that scanners need to find the code.
	qrQuietZone = 4
)

// EncodeQR encodes text as a QR code image in PNG, black on white with a quiet zone.
// The code uses error correction level Q, so that a printed code still scans when
// a little worn or photographed at an angle.
func EncodeQR(text string) ([]byte, error) {
	code, err := qrcode.NewWith(text, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionQuart))
	if err != nil {
		return nil, fmt.Errorf("encode QR code: %w", err)
	}
	var m matrixTaker
	if err := code.Save(&m); err != nil {
		return nil, fmt.Errorf("encode QR code: %w", err)
	}
	n := len(m.modules)
	size := (n + 2*qrQuietZone) * qrScale
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	for y, row := range m.modules {
		for x, dark := range row {
			if !dark {
				continue
			}
			x0, y0 := (x+qrQuietZone)*qrScale, (y+qrQuietZone)*qrScale
			for py := y0; py < y0+qrScale; py++ {
				for px := x0; px < x0+qrScale; px++ {
					img.SetColorIndex(px, py, 1)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("write QR code PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// matrixTaker is a qrcode.Writer that keeps the modules, dark true, rows first. The
// library's image writers live in a separate module with a font and drawing stack;
// drawing squares needs only the standard library.
type matrixTaker struct{ modules [][]bool }

func (m *matrixTaker) Write(mat qrcode.Matrix) error {
	m.modules = mat.Bitmap()
	return nil
}

func (m *matrixTaker) Close() error { return nil }
