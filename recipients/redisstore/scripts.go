package redisstore

import (
	"crypto/sha1"
	"encoding/hex"
)

// script is a Lua script run by EVALSHA, with EVAL when the server does
// not have it cached (NOSCRIPT: a restart, a failover, a new node). Its
// digest is computed here, so the hot path never needs SCRIPT LOAD.
type script struct {
	src string
	sha string
}

func newScript(src string) *script {
	h := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(h[:])}
}

// The common part of the scripts: the packed value of an address and the
// at-risk accounting of its group.
//
// Value (big-endian): first mail (4 bytes, minutes since the epoch), last
// mail day (2 bytes, days since the epoch), and only once spammed, first
// spam (4 bytes, minutes). 6 or 10 bytes.
//
// The group's risk hash: field "f" is the hour up to which the maturation
// buckets are folded, "m" the folded (matured) count of never-spammed
// addresses, and one field per later maturation hour (decimal) with the
// never-spammed addresses maturing then. bump moves one never-spammed
// address in or out of that accounting: into its bucket, or into "m" once
// the bucket is folded.
const common = `
local function u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local function p32(x)
  return string.char(math.floor(x / 16777216) % 256, math.floor(x / 65536) % 256, math.floor(x / 256) % 256, x % 256)
end
local function p16(x)
  return string.char(math.floor(x / 256) % 256, x % 256)
end
local folded = {}
local function bump(rk, h, d)
  local f = folded[rk]
  if f == nil then
    f = tonumber(redis.call('HGET', rk, 'f') or 0)
    folded[rk] = f
  end
  if h <= f then
    redis.call('HINCRBY', rk, 'm', d)
  else
    redis.call('HINCRBY', rk, h, d)
  end
end
`

// applyScript records one message to some of its recipients.
//
// KEYS: per recipient, its bucket hash and its group's risk hash (in a
// cluster one call holds one group's recipients, so all its keys share
// the hash tag). ARGV: now (minutes), warm-up (minutes), spam (0 or 1),
// then per recipient its field. Returns per recipient the outcome code:
// 0 NewMail, 1 NewSpam, 2 Mail, 3 Spam, 4 EarlySpam, 5 + 8·(last mail
// day before this message) FirstSpam.
//
// A first spam is decided here, in the script, and Redis runs one script
// at a time: of two hops that get an address's first spam in the same
// millisecond, one script sees first spam 0 and writes it, the other then
// sees it written.
var applyScript = newScript(common + `
local now = tonumber(ARGV[1])
local warm = tonumber(ARGV[2])
local spam = ARGV[3] == '1'
local today = math.floor(now / 1440)
local hour = math.floor(now / 60)
local out = {}
for i = 1, #KEYS / 2 do
  local bk, rk, fld = KEYS[2 * i - 1], KEYS[2 * i], ARGV[3 + i]
  local v = redis.call('HGET', bk, fld)
  if not v then
    if spam then
      redis.call('HSET', bk, fld, p32(now) .. p16(today) .. p32(now))
      out[i] = 1
    else
      redis.call('HSET', bk, fld, p32(now) .. p16(today))
      bump(rk, math.floor((now + warm + 59) / 60), 1)
      out[i] = 0
    end
  else
    local fm = u32(v, 1)
    local ld = string.byte(v, 5) * 256 + string.byte(v, 6)
    local fs = 0
    if #v >= 10 then fs = u32(v, 7) end
    local kind = 2
    if spam then kind = 3 end
    local changed = false
    if spam and fs == 0 then
      fs = now
      changed = true
      local h = math.floor((fm + warm + 59) / 60)
      if h <= hour then kind = 5 + 8 * ld else kind = 4 end
      bump(rk, h, -1)
    end
    if today > ld then
      ld = today
      changed = true
    end
    if changed then
      local nv = p32(fm) .. p16(ld)
      if fs ~= 0 then nv = nv .. p32(fs) end
      redis.call('HSET', bk, fld, nv)
    end
    out[i] = kind
  end
end
return out
`)

// matureScript folds the maturation buckets of hours up to ARGV[1] into
// the matured count of each risk hash in KEYS and returns {sum of the
// matured counts}. Folding twice is harmless: any instance may do it.
var matureScript = newScript(`
local H = tonumber(ARGV[1])
local total = 0
for i = 1, #KEYS do
  local rk = KEYS[i]
  local f = tonumber(redis.call('HGET', rk, 'f') or 0)
  if H > f then
    local all = redis.call('HGETALL', rk)
    local add = 0
    for j = 1, #all, 2 do
      local h = tonumber(all[j])
      if h and h <= H then
        add = add + tonumber(all[j + 1])
        redis.call('HDEL', rk, all[j])
      end
    end
    if add ~= 0 then redis.call('HINCRBY', rk, 'm', add) end
    redis.call('HSET', rk, 'f', H)
  end
  total = total + tonumber(redis.call('HGET', rk, 'm') or 0)
end
return {total}
`)

// forgetScript drops the addresses whose last mail day is before ARGV[1]
// (warm-up ARGV[2] minutes) from the buckets in KEYS (pairs of bucket and
// risk hash, as applyScript), and the never-spammed ones from the at-risk
// accounting. Returns {addresses dropped}.
var forgetScript = newScript(common + `
local cut = tonumber(ARGV[1])
local warm = tonumber(ARGV[2])
local n = 0
for i = 1, #KEYS / 2 do
  local bk, rk = KEYS[2 * i - 1], KEYS[2 * i]
  local all = redis.call('HGETALL', bk)
  for j = 1, #all, 2 do
    local v = all[j + 1]
    local ld = string.byte(v, 5) * 256 + string.byte(v, 6)
    if ld < cut then
      redis.call('HDEL', bk, all[j])
      if #v < 10 then bump(rk, math.floor((u32(v, 1) + warm + 59) / 60), -1) end
      n = n + 1
    end
  end
end
return {n}
`)
