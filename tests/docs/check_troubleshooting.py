#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
Checks that docs/troubleshooting.md quotes every user-facing error message of the sidecar,
libskr, encfs, generatefs and importkey, so that a user who searches the document for what was
printed finds its cause and fix.

What is extracted
  The format-string literal of every call to an "emitter": skr_error_set/skr_error_reset
  (the reason a failure carries up to the binary, which prints it), log_error/log_warn/log_msg,
  fprintf(stderr, ...), and the project's own printf-like wrappers (respond_error for HTTP API
  errors, policy parse_fail, the LUKS and blob "refuse" helpers, the tools' usage errors).
  Adjacent literals are joined (also across lines), string macros (#define X "...") and the
  <inttypes.h> PRI* macros are expanded, and both literal arms of a `c ? "a" : "b"` are taken.
  Every function declared __attribute__((format(printf, N, M))) with M != 0 in the scanned
  sources must be classified in EMITTERS or NOT_EMITTERS below, so a new wrapper cannot hide
  messages from this check.

What counts as user-facing (everything extracted, minus these rules, each applied by code):
  R1 resource exhaustion: the call's code is -ENOMEM or the text says "out of memory". Not a
     user mistake; the fix is always the same (give the process memory).
  R2 programming-contract checks: the text mentions NULL (a caller passed a NULL pointer) or a
     C function by name "name()" (an API misuse inside the process). No user input reaches them.
  R3 context only: fewer than two words of two or more letters once the format specifiers are
     removed ("%s: %s", "attest: %s", "importkey: ./%s: %s"). Such a line only wraps a reason
     that is itself checked at the place it is made.
  R4 skr_error_prefix: the same as R3 by construction, it only prepends context to a reason set
     elsewhere; the reason is what the document lists.
  Scope: sidecar/, skr/, encfs/, tools/generatefs/, tools/importkey/, common/. tools/devcloud/
  is a development stand-in for Azure (its messages are read by developers of this project,
  not by users of the sidecar) and is not scanned.

How the document is matched
  Each message becomes a regular expression: the literal text with white space collapsed and
  every format specifier (or run of adjacent ones, "%s%s") standing for some non-empty text,
  which the document writes as a placeholder <like-this> or as one of the values the code
  passes (`SkrSideCarArgs <field>: expected a string`). The expression must match inside one
  code span or one line of a fenced code block of docs/troubleshooting.md.

Usage: check_troubleshooting.py [--source-root DIR] [--list] [--missing] [--pending]
  exit 0 when every user-facing message is documented, 1 otherwise (the missing ones are printed
  with file:line).
"""

import argparse
import os
import re
import sys

SCAN_DIRS = ["sidecar", "skr", "encfs", "tools/generatefs", "tools/importkey", "common"]
DOC = "docs/troubleshooting.md"

# name -> index of the format argument (0-based). fprintf only counts with stderr as first arg.
EMITTERS = {
    "skr_error_set": 2,
    "skr_error_reset": 2,
    "skr_error_prefix": 1,  # extracted, then excluded by R4
    "log_msg": 1,
    "log_error": 0,
    "log_warn": 0,
    "fprintf": 1,
    "respond_error": 2,  # sidecar/api.c: the {"error": ...} body of an HTTP API error
    "parse_fail": 1,  # skr/policy.c: release policy parse errors, prefixed with the path
    "refuse": -1,  # encfs/luks_header.c refuse(err, fmt) and encfs/blob_http.c refuse(x, code, fmt)
    "usage_error": 0,  # tools/importkey/main.c
    "fail_usage": 0,  # tools/generatefs/main.c
}

# printf-like functions that do not produce an error message, each with the reason.
NOT_EMITTERS = {
    "path_push": "skr/policy.c: builds the JSON path (\"authorityClaims[0].anyOf\") shown by parse_fail",
}

# Source files whose messages the document does not cover yet (issue 7 is still open for them):
# their messages are counted and listed with --pending but do not fail the check. Remove a file
# from here once the document covers it; the list only ever shrinks.
PENDING_FILES = {
}

# log levels that are not errors or warnings: their text is progress, not a failure.
NON_ERROR_LOGGERS = {"log_info", "log_debug", "log_trace"}

SPEC_RE = re.compile(r"%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|j|z|t|L)?[diouxXeEfFgGaAcspn]")


def strip_comments(src):
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * src.count("\n", i, j))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[A-Za-z_]\w*|\d[\w.]*|->|\S', re.S)


def call_args(src, open_pos):
    """Arguments (token lists) of the call whose '(' is at open_pos."""
    depth = 0
    args, cur = [], []
    for m in TOKEN_RE.finditer(src, open_pos):
        t = m.group()
        if t in "([{":
            depth += 1
            if depth == 1:
                continue
        elif t in ")]}":
            depth -= 1
            if depth == 0:
                args.append(cur)
                return args
        elif t == "," and depth == 1:
            args.append(cur)
            cur = []
            continue
        cur.append(t)
    return args


def unescape(lit):
    return lit.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


def literal_of(tokens, macros):
    """The joined literal of tokens, or None when they are not (only) string literals."""
    parts = []
    for t in tokens:
        if t.startswith('"'):
            parts.append(unescape(t[1:-1]))
        elif re.fullmatch(r"PRI[diouxX](?:8|16|32|64|MAX|PTR|LEAST\d+|FAST\d+)?", t):
            parts.append(t[-1] if t[3] not in "diouxX" else t[3])
        elif t in macros:
            parts.append(macros[t])
        else:
            return None
    return "".join(parts) if parts else None


def literals_of(tokens, macros):
    """All messages an argument can be: one literal, or the literal arms of a ?: choice."""
    whole = literal_of(tokens, macros)
    if whole is not None:
        return [whole]
    if "?" in tokens and ":" in tokens:
        q = tokens.index("?")
        c = len(tokens) - 1 - tokens[::-1].index(":")
        arms = [literal_of(tokens[q + 1 : c], macros), literal_of(tokens[c + 1 :], macros)]
        return [a for a in arms if a is not None]
    return []


def string_macros(files):
    macros = {}
    for path in files:
        src = strip_comments(open(path, encoding="utf-8").read())
        # a definition continued over lines with backslashes is one logical line
        src = re.sub(r'\\\n', ' ', src)
        for m in re.finditer(r'^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+((?:"(?:[^"\\\n]|\\.)*"[ \t]*)+)$',
                             src, re.M):
            lits = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(2))
            macros[m.group(1)] = "".join(unescape(s) for s in lits)
    return macros


class Message:
    def __init__(self, text, path, line, emitter, code):
        self.text = text
        self.path = path
        self.line = line
        self.emitter = emitter
        self.code = code
        self.excluded = None  # the rule that excludes it, or None

    def where(self):
        return f"{self.path}:{self.line}"


def extract(root):
    files = []
    for d in SCAN_DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, d)):
            files += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith((".c", ".h"))]
    macros = string_macros(files)
    messages, problems = [], []
    call_re = re.compile(r"\b(%s)\s*\(" % "|".join(EMITTERS))
    for path in files:
        rel = os.path.relpath(path, root)
        src = strip_comments(open(path, encoding="utf-8").read())
        for m in re.finditer(r"format\s*\(\s*printf\s*,\s*(\d+)\s*,\s*(\d+)\s*\)", src):
            if m.group(2) == "0":
                continue  # a va_list forwarder (libfuse, libmicrohttpd): their text, not ours
            after = re.search(r"(\w+)\s*\(", src[m.end() :])
            before = re.findall(r"(\w+)\s*\([^;{}]*$", src[: m.start()])
            name = before[-1] if before and before[-1] != "__attribute__" else after.group(1)
            if name not in EMITTERS and name not in NOT_EMITTERS:
                problems.append(f"{rel}: printf-like function {name}() is in neither EMITTERS "
                                "nor NOT_EMITTERS of tests/docs/check_troubleshooting.py")
        for m in call_re.finditer(src):
            name = m.group(1)
            prev = src[: m.start()].rstrip()
            if prev.endswith(("int", "void", "size_t", "*")) and re.search(
                    r"(?:static\s+)?(?:int|void|size_t)\s*\**\s*$", prev):
                continue  # the definition or declaration, not a call
            line_start = src.rfind("\n", 0, m.start()) + 1
            if src[line_start:m.start()].lstrip().startswith("#"):
                continue  # a macro such as log_error(...) itself
            args = call_args(src, m.end() - 1)
            line = src.count("\n", 0, m.start()) + 1
            if name == "fprintf":
                if not args or args[0] != ["stderr"]:
                    continue
                idx = 1
            elif name == "refuse":
                idx = 2 if len(args) >= 3 and not args[1][0].startswith('"') else 1
            else:
                idx = EMITTERS[name]
            if len(args) <= idx:
                continue
            code = " ".join(args[1]) if name in ("skr_error_set", "skr_error_reset") else ""
            texts = literals_of(args[idx], macros)
            if not texts:
                if not (rel == "common/skr_error.c" or rel == "common/log.c"):
                    problems.append(f"{rel}:{line}: {name}() with a format that is not a string "
                                    f"literal: {' '.join(args[idx])}")
                continue
            for t in texts:
                messages.append(Message(t, rel, line, name, code))
    return messages, problems


def own_text(fmt):
    return SPEC_RE.sub(" ", fmt.replace("%%", "%"))


def classify(msg):
    text = msg.text
    if msg.code.replace(" ", "") == "-ENOMEM" or "out of memory" in text:
        return "R1 resource exhaustion"
    if re.search(r"\bNULL\b", text) or re.search(r"\b[a-z_][a-z0-9_]*\(\)", text):
        return "R2 programming contract"
    if msg.emitter == "skr_error_prefix":
        return "R4 context prefix"
    if len(re.findall(r"[A-Za-z]{2,}", own_text(text))) < 2:
        return "R3 context only"
    return None


PLACEHOLDER = r".+?"


def pattern_of(fmt):
    """The regular expression a documented quotation of fmt must match."""
    fmt = fmt.strip("\r\n")
    out, pos = [], 0
    for m in re.finditer(r"%%|" + SPEC_RE.pattern, fmt):
        out.append(literal_re(fmt[pos : m.start()]))
        if m.group() == "%%":
            out.append("%")
        elif not (pos == m.start() and out[-2:-1] == [PLACEHOLDER]):
            out.append(PLACEHOLDER)  # adjacent specifiers ("%s%s") are one placeholder
        pos = m.end()
    out.append(literal_re(fmt[pos:]))
    return "".join(out).strip()


def literal_re(s):
    return r"\s+".join(re.escape(p) for p in re.split(r"\s+", s)) if s.strip() else (r"\s*" if s else "")


def doc_code(text):
    """The code of the document: fenced blocks line by line and inline code spans."""
    code, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            code.append(line)
        else:
            code += re.findall(r"`([^`]+)`", line)
    return code


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-root", default=os.environ.get("SKR_SOURCE_ROOT") or
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--list", action="store_true", help="print every message and its class")
    ap.add_argument("--missing", action="store_true", help="print only the undocumented ones")
    ap.add_argument("--pending", action="store_true", help="also print the PENDING_FILES ones")
    a = ap.parse_args()

    messages, problems = extract(a.source_root)
    with open(os.path.join(a.source_root, DOC), encoding="utf-8") as f:
        code = doc_code(f.read())

    stems = {}
    excluded = {}
    for msg in messages:
        rule = classify(msg)
        if rule:
            excluded.setdefault(rule, []).append(msg)
            continue
        stems.setdefault(pattern_of(msg.text), []).append(msg)

    missing, pending = [], []
    for pat, msgs in sorted(stems.items(), key=lambda kv: kv[1][0].where()):
        rx = re.compile(pat)
        if any(rx.search(c) for c in code):
            continue
        if all(m.path in PENDING_FILES for m in msgs):
            pending.append(msgs)
        else:
            missing.append(msgs)
    stale = sorted(f for f in PENDING_FILES
                   if not any(m.path == f for msgs in pending for m in msgs))
    for f in stale:
        problems.append(f"{f} is in PENDING_FILES but all its messages are documented: remove it")
    if a.list:
        for rule, msgs in sorted(excluded.items()):
            for msg in msgs:
                print(f"excluded {rule}: {msg.where()}: {msg.text!r}")
        for pat, msgs in stems.items():
            print(f"checked: {msgs[0].where()}: {msgs[0].text!r}")
    if a.pending:
        for msgs in pending:
            print(f"pending: {msgs[0].where()}: {msgs[0].text.strip()!r}")
    for msgs in missing:
        print(f"undocumented: {', '.join(m.where() for m in msgs)}: {msgs[0].text.strip()!r}")
    for p in problems:
        print(f"error: {p}")
    if not a.missing:
        print(f"{len(stems)} distinct user-facing messages, "
              f"{len(stems) - len(missing) - len(pending)} documented in {DOC}, "
              f"{len(missing)} undocumented, {len(pending)} pending in "
              f"{len(PENDING_FILES)} files not covered yet; excluded: " +
              ", ".join(f"{len(v)} by {k}" for k, v in sorted(excluded.items())))
    return 1 if missing or problems else 0


if __name__ == "__main__":
    sys.exit(main())
