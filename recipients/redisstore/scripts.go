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
// The group's risk hash: field "m" is the matured count of never-spammed
// addresses, and one field per maturation hour (decimal) counts the
// never-spammed addresses maturing then. bump moves one never-spammed
// address in or out of its hour's field, whether that hour has matured or
// not: a field of a matured hour (a first spam, or an address forgotten)
// is folded into "m" by the next maturation script, which is the only
// reader, so the count it returns is the same either way, and the hot path
// needs one command for it, no lookup.
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
local function bump(rk, h, d)
  redis.call('HINCRBY', rk, h, d)
end
`

// applyScript records messages to some of their recipients (a Store
// sends the messages of concurrent Apply calls together, see flush).
//
// KEYS: per recipient, its bucket hash and its group's risk hash (in a
// cluster one call holds one group's recipients, so all its keys share
// the hash tag). ARGV: the warm-up (minutes), then per message: now
// (minutes), spam (0 or 1), the number k of its recipients here, and their
// k fields. Returns per recipient, in order, the outcome code: 0 NewMail,
// 1 NewSpam, 2 Mail, 3 Spam, 5 + 8·(last mail day before this message) +
// 2¹⁹·(the hour it matured) FirstSpam, 6 + 8·(the hour it would have
// matured) EarlySpam. (Integers below 2⁵³: exact in Lua's doubles.)
//
// A first spam is decided here, in the script, and Redis runs one script
// at a time: of two hops that get an address's first spam in the same
// millisecond, one script sees first spam 0 and writes it, the other then
// sees it written.
var applyScript = newScript(common + `
local warm = tonumber(ARGV[1])
local out = {}
local a, r = 2, 1
while a <= #ARGV do
  local now = tonumber(ARGV[a])
  local spam = ARGV[a + 1] == '1'
  local k = tonumber(ARGV[a + 2])
  a = a + 3
  local today = math.floor(now / 1440)
  local hour = math.floor(now / 60)
  for _ = 1, k do
    local bk, rk, fld = KEYS[2 * r - 1], KEYS[2 * r], ARGV[a]
    local v = redis.call('HGET', bk, fld)
    if not v then
      if spam then
        redis.call('HSET', bk, fld, p32(now) .. p16(today) .. p32(now))
        out[r] = 1
      else
        redis.call('HSET', bk, fld, p32(now) .. p16(today))
        bump(rk, math.floor((now + warm + 59) / 60), 1)
        out[r] = 0
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
        if h <= hour then kind = 5 + 8 * ld + 524288 * h else kind = 6 + 8 * h end
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
      out[r] = kind
    end
    a = a + 1
    r = r + 1
  end
end
return out
`)

// matureScript folds the maturation buckets of hours up to ARGV[1] into
// the matured count of each risk hash in KEYS and returns {sum of the
// matured counts}. Folding is idempotent: any instance may do it, at any
// time.
var matureScript = newScript(`
local H = tonumber(ARGV[1])
local total = 0
for i = 1, #KEYS do
  local rk = KEYS[i]
  local all = redis.call('HGETALL', rk)
  local add = 0
  local m = 0
  for j = 1, #all, 2 do
    local h = tonumber(all[j])
    if h then
      if h <= H then
        add = add + tonumber(all[j + 1])
        redis.call('HDEL', rk, all[j])
      end
    elseif all[j] == 'm' then
      m = tonumber(all[j + 1])
    end
  end
  if add ~= 0 then
    m = m + add
    redis.call('HSET', rk, 'm', m)
  end
  total = total + m
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
