package oci

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfig is the part of a docker config.json / .dockerconfigjson
// secret that names registry credentials.
type dockerConfig struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// fileKeychain serves credentials from one docker config file; it is read
// when a pull starts, so a rotated secret is picked up.
type fileKeychain struct{ path string }

// KeychainFromFile reads registry credentials from a dockerconfigjson file
// (a mounted kubernetes.io/dockerconfigjson secret or a config.json).
func KeychainFromFile(path string) authn.Keychain { return fileKeychain{path} }

func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	b, err := os.ReadFile(k.path)
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	return resolveIn(b, k.path, r)
}

// bytesKeychain serves credentials from a dockerconfigjson already read
// (a secret fetched through the Kubernetes API).
type bytesKeychain struct {
	config []byte
	name   string // for errors
}

func (k bytesKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return resolveIn(k.config, k.name, r)
}

// resolveIn finds r's registry in a docker config. Errors never quote the
// config: it holds secrets.
func resolveIn(b []byte, what string, r authn.Resource) (authn.Authenticator, error) {
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("registry credentials %s: not a docker config (JSON)", what)
	}
	for key, ac := range cfg.Auths {
		if registryOf(key) != r.RegistryStr() {
			continue
		}
		if ac.Auth != "" && ac.Username == "" {
			raw, err := base64.StdEncoding.DecodeString(ac.Auth)
			if err != nil {
				return nil, fmt.Errorf("registry credentials %s: entry for %s: auth is not base64", what, key)
			}
			user, pass, _ := strings.Cut(string(raw), ":")
			ac.Username, ac.Password, ac.Auth = user, pass, ""
		}
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}

// registryOf reduces a config key ("https://reg.example/v1/", "reg.example")
// to the registry host.
func registryOf(key string) string {
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(key, "/")
	if host == "docker.io" {
		return "index.docker.io"
	}
	return host
}
