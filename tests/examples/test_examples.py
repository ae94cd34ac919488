#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every example of examples/ exercised (issue 7):

  configs   every JSON and YAML file parses; the ACI templates and Kubernetes manifests have the
            shape a confidential deployment needs (sku Confidential with a ccePolicy slot,
            kata-cc-isolation, the shared /mnt/remote volume and its mount propagation, the
            image's entry points); each EncfsSideCarArgs / SkrSideCarArgs document, base64'd as a
            container group passes it, is accepted by `confidential-sidecar --print-config`
            without an unknown-field warning; each importkeyconfig.json gives a release policy
            with the four claims (importkey --print-policy-only);
  e2e       devcloud (attestation, key vault, IMDS) + the virtual SEV-SNP platform + the real
            sidecar daemon started through the image's /skr.sh and judged by /healthcheck.sh:
            examples/skr/skr-app.py attests and releases a key (fingerprint equal to importkey's)
            and reports a refused release; examples/model-decrypt decrypts models under oct and
            RSA keys (the RSA derivation pinned by the HKDF vector of protocols.md 7.6), refuses
            a wrong key and a modified file, hands the model to a command on fd 3, and leaves no
            plaintext file behind.

Needs env SKR_SOURCE_ROOT, SKR_TESTDATA, SIDECAR_BIN, DEVCLOUD_BIN, IMPORTKEY_BIN,
ENCRYPT_MODEL_BIN, MODEL_DECRYPT_BIN (meson sets them). Every process started is stopped.
"""
import base64
import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import yaml  # python3-yaml (Debian)

SRC = os.environ.get("SKR_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(SRC, "examples")
CONTAINER = os.path.join(SRC, "container")
POLICY_CLAIMS = {
    "x-ms-sevsnpvm-hostdata",
    "x-ms-compliance-status",
    "x-ms-sevsnpvm-is-debuggable",
    "x-ms-sevsnpvm-vmpl",
}


def env_bin(name):
    path = os.environ.get(name)
    if not path or not os.access(path, os.X_OK):
        raise unittest.SkipTest("%s is not set (run through meson test)" % name)
    return path


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run(argv, **kw)


def example_files(*patterns):
    out = []
    for p in patterns:
        out += glob.glob(os.path.join(EXAMPLES, "**", p), recursive=True)
    return sorted(out)


class Configs(unittest.TestCase):
    def test_every_json_and_yaml_parses(self):
        jsons = example_files("*.json")
        yamls = example_files("*.yaml", "*.yml")
        self.assertGreaterEqual(len(jsons), 8)
        self.assertGreaterEqual(len(yamls), 2)
        for f in jsons:
            with self.subTest(file=f), open(f) as fh:
                json.load(fh)
        for f in yamls:
            with self.subTest(file=f), open(f) as fh:
                docs = [d for d in yaml.safe_load_all(fh) if d is not None]
                self.assertTrue(docs, "no document in %s" % f)
                for d in docs:
                    self.assertIn("apiVersion", d)
                    self.assertIn("kind", d)

    def aci_group(self, path):
        with open(path) as f:
            t = json.load(f)
        groups = [r for r in t["resources"]
                  if r["type"] == "Microsoft.ContainerInstance/containerGroups"]
        self.assertEqual(len(groups), 1, path)
        g = groups[0]["properties"]
        self.assertEqual(g["sku"].lower(), "confidential")
        # left empty for `az confcom acipolicygen`, which writes the policy there
        self.assertIn("ccePolicy", g["confidentialComputeProperties"])
        # every parameter used is declared, every declared one is given in aci-parameters.json
        used = set()
        text = json.dumps(t)
        for name in t["parameters"]:
            if "parameters('%s')" % name in text:
                used.add(name)
        self.assertEqual(used, set(t["parameters"]), "declared but unused parameters")
        with open(os.path.join(os.path.dirname(path), "aci-parameters.json")) as f:
            given = json.load(f)["parameters"]
        for name, spec in t["parameters"].items():
            if "defaultValue" not in spec:
                self.assertIn(name, given, "%s: required parameter %s" % (path, name))
        return {c["name"]: c["properties"] for c in g["containers"]}, g

    def entry_point(self, command):
        script = os.path.join(CONTAINER, os.path.basename(command[0]))
        self.assertTrue(os.access(script, os.X_OK), "the image has no %s" % command[0])

    def test_encfs_aci_template(self):
        containers, g = self.aci_group(os.path.join(EXAMPLES, "encfs", "aci-arm-template.json"))
        side = containers["encfs-sidecar"]
        self.assertEqual(side["command"], ["/encfs.sh"])
        self.entry_point(side["command"])
        self.assertTrue(side["securityContext"]["privileged"])
        self.assertIn("EncfsSideCarArgs", [e["name"] for e in side["environmentVariables"]])
        vols = {v["name"]: v for v in g["volumes"]}
        for name, c in containers.items():
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            self.assertIn("/mnt/remote", mounts, name)
            self.assertIn("emptyDir", vols[mounts["/mnt/remote"]])

    def test_skr_aci_template(self):
        containers, g = self.aci_group(os.path.join(EXAMPLES, "skr", "aci-arm-template.json"))
        side = containers["skr-sidecar"]
        self.assertEqual(side["command"], ["/skr.sh"])
        self.entry_point(side["command"])
        self.assertNotIn("securityContext", side)  # key release needs no privilege
        app = containers["app"]
        self.assertEqual(app["command"][-1], "/app/skr-app.py")
        secret = {v["name"]: v for v in g["volumes"]}["app"]["secret"]
        self.assertIn("skr-app.py", secret)

    def pod(self, path):
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        pods = [d for d in docs if d["kind"] == "Pod"]
        self.assertEqual(len(pods), 1)
        spec = pods[0]["spec"]
        self.assertEqual(spec["runtimeClassName"], "kata-cc-isolation")
        sa = [d for d in docs if d["kind"] == "ServiceAccount"]
        self.assertEqual([s["metadata"]["name"] for s in sa], [spec["serviceAccountName"]])
        return {c["name"]: c for c in spec["containers"]}, {v["name"]: v for v in spec["volumes"]}

    def test_encfs_kata_manifest(self):
        containers, vols = self.pod(os.path.join(EXAMPLES, "encfs", "kata-cc.yaml"))
        side, app = containers["encfs-sidecar"], containers["app"]
        self.entry_point(side["command"])
        self.assertTrue(side["securityContext"]["privileged"])
        self.assertEqual(side["readinessProbe"]["exec"]["command"], ["/healthcheck.sh"])
        mounts = {m["mountPath"]: m for m in side["volumeMounts"]}
        self.assertEqual(mounts["/mnt/remote"]["mountPropagation"], "Bidirectional")
        self.assertEqual(vols[mounts["/dev/fuse"]["name"]]["hostPath"]["path"], "/dev/fuse")
        app_mount = {m["mountPath"]: m for m in app["volumeMounts"]}["/mnt/remote"]
        self.assertEqual(app_mount["mountPropagation"], "HostToContainer")
        self.assertEqual(app_mount["name"], mounts["/mnt/remote"]["name"])
        self.assertIn("emptyDir", vols[app_mount["name"]])

    def test_skr_kata_manifest(self):
        containers, vols = self.pod(os.path.join(EXAMPLES, "skr", "kata-cc.yaml"))
        self.entry_point(containers["skr-sidecar"]["command"])
        self.assertEqual(vols["app"]["configMap"]["name"], "skr-app")

    def print_config(self, var, path):
        sidecar = env_bin("SIDECAR_BIN")
        with open(path, "rb") as f:
            doc = f.read()
        env = {k: v for k, v in os.environ.items()
               if k not in ("SkrSideCarArgs", "EncfsSideCarArgs", "Port", "LogFile", "LogLevel")}
        env[var] = b64(doc)
        r = run([sidecar, "--print-config"], env=env)
        self.assertEqual(r.returncode, 0, "%s: %s" % (path, r.stderr))
        # a typo in an example would be a silently ignored field: the warning names it
        self.assertNotIn("unknown field", r.stderr, path)
        return json.loads(r.stdout)

    def test_encfs_sidecar_args(self):
        files = example_files("encfs-sidecar-args*.json")
        self.assertTrue(files)
        for f in files:
            with self.subTest(file=f):
                cfg = self.print_config("EncfsSideCarArgs", f)
                self.assertTrue(cfg["azure_filesystems"])
                for fs in cfg["azure_filesystems"]:
                    self.assertTrue(fs["mount_point"].startswith("/mnt/remote/"))
                    self.assertIn(fs["key"]["authority"]["endpoint"],
                                  cfg["allowed_endpoints"]["attestation"])

    def test_skr_sidecar_args(self):
        files = example_files("skr-sidecar-args*.json")
        self.assertTrue(files)
        for f in files:
            with self.subTest(file=f):
                cfg = self.print_config("SkrSideCarArgs", f)
                # without an allowlist /key/release refuses every request
                self.assertTrue(cfg["allowed_endpoints"]["attestation"])
                self.assertTrue(cfg["allowed_endpoints"]["key_vault"])

    def test_importkey_configs(self):
        importkey = env_bin("IMPORTKEY_BIN")
        files = example_files("importkeyconfig*.json")
        self.assertGreaterEqual(len(files), 2)
        for f in files:
            with self.subTest(file=f):
                r = run([importkey, "-c", f, "--print-policy-only"])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertNotIn("warning", r.stderr.lower())
                policy = json.loads(r.stdout[r.stdout.index("{"):])
                claims = {c["claim"] for alt in policy["anyOf"] for c in alt["allOf"]}
                self.assertTrue(POLICY_CLAIMS <= claims, claims)

    def test_readmes_link_what_exists(self):
        for readme in example_files("README.md"):
            with open(readme) as f:
                text = f.read()
            for target in __import__("re").findall(r"\]\(([^)#:]+)\)", text):
                with self.subTest(readme=readme, link=target):
                    self.assertTrue(os.path.exists(os.path.join(os.path.dirname(readme),
                                                                target)))

    def test_container_scripts_are_posix_sh(self):
        for s in ("skr.sh", "encfs.sh", "healthcheck.sh"):
            with self.subTest(script=s):
                path = os.path.join(CONTAINER, s)
                self.assertTrue(os.access(path, os.X_OK))
                self.assertEqual(run(["sh", "-n", path]).returncode, 0)

    def test_encfs_sh_needs_its_args(self):
        r = run(["sh", os.path.join(CONTAINER, "encfs.sh")], env={"PATH": "/usr/bin:/bin"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("EncfsSideCarArgs is not set", r.stderr)

    def test_skr_sh_refuses_grpc(self):
        r = run(["sh", os.path.join(CONTAINER, "skr.sh")],
                env={"PATH": "/usr/bin:/bin", "ServerType": "grpc"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("HTTP API only", r.stderr)


def free_port():
    """A port free on 127.0.0.1 and ::1 (the daemon listens on both)."""
    for _ in range(50):
        s4 = socket.socket(socket.AF_INET)
        s4.bind(("127.0.0.1", 0))
        port = s4.getsockname()[1]
        try:
            s6 = socket.socket(socket.AF_INET6)
            s6.bind(("::1", port))
            s6.close()
        except OSError as e:
            if e.errno == 98:
                s4.close()
                continue
        s4.close()
        return port
    raise RuntimeError("no free port")


class EndToEnd(unittest.TestCase):
    """devcloud + virtual SNP + the sidecar daemon, as a container group runs them."""

    procs = []

    @classmethod
    def start(cls, argv, log, **kw):
        with open(log, "ab") as err:
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, **kw)
        cls.procs.append(p)
        return p

    @classmethod
    def setUpClass(cls):
        cls.sidecar = env_bin("SIDECAR_BIN")
        cls.devcloud = env_bin("DEVCLOUD_BIN")
        cls.importkey = env_bin("IMPORTKEY_BIN")
        cls.encrypt = env_bin("ENCRYPT_MODEL_BIN")
        cls.decrypt = env_bin("MODEL_DECRYPT_BIN")
        cls.tmp = tempfile.mkdtemp(prefix="test_examples.")
        try:
            cls.set_up()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def set_up(cls):
        t = cls.tmp
        policy = os.path.join(t, "ccepolicy.rego")
        with open(policy, "w") as f:
            f.write("package policy\n# examples test\n")
        with open(policy, "rb") as f:
            cls.host_data = hashlib.sha256(f.read()).hexdigest()
        state = os.path.join(t, "devcloud")
        r = run([cls.devcloud, "init", "--state", state, "--security-policy", policy])
        assert r.returncode == 0, r.stderr
        cls.start([cls.devcloud, "serve", "--state", state, "--attest-port", "0",
                   "--kv-port", "0", "--imds-port", "0"], os.path.join(t, "devcloud.log"))
        endpoints = os.path.join(state, "endpoints.json")
        for _ in range(300):
            if os.path.exists(endpoints) and os.path.getsize(endpoints):
                break
            time.sleep(0.1)
        with open(endpoints) as f:
            ep = json.load(f)
        cls.maa = "localhost:%d" % ep["attest_port"]
        cls.akv = "localhost:%d" % ep["kv_port"]
        cls.imds = "http://127.0.0.1:%d" % ep["imds_port"]
        cls.ca = os.path.join(state, "ca.pem")
        cls.platform = os.path.join(state, "platform")

        # The model: a vendor's file, never seen in clear inside the "TEE" directory below.
        cls.model = os.path.join(t, "vendor", "model.bin")
        os.makedirs(os.path.dirname(cls.model))
        with open(cls.model, "wb") as f:
            f.write(os.urandom(3 * 1024 * 1024 + 17))
        with open(cls.model, "rb") as f:
            cls.model_sha = hashlib.sha256(f.read()).hexdigest()

        # The sidecar through the image's entry point, with the Go script's positional args.
        cls.port = free_port()
        skr_args = {
            "certcache": {"endpoint_type": "AMD"},
            "attestation_source": "virtual", "virtual_platform_dir": cls.platform,
            "ca_bundle": cls.ca, "imds_endpoint": cls.imds,
            "allowed_endpoints": {"attestation": [cls.maa], "key_vault": [cls.akv]},
        }
        env = dict(os.environ, PATH=os.path.dirname(cls.sidecar) + ":" + os.environ["PATH"],
                   LogFile=os.path.join(t, "sidecar.log"), LogLevel="debug")
        env.pop("Port", None)
        env.pop("SkrSideCarArgs", None)
        cls.daemon = cls.start(["sh", os.path.join(CONTAINER, "skr.sh"),
                                b64(json.dumps(skr_args)), str(cls.port)],
                               os.path.join(t, "sidecar.err"), env=env)
        cls.url = "http://localhost:%d" % cls.port
        for _ in range(300):
            assert cls.daemon.poll() is None, open(os.path.join(t, "sidecar.err")).read()
            try:
                urllib.request.urlopen(cls.url + "/status", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        cls.procs = []
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def import_key(self, kid, kty, key_args=(), host_data=None, extra=None):
        """importkey with the examples' claims, bound to this platform (or @host_data)."""
        with open(os.path.join(EXAMPLES, "encfs", "importkeyconfig.json")) as f:
            cfg = json.load(f)
        cfg["key"].update({"kid": kid, "kty": kty})
        cfg["key"]["authority"]["endpoint"] = self.maa
        cfg["key"]["akv"]["endpoint"] = self.akv
        for c in cfg["claims"][0]:
            if c["claim"] == "x-ms-sevsnpvm-hostdata":
                c["equals"] = host_data or self.host_data
        cfg.update(extra or {})
        work = tempfile.mkdtemp(dir=self.tmp, prefix="import.")
        path = os.path.join(work, "importkeyconfig.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = run([self.importkey, "-c", path, "-a", "--imds-endpoint", self.imds,
                 "--ca-bundle", self.ca] + list(key_args), cwd=work)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def skr_app(self, *args):
        return run([sys.executable, os.path.join(EXAMPLES, "skr", "skr-app.py"),
                    "--sidecar", self.url, "--maa-endpoint", self.maa, "--wait", "30"]
                   + list(args))

    def test_healthcheck_reports_ready(self):
        r = run(["sh", os.path.join(CONTAINER, "healthcheck.sh")],
                env=dict(os.environ, Port=str(self.port)))
        self.assertEqual(r.returncode, 0, r.stderr)
        # and unhealthy when nothing answers
        r = run(["sh", os.path.join(CONTAINER, "healthcheck.sh")],
                env=dict(os.environ, Port=str(free_port())))
        self.assertEqual(r.returncode, 1)

    def test_skr_app_attests_and_releases(self):
        out = self.import_key("skr-app-key", "oct-HSM")
        imported = [w for w in out.split() if w.startswith("sha256:")][0]
        r = self.skr_app("--akv-endpoint", self.akv, "--kid", "skr-app-key")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn('x-ms-sevsnpvm-hostdata       "%s"' % self.host_data, r.stdout)
        self.assertIn('x-ms-compliance-status       "azure-compliant-uvm"', r.stdout)
        self.assertIn('"skr-example"', r.stdout)  # the runtime data came back in the token
        line = [l for l in r.stdout.splitlines() if l.startswith("released key skr-app-key")][0]
        released = json.loads(line.split(": ", 1)[1])
        self.assertEqual(released["kty"], "oct")
        self.assertEqual(released["fingerprint"], imported)

    def test_skr_app_attest_only(self):
        r = self.skr_app()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("released key", r.stdout)

    def test_skr_app_reports_refusal(self):
        self.import_key("skr-app-other-group", "oct-HSM", host_data="ab" * 32)
        r = self.skr_app("--akv-endpoint", self.akv, "--kid", "skr-app-other-group")
        self.assertEqual(r.returncode, 1)
        self.assertIn("key release failed (HTTP 403)", r.stderr)
        self.assertIn("x-ms-sevsnpvm-hostdata", r.stderr)
        # an endpoint outside the allowlist: refused before any token is fetched
        r = self.skr_app("--akv-endpoint", "evil.vault.azure.net", "--kid", "skr-app-key")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 403", r.stderr)

    def model_decrypt(self, enc, kid, *args, cwd=None):
        return run([self.decrypt, "--sidecar", self.url, "--maa-endpoint", self.maa,
                    "--akv-endpoint", self.akv, "--kid", kid, "--model", enc, "--wait", "30"]
                   + list(args), cwd=cwd)

    def assert_decrypted(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        summary = json.loads(r.stdout)
        self.assertEqual(summary["plaintext_sha256"], self.model_sha)
        self.assertEqual(summary["plaintext_bytes"], os.path.getsize(self.model))
        return summary

    def tee_dir(self):
        """The app's working directory: must hold no plaintext afterwards."""
        return tempfile.mkdtemp(dir=self.tmp, prefix="tee.")

    def assert_no_plaintext(self, d):
        with open(self.model, "rb") as f:
            needle = f.read(4096)
        for root, _, files in os.walk(d):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    self.assertNotIn(needle, f.read(), name)

    def test_model_oct_key(self):
        vendor = tempfile.mkdtemp(dir=self.tmp, prefix="vendor.")
        key, enc = os.path.join(vendor, "model.key"), os.path.join(vendor, "model.enc")
        r = run([self.encrypt, "--generate-key", key, "--in", self.model, "--out", enc])
        self.assertEqual(r.returncode, 0, r.stderr)
        vendor_fp = json.loads(r.stdout)["key_fingerprint"]
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        self.assertEqual(os.path.getsize(enc), os.path.getsize(self.model) + 40)
        self.import_key("model-oct", "oct-HSM", ["-kh", key])
        tee = self.tee_dir()
        r = self.model_decrypt(enc, "model-oct", cwd=tee)
        summary = self.assert_decrypted(r)
        self.assertEqual(summary["key_fingerprint"], vendor_fp)
        self.assertTrue(summary["in_memory_only"])
        self.assert_no_plaintext(tee)

        # handed to the "inference server" on fd 3, read-only and sealed
        r = self.model_decrypt(enc, "model-oct", "--", "sh", "-c",
                               'sha256sum "$MODEL_PATH" && [ "$MODEL_FD" = 3 ] && '
                               '! (echo x >> "$MODEL_PATH") 2>/dev/null', cwd=tee)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[0], self.model_sha)
        self.assert_no_plaintext(tee)

        # a modified file fails authentication: nothing decrypted is used
        bad = os.path.join(vendor, "tampered.enc")
        with open(enc, "rb") as f:
            data = bytearray(f.read())
        data[1000] ^= 1
        with open(bad, "wb") as f:
            f.write(data)
        r = self.model_decrypt(bad, "model-oct", cwd=tee)
        self.assertEqual(r.returncode, 1)
        self.assertIn("failed authentication", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_model_wrong_key(self):
        vendor = tempfile.mkdtemp(dir=self.tmp, prefix="vendor.")
        enc = os.path.join(vendor, "model.enc")
        r = run([self.encrypt, "--generate-key", os.path.join(vendor, "k"), "--in", self.model,
                 "--out", enc])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.import_key("model-other", "oct-HSM")  # a different, generated key
        r = self.model_decrypt(enc, "model-other")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not the one it was encrypted with", r.stderr)

    def test_model_refused_release(self):
        vendor = tempfile.mkdtemp(dir=self.tmp, prefix="vendor.")
        key, enc = os.path.join(vendor, "k"), os.path.join(vendor, "model.enc")
        run([self.encrypt, "--generate-key", key, "--in", self.model, "--out", enc])
        self.import_key("model-elsewhere", "oct-HSM", ["-kh", key], host_data="cd" * 32)
        r = self.model_decrypt(enc, "model-elsewhere")
        self.assertEqual(r.returncode, 1)
        self.assertIn("key release failed (HTTP 403)", r.stderr)

    def test_model_rsa_key_hkdf_vector(self):
        """An RSA key released as a JWK gives the AES key of protocols.md 7.6's vector."""
        with open(os.path.join(os.environ["SKR_TESTDATA"], "rsa_aes_keywrap_vector.json")) as f:
            pem = json.load(f)["private_key_pem"]
        with open(os.path.join(os.environ["SKR_TESTDATA"], "hkdf_vectors.json")) as f:
            vectors = json.load(f)["derived"]
        salt = "92a631483ca875aad7e2477da755d58cac3876b77d10bcdd7b33bfa11e7d8b8e"
        label = "Model Encryption Key"
        vendor = tempfile.mkdtemp(dir=self.tmp, prefix="vendor.")
        pem_path = os.path.join(vendor, "model-rsa.pem")
        with open(os.open(pem_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(pem)
        self.import_key("model-rsa", "RSA-HSM", ["-kp", pem_path])
        # 1. encrypted under the vector's expected key (independent of our derivation code)
        hexkey = os.path.join(vendor, "vector.hex")
        with open(hexkey, "w") as f:
            f.write(vectors[salt + "|" + label] + "\n")
        enc1 = os.path.join(vendor, "vector.enc")
        r = run([self.encrypt, "--key-file", hexkey, "--in", self.model, "--out", enc1])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.model_decrypt(enc1, "model-rsa", "--salt", salt, "--label", label)
        self.assert_decrypted(r)
        # 2. encrypt-model deriving from the PEM gives the same key
        enc2 = os.path.join(vendor, "derived.enc")
        r = run([self.encrypt, "--rsa-key", pem_path, "--salt", salt, "--label", label,
                 "--in", self.model, "--out", enc2])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["key_type"], "RSA")
        self.assert_decrypted(self.model_decrypt(enc2, "model-rsa", "--salt", salt,
                                                 "--label", label))
        # 3. another label derives another key: authentication fails
        r = self.model_decrypt(enc2, "model-rsa", "--salt", salt)
        self.assertEqual(r.returncode, 1)
        self.assertIn("failed authentication", r.stderr)


class ModelTools(unittest.TestCase):
    """encrypt-model and model-decrypt refuse bad input before touching a key."""

    def setUp(self):
        self.encrypt = env_bin("ENCRYPT_MODEL_BIN")
        self.decrypt = env_bin("MODEL_DECRYPT_BIN")
        self.tmp = tempfile.mkdtemp(prefix="test_examples_tools.")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, name, data=None):
        p = os.path.join(self.tmp, name)
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
        return p

    def test_encrypt_refusals(self):
        model = self.path("m", b"weights")
        key = self.path("k", os.urandom(32))
        cases = [
            ([], "--in MODEL and --out ENCRYPTED are required"),
            (["--in", model, "--out", self.path("o")], "exactly one of"),
            (["--in", model, "--out", self.path("o"), "--key-file", key, "--salt", "00"],
             "an oct key is used as is"),
            (["--in", model, "--out", self.path("o"), "--key-file", self.path("short", b"x")],
             "expected 32 bytes or 64 hex digits"),
            (["--in", self.path("empty", b""), "--out", self.path("o"), "--key-file", key],
             "is empty"),
            (["--in", model, "--out", model, "--key-file", key], "exists"),
            (["--in", model, "--out", self.path("o"), "--rsa-key", key], "not an unencrypted RSA"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                r = run([self.encrypt] + args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(msg, r.stderr)
                self.assertFalse(os.path.exists(self.path("o")))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["empty", "k", "m", "short"])

    def test_decrypt_refuses_bad_files_before_release(self):
        good = bytearray(b"CSMODEL\0\x01\0\0\0" + bytes(12) + b"c" + bytes(16))
        cases = [
            (b"plain weights, not encrypted", "no \"CSMODEL\" magic"),
            (b"CSMODEL\0\x01\0\0", "truncated in its header"),
            (bytes(good[:8]) + b"\x02" + bytes(good[9:]), "version 2"),
            (bytes(good[:9]) + b"\x01" + bytes(good[10:]), "reserved bytes"),
            (bytes(good[:-1]), "truncated"),
        ]
        for data, msg in cases:
            with self.subTest(msg=msg):
                # no sidecar at this URL: a refusal must come before any request
                r = run([self.decrypt, "--model", self.path("f", data), "--kid", "k",
                         "--maa-endpoint", "m", "--akv-endpoint", "a",
                         "--sidecar", "http://127.0.0.1:1", "--wait", "0"])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(msg, r.stderr)

    def test_decrypt_reports_absent_sidecar(self):
        key = self.path("k", os.urandom(32))
        enc = self.path("m.enc")
        r = run([self.encrypt, "--in", self.path("m", b"w"), "--out", enc, "--key-file", key])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run([self.decrypt, "--model", enc, "--kid", "k", "--maa-endpoint", "m",
                 "--akv-endpoint", "a", "--sidecar", "http://127.0.0.1:1", "--wait", "1"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("did not answer in 1 s", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
