// Package curvekeys reads and writes the CURVE key files of bokeh-server, ws-worker and the
// forwarder: NAME.key holds a secret key (mode 0600), NAME.pub the public key, each one
// line of 40 Z85 characters (lines starting with # are comments).
package curvekeys

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bokeh-go/bokeh-server/broker"
)

// File name suffixes.
const (
	SecretSuffix = ".key"
	PublicSuffix = ".pub"
)

// Paths are the files of the keypair name in dir. name may name a subdirectory
// (workers/worker1), which keeps allow-lists apart.
func Paths(dir, name string) (secretPath, publicPath string, err error) {
	clean := filepath.Clean(name)
	if name == "" || filepath.IsAbs(name) || clean == "." || strings.HasPrefix(clean, "..") ||
		strings.HasPrefix(filepath.Base(clean), ".") {
		return "", "", fmt.Errorf("key name %q: want a file name such as worker1 or workers/worker1", name)
	}
	return filepath.Join(dir, clean+SecretSuffix), filepath.Join(dir, clean+PublicSuffix), nil
}

// Generate writes a new keypair to dir/name.key and dir/name.pub, refusing to overwrite
// either; the directories are created (0700) if needed.
func Generate(dir, name string) (secretPath, publicPath string, err error) {
	if secretPath, publicPath, err = Paths(dir, name); err != nil {
		return "", "", err
	}
	public, secret, err := broker.NewKeypair()
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(filepath.Dir(secretPath), 0o700); err != nil {
		return "", "", fmt.Errorf("key directory: %w", err)
	}
	header := "# bokeh-server CURVE %s key of %q, made by bokeh-server keygen\n"
	if err := writeNew(secretPath, fmt.Sprintf(header+"%s\n", "secret", name, secret), 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(publicPath, fmt.Sprintf(header+"%s\n", "public", name, public), 0o644); err != nil {
		os.Remove(secretPath)
		return "", "", err
	}
	return secretPath, publicPath, nil
}

func writeNew(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists already: keys are never overwritten (remove it first)", path)
		}
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Parse returns the key in a key file's content.
func Parse(content []byte) (string, error) {
	var key string
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if key != "" {
			return "", errors.New("more than one key")
		}
		key = line
	}
	if key == "" {
		return "", errors.New("no key")
	}
	return key, broker.CheckKey(key)
}

// ReadSecret reads a secret key file, refusing one that others may read.
func ReadSecret(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("CURVE secret key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("CURVE secret key %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	return readKey(path)
}

// ReadPublic reads a public key file.
func ReadPublic(path string) (string, error) { return readKey(path) }

func readKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("CURVE key: %w", err)
	}
	key, err := Parse(b)
	if err != nil {
		return "", fmt.Errorf("CURVE key %s: %w", path, err)
	}
	return key, nil
}

// ReadAllowList reads every *.pub file in dir: the public keys of the clients a server
// accepts. An empty list is an error (nobody could connect).
func ReadAllowList(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+PublicSuffix))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var keys []string
	for _, p := range paths {
		k, err := ReadPublic(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("CURVE allow-list %s has no *%s file: no client could connect", dir, PublicSuffix)
	}
	return keys, nil
}
