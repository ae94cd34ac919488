#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An application container's side of secure key release (examples/skr/README.md).

Runs next to the confidential-sidecar in a confidential container group and talks to its SKR
API on localhost (standard library only: any python3 image works):

  1. waits until GET /status answers;
  2. POST /attest/maa: an attestation token from the attestation service, bound to this app's
     runtime data; prints the claims a key release policy tests;
  3. POST /key/release (when --kid is given): the key, released by Key Vault only if the token's
     claims satisfy the key's policy; prints its type, operations and fingerprint — never the
     key — and would hand the key to the application here.

Options may also come from the environment (SIDECAR_URL, MAA_ENDPOINT, AKV_ENDPOINT, KID), which
is how container templates pass them. Exit 0 on success, 1 when the sidecar refuses (its error
is printed: which claim failed, which endpoint is not allowed), 2 for a bad command line.
"""
import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request

# The claims release policies bind (importkeyconfig.json "claims").
POLICY_CLAIMS = (
    "x-ms-attestation-type",
    "x-ms-compliance-status",
    "x-ms-sevsnpvm-hostdata",
    "x-ms-sevsnpvm-is-debuggable",
    "x-ms-sevsnpvm-vmpl",
)


class SidecarError(Exception):
    pass


def call(base, method, path, body=None, timeout=180):
    """One API call: (HTTP status, decoded JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"error": raw.decode(errors="replace")[:300]}


def wait_for_sidecar(base, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, body = call(base, "GET", "/status", timeout=5)
            if status == 200:
                return body
        except (urllib.error.URLError, OSError) as e:
            last = e
        else:
            last = "HTTP %d" % status
        if time.monotonic() >= deadline:
            raise SidecarError("the sidecar at %s did not answer in %d s: %s" % (base, seconds, last))
        time.sleep(0.5)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def attest(base, maa, runtime):
    status, body = call(base, "POST", "/attest/maa", {
        "maa_endpoint": maa,
        "runtime_data": base64.b64encode(json.dumps(runtime).encode()).decode(),
    })
    if status != 200 or not body.get("token"):
        raise SidecarError("attestation failed (HTTP %d): %s" % (status, body.get("error", body)))
    # The app only reads the claims here; a relying party verifies the token's signature
    # against the attestation service's published keys before trusting it.
    return json.loads(b64url_decode(body["token"].split(".")[1]))


def release(base, maa, akv, kid):
    status, body = call(base, "POST", "/key/release",
                        {"maa_endpoint": maa, "akv_endpoint": akv, "kid": kid})
    if status != 200 or "key" not in body:
        raise SidecarError("key release failed (HTTP %d): %s" % (status, body.get("error", body)))
    return json.loads(body["key"])  # a JWK serialized as a JSON string


def fingerprint(material):
    """importkey's and the sidecar's key fingerprint: identifies a key without revealing it."""
    digest = hashlib.sha256(b"confidential-sidecar key fingerprint v1\x00" + material).hexdigest()
    return "sha256:" + digest[:32]


def describe(jwk):
    out = {"kty": jwk.get("kty"), "key_ops": jwk.get("key_ops", [])}
    if jwk.get("kty") == "oct":
        k = b64url_decode(jwk["k"])
        out["bytes"] = len(k)
        out["fingerprint"] = fingerprint(k)
    elif jwk.get("kty") == "RSA":
        n = b64url_decode(jwk["n"])
        out["modulus_bits"] = int.from_bytes(n, "big").bit_length()
        out["public_key_sha256"] = hashlib.sha256(n).hexdigest()
    return out


def main():
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sidecar", default=env("SIDECAR_URL", "http://localhost:8080"),
                    help="the sidecar's API (default http://localhost:8080)")
    ap.add_argument("--maa-endpoint", default=env("MAA_ENDPOINT"),
                    help="attestation service host, e.g. sharedeus2.eus2.attest.azure.net")
    ap.add_argument("--akv-endpoint", default=env("AKV_ENDPOINT"),
                    help="key vault or managed HSM host, e.g. myvault.vault.azure.net")
    ap.add_argument("--kid", default=env("KID"), help="the key to release (omit: attest only)")
    ap.add_argument("--wait", type=int, default=120, help="seconds to wait for the sidecar")
    args = ap.parse_args()
    if not args.maa_endpoint:
        ap.error("--maa-endpoint (or MAA_ENDPOINT) is required")
    if args.kid and not args.akv_endpoint:
        ap.error("--kid needs --akv-endpoint (or AKV_ENDPOINT)")
    base = args.sidecar.rstrip("/")

    try:
        status = wait_for_sidecar(base, args.wait)
        print("sidecar status: %s" % json.dumps(status))
        runtime = {"app": "skr-example", "nonce": secrets.token_hex(16)}
        claims = attest(base, args.maa_endpoint, runtime)
        print("attestation token claims:")
        for name in POLICY_CLAIMS:
            if name in claims:
                print("  %-28s %s" % (name, json.dumps(claims[name])))
        # The runtime data comes back in the token: proof that this token is for this request.
        print("  %-28s %s" % ("x-ms-runtime", json.dumps(claims.get("x-ms-runtime"))))
        if args.kid:
            jwk = release(base, args.maa_endpoint, args.akv_endpoint, args.kid)
            print("released key %s: %s" % (args.kid, json.dumps(describe(jwk))))
            # Here the application would use the key (decrypt its data, unwrap a secret);
            # drop the reference as soon as it is no longer needed.
            del jwk
    except SidecarError as e:
        print("skr-app: %s" % e, file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        print("skr-app: unexpected answer from the sidecar: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
