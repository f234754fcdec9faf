package grants

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type tok struct{ Access string }

func key(t *testing.T, dir string) []byte {
	t.Helper()
	k, err := LoadKey(filepath.Join(dir, "key"), true)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDirStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := key(t, dir)
	again, err := LoadKey(filepath.Join(dir, "key"), false)
	if err != nil || !bytes.Equal(again, k) {
		t.Fatalf("the generated key does not read back: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	s, err := NewDir(filepath.Join(dir, "grants"), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "grant", "up", "user:alice", tok{"secret-token"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	var got tok
	if ok, err := s.Get(ctx, "grant", "up", "user:alice", &got); !ok || err != nil || got.Access != "secret-token" {
		t.Fatalf("get = %v %v %+v", ok, err, got)
	}
	if ok, _ := s.Get(ctx, "grant", "up", "user:bob", &got); ok {
		t.Fatal("bob reads alice's grant")
	}
	files, _ := os.ReadDir(filepath.Join(dir, "grants"))
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	path := filepath.Join(dir, "grants", files[0].Name())
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("secret-token")) {
		t.Fatal("the token is stored in the clear")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("record mode %v", fi.Mode())
	}
	// A record copied under another person's name does not open there.
	bobName, _ := name("grant", "up", "user:bob")
	if err := os.WriteFile(filepath.Join(dir, "grants", bobName), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Get(ctx, "grant", "up", "user:bob", &got); ok {
		t.Fatal("a record moved to bob's name opened")
	}
	// Another key opens nothing.
	other, _ := NewDir(filepath.Join(dir, "grants"), bytes.Repeat([]byte{7}, 32))
	if ok, _ := other.Get(ctx, "grant", "up", "user:alice", &got); ok {
		t.Fatal("another key opened the record")
	}
	// Deleted, it is gone.
	if err := s.Delete(ctx, "grant", "up", "user:alice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Get(ctx, "grant", "up", "user:alice", &got); ok {
		t.Fatal("a deleted grant is still there")
	}
	if err := s.Delete(ctx, "grant", "up", "user:alice"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestDirStoreExpires(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewDir(filepath.Join(dir, "grants"), key(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "consent", "", "state-1", tok{"x"}, -time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "consent", "", "state-2", tok{"y"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	var got tok
	if ok, _ := s.Get(ctx, "consent", "", "state-1", &got); ok {
		t.Fatal("an expired record was read")
	}
	if err := s.Put(ctx, "consent", "", "state-3", tok{"z"}, -time.Second); err != nil {
		t.Fatal(err)
	}
	s.Sweep() // removes state-3 without reading it, keeps state-2
	files, _ := os.ReadDir(filepath.Join(dir, "grants"))
	if len(files) != 1 {
		t.Fatalf("%d files after the sweep, want the live one", len(files))
	}
	if ok, _ := s.Get(ctx, "consent", "", "state-2", &got); !ok || got.Access != "y" {
		t.Fatal("the sweep removed a live record")
	}
}

func TestLoadKeyRefusesABadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path, true); err == nil {
		t.Fatal("a malformed key was accepted")
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "missing"), false); err == nil {
		t.Fatal("a missing key was accepted without create")
	}
}

func TestRedisStore(t *testing.T) {
	u := os.Getenv("PORTCULLIS_TEST_REDIS_URL")
	if u == "" {
		t.Fatal("PORTCULLIS_TEST_REDIS_URL is not set: run the tests with `make test` (it starts Redis)")
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	prefix := "portcullis-test-grants:" + t.Name() + time.Now().Format("150405.000000") + ":"
	k := bytes.Repeat([]byte{1}, 32)
	a, _ := NewRedis(rdb, prefix, k)
	b, _ := NewRedis(rdb, prefix, k) // another replica with the same key
	if err := a.Put(ctx, "grant", "up", "user:alice", tok{"secret-token"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	var got tok
	if ok, err := b.Get(ctx, "grant", "up", "user:alice", &got); !ok || err != nil || got.Access != "secret-token" {
		t.Fatalf("the other replica reads %v %v %+v", ok, err, got)
	}
	n, _ := name("grant", "up", "user:alice")
	if ttl := rdb.TTL(ctx, prefix+n).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
	if raw := rdb.Get(ctx, prefix+n).Val(); bytes.Contains([]byte(raw), []byte("secret-token")) {
		t.Fatal("the token is in Redis in the clear")
	}
	other, _ := NewRedis(rdb, prefix, bytes.Repeat([]byte{2}, 32))
	if ok, _ := other.Get(ctx, "grant", "up", "user:alice", &got); ok {
		t.Fatal("another key opened the record")
	}
	if err := b.Delete(ctx, "grant", "up", "user:alice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.Get(ctx, "grant", "up", "user:alice", &got); ok {
		t.Fatal("deleted on one replica, still there on the other")
	}
}
