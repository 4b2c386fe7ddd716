#!/usr/bin/env python3
# The long `pattern`s of store/openapi.json (numbers within u64 bounds, durations, RFC 3339
# times, IP addresses and CIDRs as the store parses them) are generated from these functions,
# not written by hand: to change a bound, regenerate the pattern here and paste it into the
# schema; tests/tests/e2e/hardening/store.rs (schemathesis tightness checks) verifies the result.
# Run it to self-check the number patterns and print the lengths of the others.
"""Regexes for store/openapi.json, built from the store's rules."""

def _rng(x: int, y: int) -> str:
    return str(x) if x == y else f"[{x}-{y}]"

def _rep(n: int) -> str:
    return "" if n == 0 else ("[0-9]" if n == 1 else f"[0-9]{{{n}}}")

def _same_len(a: str, b: str) -> str:
    """Regex for the decimal strings of one length between a and b (inclusive)."""
    assert len(a) == len(b) and a <= b
    if not a:
        return ""
    if a == b:
        return a
    n = len(a) - 1
    if a[1:] == "0" * n and b[1:] == "9" * n:
        return _rng(int(a[0]), int(b[0])) + _rep(n)
    if a[0] == b[0]:
        return a[0] + _group(_same_len(a[1:], b[1:]))
    parts, lo, hi, tail = [], int(a[0]), int(b[0]), None
    if a[1:] != "0" * n:
        parts.append(a[0] + _group(_same_len(a[1:], "9" * n)))
        lo += 1
    if b[1:] != "9" * n:
        tail = b[0] + _group(_same_len("0" * n, b[1:]))
        hi -= 1
    if lo <= hi:
        parts.append(_rng(lo, hi) + _rep(n))
    if tail:
        parts.append(tail)
    return "|".join(parts)

def _group(r: str) -> str:
    return f"(?:{r})" if "|" in r else r

def number(lo: int, hi: int, digits=None) -> str:
    """Decimal numbers in lo..=hi, leading zeros allowed: up to `digits` digits in all, or any
    number of them (digits None)."""
    alts = []
    for length in range(1, len(str(hi)) + 1):
        a = max(lo, 10 ** (length - 1) if length > 1 else 0)
        b = min(hi, 10 ** length - 1)
        if a > b:
            continue
        r = _same_len(str(a).zfill(length), str(b))
        if digits is None:
            alts.append(_group(r))
        else:
            z = digits - length
            pad = "" if z == 0 else ("0?" if z == 1 else f"0{{0,{z}}}")
            alts.append(pad + _group(r))
    inner = "|".join(alts)
    if digits is None:
        return f"0*(?:{inner})"
    return f"(?:{inner})"

U64 = 2**64 - 1
NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}

def duration(min_ms: int, max_ms: int) -> str:
    """tollgate::duration::Duration::parse (1 to 12 digits and ms|s|m|h|d, the value in ns
    within u64) with as_millis in min_ms..=max_ms."""
    alts = []
    for unit in ["ms", "s", "m", "h", "d"]:
        per_ms = NS[unit] // 10**6
        hi = min(10**12 - 1, U64 // NS[unit], max_ms // per_ms)
        lo = -(-min_ms // per_ms)
        alts.append(number(lo, hi, 12) + unit)
    return "(?:" + "|".join(alts) + ")"

# RFC 3339 as timefmt::parse_rfc3339 reads it: years 1970..=9999 (the offset may push a time on
# 1970-01-01 or 9999-12-31 out of range, or one on 1969-12-31 into it: not expressed).
YEAR = "(?:19[7-9][0-9]|[2-9][0-9]{3})"
LEAP = "(?:19(?:7[26]|8[048]|9[26])|[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)"
DATE = (f"(?:{YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
        f"|{LEAP}-02-29)")
TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\\.[0-9]+)?"
OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
RFC3339 = f"{DATE}[Tt ]{TIME}{OFFSET}"
MAX_MS = 253_402_300_799_999

def time_or_ago() -> str:
    ago = duration(0, U64)  # any duration that fits
    return f"^(?:{RFC3339}|{number(0, MAX_MS)}|{ago})$"

OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
V4 = f"{OCTET}(?:\\.{OCTET}){{3}}"
H = "[0-9A-Fa-f]{1,4}"

def v6() -> str:
    alts = [f"(?:{H}:){{7}}{H}", f"(?:{H}:){{6}}{V4}"]
    for a in range(0, 8):
        left = "" if a == 0 else (H if a == 1 else f"(?:{H}:){{{a - 1}}}{H}")
        right = []
        if a <= 6:
            right.append(H if 6 - a == 0 else f"{H}(?::{H}){{0,{6 - a}}}")
        if a <= 5:
            right.append(V4 if 5 - a == 0 else f"(?:{H}:){{0,{5 - a}}}{V4}")
        tail = f"(?:{'|'.join(right)})?" if right else ""
        alts.append(f"{left}::{tail}")
    return "(?:" + "|".join(alts) + ")"

# str::trim: Unicode White_Space.
WS = "[\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
P4 = "(?:3[0-2]|[12][0-9]|[0-9])"
P6 = "(?:12[0-8]|1[01][0-9]|[1-9][0-9]|[0-9])"

def cidr() -> str:
    return f"^{WS}*(?:{V4}(?:/{P4})?|{v6()}(?:/{P6})?){WS}*$"

# Who: not blank (str::trim), no control characters (char::is_control: Cc).
TEXT = ("^[^\\x00-\\x1f\\x7f-\\x9f]*"
        "[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        "[^\\x00-\\x1f\\x7f-\\x9f]*$")

TTL = "^" + duration(1, 366 * 86_400_000) + "$"

if __name__ == "__main__":
    import re, random
    # self-checks of number()
    for lo, hi, d in [(1, 366, 12), (0, 213503, 12), (1, 31622400000, 12), (0, MAX_MS, None), (0, 999999999999, 12)]:
        r = re.compile("^" + number(lo, hi, d) + "$")
        for n in list(range(0, 2000)) + [hi, hi + 1, lo, max(lo - 1, 0)] + [random.randrange(0, hi * 2) for _ in range(20000)]:
            for pad in (0, 1, 3):
                s = "0" * pad + str(n)
                want = lo <= n <= hi and (d is None or len(s) <= d)
                assert bool(r.match(s)) == want, (lo, hi, d, s)
    for p in [TTL, time_or_ago(), cidr(), TEXT]:
        re.compile(p)
        print(len(p))
    print(TTL)
