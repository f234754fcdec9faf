// Package grants keeps what a gateway holds for each person who authorized
// it at an upstream (OAuth tokens), and the consents under way, in the
// gateway's VPC: sealed with AES-256-GCM under a per-gateway key, in the
// data dir or, when the gateway's replicas share one, in Redis. Nothing here
// ever reaches the control plane. Every record expires.
package grants

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxRecordBytes bounds one sealed record.
const MaxRecordBytes = 64 << 10

// Store is a sealed key-value store of expiring records.
type Store struct {
	aead   cipher.AEAD
	dir    string
	rdb    redis.UniversalClient
	prefix string
}

// keyBytes is the size of the sealing key (AES-256).
const keyBytes = 32

// LoadKey reads the sealing key from path: 64 hex digits. When path does
// not exist and create is true, a new random key is written there (0600).
func LoadKey(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, keyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("writing the token key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the token key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != keyBytes {
		return nil, fmt.Errorf("token key %s: want %d hex digits (openssl rand -hex %d)", path, 2*keyBytes, keyBytes)
	}
	return key, nil
}

// NewDir keeps records as files in dir, which it creates (0700).
func NewDir(dir string, key []byte) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s, err := newStore(key)
	if err != nil {
		return nil, err
	}
	s.dir = dir
	return s, nil
}

// NewRedis keeps records in Redis under prefix, shared by the replicas that
// have the same key.
func NewRedis(rdb redis.UniversalClient, prefix string, key []byte) (*Store, error) {
	s, err := newStore(key)
	if err != nil {
		return nil, err
	}
	s.rdb, s.prefix = rdb, prefix
	return s, nil
}

func newStore(key []byte) (*Store, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Store{aead: aead}, nil
}

// name is a record's storage name; its parts are also the sealed data's
// associated data, so a record copied to another name does not open.
func name(kind, upstream, principal string) (string, []byte) {
	ad := []byte(kind + "\x00" + upstream + "\x00" + principal)
	sum := sha256.Sum256(ad)
	return kind + "-" + hex.EncodeToString(sum[:]), ad
}

type envelope struct {
	Expires int64           `json:"exp"`
	Value   json.RawMessage `json:"v"`
}

// Put stores v (as JSON) under kind, upstream and principal for ttl.
func (s *Store) Put(ctx context.Context, kind, upstream, principal string, v any, ttl time.Duration) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ttl = min(ttl, MaxTTL)
	expires := time.Now().Add(ttl)
	plain, err := json.Marshal(envelope{Expires: expires.Unix(), Value: raw})
	if err != nil {
		return err
	}
	n, ad := name(kind, upstream, principal)
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := s.aead.Seal(nonce, nonce, plain, ad)
	if len(sealed) > MaxRecordBytes {
		return fmt.Errorf("a %s record is larger than %d bytes", kind, MaxRecordBytes)
	}
	if s.rdb != nil {
		return s.rdb.Set(ctx, s.prefix+n, sealed, ttl).Err()
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone once renamed
	if _, err := tmp.Write(sealed); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// The file's modification time is its expiry, for Sweep.
	if err := os.Chtimes(tmp.Name(), time.Now(), expires); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(s.dir, n))
}

// Get reads the record into v; false when there is none (or it expired,
// or does not open under this key).
func (s *Store) Get(ctx context.Context, kind, upstream, principal string, v any) (bool, error) {
	n, ad := name(kind, upstream, principal)
	var sealed []byte
	if s.rdb != nil {
		b, err := s.rdb.Get(ctx, s.prefix+n).Bytes()
		if errors.Is(err, redis.Nil) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		sealed = b
	} else {
		f, err := os.Open(filepath.Join(s.dir, n))
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		sealed, err = io.ReadAll(io.LimitReader(f, MaxRecordBytes+1))
		f.Close()
		if err != nil {
			return false, err
		}
	}
	ns := s.aead.NonceSize()
	if len(sealed) < ns || len(sealed) > MaxRecordBytes {
		return false, s.Delete(ctx, kind, upstream, principal)
	}
	plain, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return false, nil // another key's (a replica with another key, or a key rotated): as if absent
	}
	var env envelope
	if json.Unmarshal(plain, &env) != nil || time.Now().Unix() >= env.Expires {
		return false, s.Delete(ctx, kind, upstream, principal)
	}
	return true, json.Unmarshal(env.Value, v)
}

// Delete removes a record; removing none is no error.
func (s *Store) Delete(ctx context.Context, kind, upstream, principal string) error {
	n, _ := name(kind, upstream, principal)
	if s.rdb != nil {
		return s.rdb.Del(ctx, s.prefix+n).Err()
	}
	if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Sweep removes the data dir's expired records (whose modification time,
// their expiry, has passed); Redis expires its own.
func (s *Store) Sweep() {
	if s.rdb != nil {
		return
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	now := time.Now()
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(now) {
			continue
		}
		if strings.HasPrefix(e.Name(), ".tmp-") && now.Sub(info.ModTime()) < time.Hour {
			continue // being written
		}
		_ = os.Remove(filepath.Join(s.dir, e.Name()))
	}
}

// MaxTTL is the longest a record lives.
const MaxTTL = 90 * 24 * time.Hour
