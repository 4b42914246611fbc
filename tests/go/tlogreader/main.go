// Command tlogreader reads a C2SP tlog-tiles log with Go's golang.org/x/mod/sumdb/tlog
// and sumdb/note: the tests run it against Suyuan's served and exported tiles as a reader
// written by others. Its TileReader maps tlog's sumdb tile paths (tile/8/L/N, tile/8/data/N)
// onto the tlog-tiles ones (tile/L/N, tile/entries/N); everything else is the library's.
//
// Usage: tlogreader BASE VKEY OLDSIZE OLDROOT SEQ...
// BASE is an http(s) URL or a directory; OLDSIZE and OLDROOT (base64) name an earlier
// checkpoint to prove consistency from (0 and "" for none). Prints one JSON line; exits 1
// with the reason when anything does not verify.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type reader struct {
	base  string
	reads int
}

func (r *reader) get(path string) ([]byte, error) {
	r.reads++
	if strings.HasPrefix(r.base, "http://") || strings.HasPrefix(r.base, "https://") {
		resp, err := http.Get(strings.TrimRight(r.base, "/") + "/" + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		return io.ReadAll(resp.Body)
	}
	return os.ReadFile(filepath.Join(r.base, path))
}

func c2spPath(t tlog.Tile) string {
	p := t.Path() // tile/8/L/N[.p/W] or tile/8/data/N[.p/W]
	p = strings.Replace(p, "tile/8/data/", "tile/entries/", 1)
	return strings.Replace(p, "tile/8/", "tile/", 1)
}

func (r *reader) Height() int { return 8 }

func (r *reader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := r.get(c2spPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r *reader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tlogreader: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 5 {
		fail("usage: tlogreader BASE VKEY OLDSIZE OLDROOT SEQ...")
	}
	r := &reader{base: os.Args[1]}
	verifier, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fail("verifier key: %v", err)
	}
	raw, err := r.get("checkpoint")
	if err != nil {
		fail("checkpoint: %v", err)
	}
	n, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint does not verify: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint root: %v", err)
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	tree := tlog.Tree{N: size, Hash: root}
	// TileHashReader authenticates every tile it loads against the tree hash.
	hr := tlog.TileHashReader(tree, r)
	th, err := tlog.TreeHash(size, hr)
	if err != nil || th != root {
		fail("tree hash from tiles: %v (%v, want %v)", err, th, root)
	}
	oldSize, _ := strconv.ParseInt(os.Args[3], 10, 64)
	if oldSize > 0 {
		oldRaw, err := base64.StdEncoding.DecodeString(os.Args[4])
		if err != nil || len(oldRaw) != tlog.HashSize {
			fail("old root: %v", err)
		}
		var old tlog.Hash
		copy(old[:], oldRaw)
		p, err := tlog.ProveTree(size, oldSize, hr)
		if err != nil {
			fail("consistency proof from tiles: %v", err)
		}
		if err := tlog.CheckTree(p, size, root, oldSize, old); err != nil {
			fail("tree %d is not consistent with tree %d: %v", size, oldSize, err)
		}
	}
	var verified []int64
	for _, arg := range os.Args[5:] {
		seq, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			fail("seq %q: %v", arg, err)
		}
		bundle := tlog.Tile{H: 8, L: -1, N: seq / 256, W: 256}
		if rest := size - bundle.N*256; rest < 256 {
			bundle.W = int(rest)
		}
		data, err := r.get(c2spPath(bundle))
		if err != nil {
			fail("bundle of seq %d: %v", seq, err)
		}
		var entry []byte
		for i, at := int64(0), 0; at < len(data); i++ {
			length := int(data[at])<<8 | int(data[at+1])
			if i == seq%256 {
				entry = data[at+2 : at+2+length]
			}
			at += 2 + length
		}
		leaf := tlog.RecordHash(entry)
		hashes, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, seq)})
		if err != nil || hashes[0] != leaf {
			fail("seq %d: its entry does not hash to its level-0 tile hash (%v)", seq, err)
		}
		p, err := tlog.ProveRecord(size, seq, hr)
		if err != nil {
			fail("inclusion proof of seq %d: %v", seq, err)
		}
		if err := tlog.CheckRecord(p, size, root, seq, leaf); err != nil {
			fail("seq %d is not in the tree: %v", seq, err)
		}
		verified = append(verified, seq)
	}
	out, _ := json.Marshal(map[string]any{"origin": lines[0], "size": size,
		"root": base64.StdEncoding.EncodeToString(root[:]), "verified": verified,
		"reads": r.reads})
	fmt.Println(string(out))
}
