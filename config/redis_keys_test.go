package config

import (
	"strings"
	"testing"
)

func TestRedisKeys(t *testing.T) {
	c, err := Parse([]byte("store:\n  path: \"\"\n  key_file: /k\n  redis_cluster: [\"10.0.0.1:7000\", \"10.0.0.2:7000\"]\n  redis_password_file: /etc/spamsurge/redis.pw\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Store.RedisCluster) != 2 || c.Store.RedisPasswordFile != "/etc/spamsurge/redis.pw" {
		t.Fatalf("decoded %+v", c.Store)
	}
	if _, err := Parse([]byte("store:\n  path: \"\"\n  key_file: /k\n  redis_url: rediss://spamsurge@redis.example:6380/3\n  redis_password_file: /pw\n")); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"store:\n  redis_url: http://h:1\n":                                          `line 2: store.redis_url: "http://h:1" is not a redis:// or rediss:// URL`,
		"store:\n  redis_url: \"redis://:s3cret@/0\"\n":                              "line 2: store.redis_url: \"redis://:xxxxx@/0\" has no host",
		"store:\n  redis_url: \"redis://:s3cret@h:1/x\"\n":                           `the database "x" is not a number`,
		"store:\n  redis_url: \"redis://h:1\"\n  redis_cluster: [\"h:2\"]\n":         "line 3: store.redis_cluster: set store.redis_url or store.redis_cluster, not both",
		"store:\n  redis_cluster:\n    - \"h:1\"\n    - h\n":                         `line 4: store.redis_cluster[1]: "h" is not host:port`,
		"store:\n  redis_password_file: /pw\n":                                       "line 2: store.redis_password_file: needs store.redis_url or store.redis_cluster",
		"store:\n  redis_url: \"redis://:s3cret@h:1\"\n  redis_password_file: /pw\n": "line 3: store.redis_password_file: store.redis_url has a password already",
		"store:\n  path: \"\"\n":                                                     "store.path: must be set when store.redis_url and store.redis_cluster are empty",
		"store:\n  path: \"\"\n  redis_url: \"redis://h:1\"\n":                       "store.key_file: must be set with a Redis store when store.path is empty",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the error shows the password: %v", in, err)
		}
	}
}
