package recorder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
)

// ContentType is the media type of asciicast files.
const ContentType = "application/x-asciicast"

// Handler serves recordings from s to web players. The request path,
// without its leading "/", names the recording (mount it with
// http.StripPrefix):
//
//   - "2026/11/21/<id>.cast" serves the object "2026/11/21/<id>.cast.gz"
//     decompressed, as application/x-asciicast, which asciinema-player
//     loads. It is streamed, so Range requests get the whole file
//     (Accept-Ranges: none).
//   - "2026/11/21/<id>.cast.gz" serves the stored object as is
//     (application/gzip), with Range support when the store's reader can
//     seek (the file driver's can).
//
// "?download=1" adds a Content-Disposition attachment header. GET and
// HEAD only. The handler does no authorization: wrap it.
func Handler(s Store) http.Handler {
	return &handler{s: s}
}

type handler struct{ s Store }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	raw := strings.HasSuffix(p, ".cast.gz")
	name := p
	if !raw {
		if !strings.HasSuffix(p, ".cast") {
			http.Error(w, "not found: recordings are served as <name>.cast or <name>.cast.gz", http.StatusNotFound)
			return
		}
		name = p + ".gz"
	}
	if !fs.ValidPath(name) {
		http.Error(w, "bad recording name", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	info, err := h.s.Stat(ctx, name)
	if err != nil {
		storeError(w, err)
		return
	}
	etag := fmt.Sprintf(`"%x-%x"`, info.Size, info.Modified.UnixNano())
	if !raw {
		etag = "W/" + etag
	}
	hd := w.Header()
	hd.Set("ETag", etag)
	hd.Set("Cache-Control", "private, no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("download") == "1" {
		base := name[strings.LastIndex(name, "/")+1:]
		if !raw {
			base = strings.TrimSuffix(base, ".gz")
		}
		hd.Set("Content-Disposition", `attachment; filename="`+base+`"`)
	}
	if !raw {
		if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == "*") {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if !info.Modified.IsZero() {
			hd.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
		}
	}
	if r.Method == http.MethodHead && !raw {
		hd.Set("Content-Type", ContentType)
		hd.Set("Accept-Ranges", "none")
		w.WriteHeader(http.StatusOK)
		return
	}
	rc, err := h.s.Get(ctx, name)
	if err != nil {
		storeError(w, err)
		return
	}
	defer rc.Close()
	if raw {
		hd.Set("Content-Type", "application/gzip")
		if rs, ok := rc.(io.ReadSeeker); ok {
			http.ServeContent(w, r, "", info.Modified, rs)
			return
		}
		hd.Set("Accept-Ranges", "none")
		hd.Set("Content-Length", fmt.Sprint(info.Size))
		if r.Method == http.MethodHead {
			return
		}
		if _, err := io.Copy(w, rc); err != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	plain, err := Decompress(rc)
	if err != nil {
		http.Error(w, "recording is damaged", http.StatusBadGateway)
		return
	}
	hd.Set("Content-Type", ContentType)
	hd.Set("Accept-Ranges", "none")
	if _, err := io.Copy(w, plain); err != nil {
		// Headers are gone: cut the connection rather than end a broken
		// file as if it were whole.
		panic(http.ErrAbortHandler)
	}
}

func storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotExist):
		http.Error(w, "recording not found", http.StatusNotFound)
	case errors.Is(err, ErrPermission):
		http.Error(w, "the recording store refused access", http.StatusForbidden)
	default:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "recording store unavailable", http.StatusBadGateway)
	}
}
