// Command fakegithub (package fakegithub) stands in for GitHub's release API
// of a private repository in the rehearsal of the production path. It runs
// inside a stand-in host, on 127.0.0.1, and serves the releases of one
// folder the way api.github.com serves a private repository's:
//
//	GET /repos/OWNER/REPO/releases/latest      the release named in ROOT/latest
//	GET /repos/OWNER/REPO/releases/tags/TAG    the release ROOT/TAG (its files are the assets)
//	GET /repos/OWNER/REPO/releases/assets/ID   the asset's JSON; with
//	                                           "Accept: application/octet-stream" a 302 to a
//	                                           signed, short-lived URL on another host name
//	                                           (-download), as GitHub redirects to its storage
//
// Every API request needs "Authorization: Bearer TOKEN" (or "token TOKEN")
// with the token read from -token-file; without it the repository does not
// exist (404), as on GitHub. The download host refuses a request that
// carries an Authorization header (storage accepts one way to authenticate,
// the signature), so a client that forwards the token across the redirect
// fails here as it would there.
//
// It also checks what the production path promises about the token: on every
// authenticated request it looks through /proc for a process (other than
// itself) whose command line or environment holds the token, and refuses
// the request with 403 naming it. Each request is appended to -log as one
// line (method, path, status, whether it was authenticated, any violation),
// never with the token.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakegithub:", err)
		os.Exit(1)
	}
}

type server struct {
	root     string // ROOT/TAG/asset files; ROOT/latest names the latest TAG
	owner    string
	repo     string
	token    []byte
	apiBase  string // http://127.0.0.1:PORT
	download string // host:port of the storage stand-in
	key      []byte // signs download URLs
	procDir  string
	logMu    sync.Mutex
	logFile  *os.File
}

func run(args []string) error {
	fs := flag.NewFlagSet("fakegithub", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9080", "address of the API")
	download := fs.String("download", "localhost:9081", "host:port of the download (storage) stand-in; another host name than the API's")
	root := fs.String("root", "", "folder of the releases: ROOT/TAG/FILE, ROOT/latest holding the latest TAG")
	repo := fs.String("repo", "", "OWNER/REPO served")
	tokenFile := fs.String("token-file", "", "file holding the token the API accepts (mode 0600)")
	logPath := fs.String("log", "", "request log (appended)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	owner, name, ok := strings.Cut(*repo, "/")
	if *root == "" || !ok || owner == "" || name == "" || *tokenFile == "" || *logPath == "" {
		return errors.New("-root, -repo OWNER/REPO, -token-file and -log are required")
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fmt.Errorf("read the token: %w", err)
	}
	tok = bytes.TrimSpace(tok)
	if len(tok) < 8 {
		return errors.New("the token file holds no token")
	}
	lf, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the log: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	s := &server{root: *root, owner: owner, repo: name, token: tok, apiBase: "http://" + *listen,
		download: *download, key: key, procDir: "/proc", logFile: lf}
	apiLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen for the API: %w", err)
	}
	_, dport, err := net.SplitHostPort(*download)
	if err != nil {
		return fmt.Errorf("-download: %w", err)
	}
	dlLn, err := net.Listen("tcp", "127.0.0.1:"+dport)
	if err != nil {
		return fmt.Errorf("listen for downloads: %w", err)
	}
	errc := make(chan error, 2)
	go func() {
		errc <- (&http.Server{Handler: http.HandlerFunc(s.api), ReadHeaderTimeout: 10 * time.Second}).Serve(apiLn)
	}()
	go func() {
		errc <- (&http.Server{Handler: http.HandlerFunc(s.storage), ReadHeaderTimeout: 10 * time.Second}).Serve(dlLn)
	}()
	slog.Info("fakegithub serving", "api", s.apiBase, "download", *download, "repo", *repo)
	return <-errc
}

// record appends one request to the log; the token never appears in it.
func (s *server) record(r *http.Request, status int, auth, note string) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	line := fmt.Sprintf("%s %s %s %d auth=%s", time.Now().UTC().Format(time.RFC3339Nano), r.Method, r.URL.Path, status, auth)
	if note != "" {
		line += " " + note
	}
	fmt.Fprintln(s.logFile, strings.ReplaceAll(line, string(s.token), "[TOKEN]"))
}

func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any, auth, note string) {
	b, _ := json.MarshalIndent(v, "", "  ") // GitHub's API indents its JSON
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
	s.record(r, status, auth, note)
}

// authorized reports whether r carries the token, as GitHub reads it.
func (s *server) authorized(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "none"
	}
	for _, scheme := range []string{"Bearer ", "bearer ", "token "} {
		if v, ok := strings.CutPrefix(h, scheme); ok && hmac.Equal([]byte(v), s.token) {
			return "ok"
		}
	}
	return "bad"
}

// exposed names the processes (other than this one) whose command line or
// environment holds the token.
func (s *server) exposed() []string {
	entries, err := os.ReadDir(s.procDir)
	if err != nil {
		return []string{"cannot read " + s.procDir + ": " + err.Error()}
	}
	self := os.Getpid()
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join(s.procDir, e.Name(), f))
			if err != nil || !bytes.Contains(b, s.token) {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(s.procDir, e.Name(), "comm"))
			found = append(found, fmt.Sprintf("pid %d (%s) %s", pid, strings.TrimSpace(string(comm)), f))
		}
	}
	return found
}

var (
	releasePath = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/releases/(latest|tags/([^/]+))$`)
	assetPath   = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/releases/assets/([0-9]+)$`)
	tagShape    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

func notFound() map[string]string {
	return map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
}

func (s *server) api(w http.ResponseWriter, r *http.Request) {
	auth := s.authorized(r)
	if r.Method != http.MethodGet {
		s.writeJSON(w, r, http.StatusNotFound, notFound(), auth, "")
		return
	}
	if auth != "ok" {
		// A private repository does not exist for anyone without access.
		s.writeJSON(w, r, http.StatusNotFound, notFound(), auth, "")
		return
	}
	if who := s.exposed(); len(who) > 0 {
		note := "TOKEN EXPOSED: " + strings.Join(who, ", ")
		s.writeJSON(w, r, http.StatusForbidden, map[string]string{"message": note}, auth, note)
		return
	}
	if m := releasePath.FindStringSubmatch(r.URL.Path); m != nil && m[1] == s.owner && m[2] == s.repo {
		tag := m[4]
		if m[3] == "latest" {
			b, err := os.ReadFile(filepath.Join(s.root, "latest"))
			if err != nil {
				s.writeJSON(w, r, http.StatusNotFound, notFound(), auth, "no latest release")
				return
			}
			tag = strings.TrimSpace(string(b))
		}
		rel, err := s.release(tag)
		if err != nil {
			s.writeJSON(w, r, http.StatusNotFound, notFound(), auth, err.Error())
			return
		}
		s.writeJSON(w, r, http.StatusOK, rel, auth, "")
		return
	}
	if m := assetPath.FindStringSubmatch(r.URL.Path); m != nil && m[1] == s.owner && m[2] == s.repo {
		a, ok := s.asset(m[3])
		if !ok {
			s.writeJSON(w, r, http.StatusNotFound, notFound(), auth, "no such asset")
			return
		}
		if r.Header.Get("Accept") != "application/octet-stream" {
			s.writeJSON(w, r, http.StatusOK, a.json(s), auth, "")
			return
		}
		exp := strconv.FormatInt(time.Now().Add(5*time.Minute).Unix(), 10)
		loc := fmt.Sprintf("http://%s/storage/%d?X-Amz-Expires=%s&X-Amz-Signature=%s", s.download, a.id, exp, s.sign(a.id, exp))
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
		s.record(r, http.StatusFound, auth, "")
		return
	}
	s.writeJSON(w, r, http.StatusNotFound, notFound(), auth, "")
}

func (s *server) sign(id int64, exp string) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "%d %s", id, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// storage is the stand-in for the storage GitHub redirects asset downloads to.
func (s *server) storage(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		http.Error(w, msg, status)
		s.record(r, status, "storage", msg)
	}
	if r.Header.Get("Authorization") != "" {
		fail(http.StatusBadRequest, "Only one auth mechanism allowed; only the X-Amz-Signature query parameter is accepted")
		return
	}
	idText, ok := strings.CutPrefix(r.URL.Path, "/storage/")
	id, err := strconv.ParseInt(idText, 10, 64)
	q := r.URL.Query()
	exp := q.Get("X-Amz-Expires")
	if !ok || err != nil || !hmac.Equal([]byte(q.Get("X-Amz-Signature")), []byte(s.sign(id, exp))) {
		fail(http.StatusForbidden, "SignatureDoesNotMatch")
		return
	}
	if e, err := strconv.ParseInt(exp, 10, 64); err != nil || time.Now().Unix() > e {
		fail(http.StatusForbidden, "Request has expired")
		return
	}
	a, found := s.asset(idText)
	if !found {
		fail(http.StatusNotFound, "NoSuchKey")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeFile(w, r, a.path)
	s.record(r, http.StatusOK, "storage", "")
}

type asset struct {
	id   int64
	tag  string
	name string
	path string
	size int64
}

// ghUser, ghAsset and ghRelease keep the fields in the order GitHub's API
// sends them: the README's user data reads the asset's "url" before its
// "name", as a client without a JSON parser does.
type ghUser struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
	URL   string `json:"url"`
	Type  string `json:"type"`
}

type ghAsset struct {
	URL                string `json:"url"`
	ID                 int64  `json:"id"`
	NodeID             string `json:"node_id"`
	Name               string `json:"name"`
	Label              string `json:"label"`
	Uploader           ghUser `json:"uploader"`
	ContentType        string `json:"content_type"`
	State              string `json:"state"`
	Size               int64  `json:"size"`
	DownloadCount      int    `json:"download_count"`
	BrowserDownloadURL string `json:"browser_download_url"`
}

type ghRelease struct {
	URL        string    `json:"url"`
	AssetsURL  string    `json:"assets_url"`
	ID         int64     `json:"id"`
	Author     ghUser    `json:"author"`
	TagName    string    `json:"tag_name"`
	Name       string    `json:"name"`
	Draft      bool      `json:"draft"`
	Prerelease bool      `json:"prerelease"`
	Assets     []ghAsset `json:"assets"`
	Body       string    `json:"body"`
}

func (s *server) bot() ghUser {
	return ghUser{Login: "github-actions[bot]", ID: 41898282, URL: s.apiBase + "/users/github-actions%5Bbot%5D", Type: "Bot"}
}

func (a asset) json(s *server) ghAsset {
	return ghAsset{
		URL:    fmt.Sprintf("%s/repos/%s/%s/releases/assets/%d", s.apiBase, s.owner, s.repo, a.id),
		ID:     a.id,
		NodeID: fmt.Sprintf("RA_%d", a.id), Name: a.name, Uploader: s.bot(),
		ContentType: "application/octet-stream", State: "uploaded", Size: a.size,
		BrowserDownloadURL: fmt.Sprintf("https://github.com/%s/%s/releases/download/%s/%s", s.owner, s.repo, a.tag, a.name),
	}
}

// assetID is stable for a tag and file name, as GitHub's ids are for an asset.
func assetID(tag, name string) int64 {
	h := fnv.New32a()
	h.Write([]byte(tag + "/" + name))
	return int64(h.Sum32()&0x7fffffff) + 1
}

func (s *server) assets(tag string) ([]asset, error) {
	if !tagShape.MatchString(tag) || tag == "latest" {
		return nil, fmt.Errorf("no release %q", tag)
	}
	entries, err := os.ReadDir(filepath.Join(s.root, tag))
	if err != nil {
		return nil, fmt.Errorf("no release %q", tag)
	}
	var out []asset
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		out = append(out, asset{id: assetID(tag, e.Name()), tag: tag, name: e.Name(),
			path: filepath.Join(s.root, tag, e.Name()), size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (s *server) asset(id string) (asset, bool) {
	tags, _ := os.ReadDir(s.root)
	for _, t := range tags {
		if !t.IsDir() {
			continue
		}
		as, err := s.assets(t.Name())
		if err != nil {
			continue
		}
		for _, a := range as {
			if strconv.FormatInt(a.id, 10) == id {
				return a, true
			}
		}
	}
	return asset{}, false
}

func (s *server) release(tag string) (ghRelease, error) {
	as, err := s.assets(tag)
	if err != nil {
		return ghRelease{}, err
	}
	list := make([]ghAsset, 0, len(as))
	for _, a := range as {
		list = append(list, a.json(s))
	}
	id := assetID(tag, "")
	return ghRelease{
		URL:       fmt.Sprintf("%s/repos/%s/%s/releases/%d", s.apiBase, s.owner, s.repo, id),
		AssetsURL: fmt.Sprintf("%s/repos/%s/%s/releases/%d/assets", s.apiBase, s.owner, s.repo, id),
		ID:        id, Author: s.bot(), TagName: tag, Name: tag, Assets: list,
		// A body with commas, braces and quotes, as release notes have.
		Body: "Images: {app, nginx}, \"host bundle\", checksums.",
	}, nil
}
