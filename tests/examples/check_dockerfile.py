#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Dockerfile checked without a Docker engine (issue 7).

  1. Parse it: two stages or more, every base Debian 12 slim; the final stage has a HEALTHCHECK
     on /status and a CMD that is one of the image's entry points.
  2. Packages: each one the Dockerfile installs exists in Debian 12 (apt-cache), the runtime
     stage installs no -dev package or compiler, and its list installs together
     (apt-get --simulate).
  3. The build stage runs here, in a throwaway root: the build context as Docker would send it
     (.dockerignore honoured) copied in, the host's /usr (Debian 12, with the build stage's
     packages installed) bind-mounted read-only, the stage's RUN commands (apt-get omitted:
     step 2 covers them) run by chroot with its WORKDIR, in a private mount namespace.
  4. The binaries it produced: every library they link directly (ELF NEEDED) comes from a
     package the runtime stage lists or the base image has; every library ldd resolves comes
     from one of those or their dependencies.

Fails with the package to add when the code links a library the image would not have.
Needs root (mount namespace, chroot). Env: SKR_SOURCE_ROOT.
"""
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

SRC = os.path.abspath(os.environ.get("SKR_SOURCE_ROOT",
                                     os.path.join(os.path.dirname(__file__), "..", "..")))
BASES = {"debian:12-slim", "debian:bookworm-slim"}
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def parse(path):
    """[(instruction, argument text)] per stage: [{"base", "name", "steps"}]."""
    stages, line = [], ""
    with open(path) as f:
        raw = f.read().splitlines()
    logical = []
    for l in raw:
        if not line and (l.strip().startswith("#") or not l.strip()):
            continue
        if line and l.strip().startswith("#"):
            continue  # comment inside a continued instruction
        if l.rstrip().endswith("\\"):
            line += l.rstrip()[:-1] + " "
            continue
        logical.append(line + l)
        line = ""
    for l in logical:
        kw, _, arg = l.strip().partition(" ")
        kw = kw.upper()
        if kw == "FROM":
            parts = arg.split()
            stages.append({"base": parts[0], "name": parts[2] if len(parts) > 2 else None,
                           "steps": []})
        elif stages:
            stages[-1]["steps"].append((kw, arg.strip()))
        elif kw != "ARG":
            fail("%s before the first FROM" % kw)
    return stages


def apt_packages(run_arg):
    """Packages of every `apt-get install` in a RUN command."""
    pkgs = []
    for seg in re.split(r"&&|;|\|\|", run_arg):
        words = shlex.split(seg)
        if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
            for w in words[words.index("install") + 1:]:
                if not w.startswith("-"):
                    pkgs.append(w)
    return pkgs


def dockerignore_patterns():
    path = os.path.join(SRC, ".dockerignore")
    pats = []
    if os.path.exists(path):
        with open(path) as f:
            for l in f:
                l = l.strip()
                if l and not l.startswith("#"):
                    pats.append(l.rstrip("/"))
    return pats


def ignored(rel, pats):
    """Docker's matching, enough for our patterns: fnmatch with ** for any depth, per path."""
    verdict = False
    for p in pats:
        neg = p.startswith("!")
        p = p[1:] if neg else p
        regex = fnmatch.translate(p).replace(".*.*/", "(.*/)?").replace(".*.*", ".*")
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):  # a pattern matching a parent excludes the child
            if re.match(regex, "/".join(parts[:i])):
                verdict = not neg
                break
    return verdict


def copy_context(dest):
    pats = dockerignore_patterns()
    for root, dirs, files in os.walk(SRC):
        rel_root = os.path.relpath(root, SRC)
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = [d for d in dirs if not ignored(rel_root + d, pats)]
        for name in files:
            rel = rel_root + name
            if ignored(rel, pats):
                continue
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.join(SRC, rel), target, follow_symlinks=False)


def host_root(root, binds):
    """A chroot-able root: @binds of the host read-only, merged-/usr links, /dev, /proc."""
    lines = ["set -e"]
    for d in binds:
        os.makedirs(root + d, exist_ok=True)
        lines.append("mount --rbind %s %s && mount -o remount,bind,ro %s"
                     % (d, root + d, root + d))
    for link in ("bin", "sbin", "lib", "lib64"):
        if os.path.islink("/" + link) and not os.path.lexists(os.path.join(root, link)):
            os.symlink(os.readlink("/" + link), os.path.join(root, link))
    for d in ("dev", "proc", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    lines += ["mount --rbind /dev %s/dev" % root, "mount -t proc proc %s/proc" % root,
              "mount -t tmpfs tmpfs %s/tmp" % root]
    return lines


def run_build_stage(stage, root):
    copy_context(os.path.join(root, "context"))
    setup = host_root(root, ["/usr", "/etc"])
    workdir = "/"
    script = []
    for kw, arg in stage["steps"]:
        if kw == "WORKDIR":
            workdir = arg
            os.makedirs(root + arg, exist_ok=True)
        elif kw == "COPY":
            words = shlex.split(arg)
            words = [w for w in words if not w.startswith("--")]
            *srcs, dst = words
            for s in srcs:
                src = os.path.join(root, "context", s)
                if not os.path.exists(src):
                    fail("COPY %s: not in the build context (check .dockerignore)" % s)
                    continue
                target = root + (dst if dst.startswith("/") else os.path.join(workdir, dst))
                if os.path.isdir(src):
                    shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(src, target)
        elif kw == "RUN":
            if "apt-get" in arg:
                continue  # the packages: step 2 checks them, the host has them (install-deps)
            script.append("cd %s && %s" % (shlex.quote(workdir), arg))
        elif kw not in ("LABEL", "EXPOSE"):
            fail("build stage: %s is not understood by this check; extend it" % kw)
    body = "\n".join(setup + ["exec chroot %s /bin/sh -ec %s" % (root, shlex.quote(
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root\n"
        + "\n".join(script)))])
    r = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", body],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        fail("the build stage's commands failed in the throwaway root:\n%s%s"
             % (r.stdout[-3000:], r.stderr[-3000:]))
        return False
    return True


def package_of(path):
    """The Debian package owning @path (via its real path: /lib is a link to /usr/lib)."""
    for p in (path, os.path.realpath(path)):
        r = sh(["dpkg", "-S", p])
        if r.returncode == 0:
            return r.stdout.split(":")[0].split(",")[0].strip()
        if p.startswith("/usr/"):
            r = sh(["dpkg", "-S", p[4:]])
            if r.returncode == 0:
                return r.stdout.split(":")[0].split(",")[0].strip()
    return None


def closure(pkgs):
    """@pkgs with their Depends/PreDepends, recursively (apt-cache)."""
    r = sh(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
            "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + sorted(pkgs))
    out = set(pkgs)
    for l in r.stdout.splitlines():
        l = l.strip()
        if l.startswith(("Depends:", "PreDepends:")):
            name = l.split(":", 1)[1].strip().strip("<>")
            out.add(name.split(":")[0])
        elif l and not l.startswith("|") and ":" not in l and " " not in l:
            out.add(l)
    return out


def base_image_packages():
    """debian:12-slim is a minbase bootstrap: the Priority required packages, apt, and deps."""
    r = sh(["dpkg-query", "-W", "-f", "${Package} ${Priority} ${Essential}\n"])
    req = {l.split()[0] for l in r.stdout.splitlines()
           if " required " in l + " " or l.endswith(" yes")}
    return closure(req | {"apt"})


def elf_needed(path):
    r = sh(["readelf", "-d", path])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)


def ldd(path):
    r = sh(["ldd", path])
    libs = {}
    for l in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", l)
        d = re.match(r"\s*(/\S+) \(0x", l)  # the dynamic loader: an absolute path, no "=>"
        if m:
            libs[m.group(1)] = m.group(2)
        elif d:
            libs[os.path.basename(d.group(1))] = d.group(1)
        elif "not found" in l:
            fail("%s: %s" % (path, l.strip()))
    return libs


def main():
    # CHECK_DOCKERFILE: another Dockerfile against the same context (to see this check fail)
    dockerfile = os.environ.get("CHECK_DOCKERFILE", os.path.join(SRC, "Dockerfile"))
    stages = parse(dockerfile)
    if len(stages) < 2:
        fail("expected a multi-stage Dockerfile, found %d stage(s)" % len(stages))
        return
    for s in stages:
        if s["base"].split("@")[0] not in BASES:
            fail("base image %s: use debian:12-slim" % s["base"])
    build, final = stages[0], stages[-1]
    hc = [a for k, a in final["steps"] if k == "HEALTHCHECK"]
    if not hc:
        fail("the final stage has no HEALTHCHECK")
    else:
        cmd = hc[0]
        scripts = re.findall(r"/([\w.-]+\.sh)", cmd)
        text = cmd + "".join(open(os.path.join(SRC, "container", s)).read() for s in scripts
                             if os.path.exists(os.path.join(SRC, "container", s)))
        if "/status" not in text:
            fail("the HEALTHCHECK does not query /status")
    cmds = [a for k, a in final["steps"] if k in ("CMD", "ENTRYPOINT")]
    if not cmds:
        fail("the final stage has no CMD or ENTRYPOINT")
    for c in cmds:
        for s in re.findall(r"/([\w.-]+\.sh)", c):
            if not os.access(os.path.join(SRC, "container", s), os.X_OK):
                fail("CMD %s: container/%s is missing or not executable" % (c, s))

    build_pkgs = [p for k, a in build["steps"] if k == "RUN" for p in apt_packages(a)]
    runtime_pkgs = [p for k, a in final["steps"] if k == "RUN" for p in apt_packages(a)]
    if not build_pkgs or not runtime_pkgs:
        fail("no apt-get install found in the build or the runtime stage")
    for p in sorted(set(build_pkgs + runtime_pkgs)):
        if sh(["apt-cache", "show", "--no-all-versions", p]).returncode != 0:
            fail("package %s does not exist in Debian 12" % p)
    for p in runtime_pkgs:
        if p.endswith("-dev") or p in ("gcc", "clang", "meson", "ninja-build", "make"):
            fail("runtime stage installs build package %s" % p)
    for p in build_pkgs:
        r = sh(["dpkg-query", "-W", "-f", "${Status}", p])
        if "install ok installed" not in r.stdout:
            fail("build package %s is not installed here: add it to tools/install-deps.sh" % p)
    r = sh(["apt-get", "--simulate", "--no-install-recommends", "install"] + runtime_pkgs)
    if r.returncode != 0:
        fail("the runtime packages do not install together:\n" + r.stdout + r.stderr)

    tmp = tempfile.mkdtemp(prefix="check_dockerfile.")
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        if not run_build_stage(build, root):
            return
        out_dirs = set()
        for k, a in final["steps"]:
            if k == "COPY" and "--from=" in a:
                words = [w for w in shlex.split(a) if not w.startswith("--")]
                out_dirs.update(root + w for w in words[:-1])
        binaries = []
        for d in sorted(out_dirs):
            for dirpath, _, files in os.walk(d):
                for name in files:
                    p = os.path.join(dirpath, name)
                    with open(p, "rb") as f:
                        if f.read(4) == b"\x7fELF":
                            binaries.append(p)
        names = sorted(os.path.basename(b) for b in binaries)
        print("binaries in the image: %s" % ", ".join(names))
        for want in ("confidential-sidecar", "importkey", "generatefs"):
            if want not in names:
                fail("the image has no %s" % want)

        base = base_image_packages()
        listed = set(runtime_pkgs)
        available = closure(listed | base) | base
        for b in binaries:
            libs = ldd(b)
            for soname in elf_needed(b):
                path = libs.get(soname)
                pkg = package_of(path) if path else None
                if not pkg:
                    fail("%s links %s, owned by no Debian package" % (b, soname))
                elif pkg not in listed and pkg not in base:
                    fail("%s links %s from package %s, which the runtime stage does not "
                         "install: add it to the Dockerfile's runtime apt-get install"
                         % (os.path.basename(b), soname, pkg))
            for soname, path in libs.items():
                pkg = package_of(path)
                if pkg and pkg not in available:
                    fail("%s needs %s (package %s) which neither the runtime packages nor "
                         "their dependencies provide" % (os.path.basename(b), soname, pkg))
        if not failures:
            print("runtime packages cover every library of %d binaries" % len(binaries))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: needs root (mount namespace, chroot)")
        sys.exit(77)
    main()
    if failures:
        print("%d problem(s)" % len(failures), file=sys.stderr)
        sys.exit(1)
    print("Dockerfile OK")
