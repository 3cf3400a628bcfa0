"""TLS on the HTTP API, end to end: tm serve (and tm frontend) with --tls-cert/--tls-key
[--tls-client-ca], and the clients: tm query/stats --server https://... --ca [--cert --key],
curl, and a front-end whose worker is https://. The certificates (a CA, a server certificate
for 127.0.0.1 and localhost, a client certificate, and a second CA that signed none of them)
are made with the openssl command in the test's temporary directory.

No namespaces needed: everything listens on 127.0.0.1."""
import json
import os
import select
import shutil
import socket
import subprocess
import time
import unittest

from tmtest import listening_port, TM, StoreTest, TmProcess, corpus, record, run, tm, read_pcap

REPLAY = corpus("mixed", "bro.org.pcap")
WAIT = 60
FILTER = "tcp port 80"


def openssl(*args, cwd):
    run(["openssl"] + list(args), cwd=cwd)


def make_pki(d):
    """ca.pem/ca.key, server.pem/server.key (127.0.0.1, ::1, localhost), client.pem/client.key
    (signed by ca), other-ca.pem (a CA that signed nothing here), wrongname.pem/.key (signed by
    ca, for other.example only), expired.pem/.key (signed by ca, expired in 2020)."""
    def ca(name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=tm test " + name,
                cwd=d)

    def leaf(name, cn, ext):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", name + ".pem", "-extfile", name + ".ext", cwd=d)

    ca("ca")
    ca("other-ca")
    leaf("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    leaf("client", "tm test client", "extendedKeyUsage=clientAuth\n")
    leaf("wrongname", "other.example", "subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n")
    # expired.pem/.key: valid on 1 January 2020 only.
    with open(os.path.join(d, "expired.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
                "default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("01\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "expired.key",
            "-out", "expired.csr", "-subj", "/CN=expired", cwd=d)
    openssl("ca", "-batch", "-config", "expired.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "expired.csr",
            "-out", "expired.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext", cwd=d)


@unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "needs the openssl and curl commands")
class Tls(TmProcess, StoreTest):
    proc_name = "tm serve"

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.pki = tempfile.mkdtemp(prefix="tm-e2e-pki-")
        make_pki(cls.pki)
        cls.base = tempfile.mkdtemp(prefix="tm-e2e-tls-")
        cls.recorded = os.path.join(cls.base, "store")
        record(cls.recorded, [REPLAY], "--cutoff", "none")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.store = self.recorded

    def pem(self, name):
        return os.path.join(self.pki, name)

    def spawn(self, args, name):
        p = self.spawn_process([TM] + list(args), name)
        return p, p.errfile

    def errtext(self, err):
        err.seek(0)
        return err.read().decode(errors="replace")

    def wait_health(self, url, proc, err, *curl_args):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.fail("exited (%d): %s" % (proc.returncode, self.errtext(err)))
            p = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"] + list(curl_args) + [url + "/health"],
                    check=False)
            if p.stdout == b"200":
                return
            time.sleep(0.05)
        self.fail("%s did not answer /health within %d s: %s" % (url, WAIT, self.errtext(err)))

    def serve_tls(self, *extra, cert="server"):
        """A read-only tm serve over HTTPS; returns its https:// URL (with 127.0.0.1)."""
        self.proc, self.err = self.spawn(["serve", "--store", self.store, "--listen", "127.0.0.1:0",
                                          "--tls-cert", self.pem(cert + ".pem"), "--tls-key", self.pem(cert + ".key")]
                                         + list(extra), "serve%d" % len(self.procs))
        url = "https://127.0.0.1:%d" % listening_port(self.proc, self.err, "tm serve")
        client = ["--cert", self.pem("client.pem"), "--key", self.pem("client.key")] if extra else []
        # (A certificate for another name: curl is told not to check, only to see it is up.)
        check = ["--cacert", self.pem("ca.pem")] if cert == "server" else ["--insecure"]
        self.wait_health(url, self.proc, self.err, *(check + client))
        return url

    def local_answer(self):
        out = self.path("local.pcap")
        tm("query", "--store", self.store, "-w", out, "-q", FILTER)
        with open(out, "rb") as f:
            return f.read()

    def remote_answer(self, url, *extra, check=True):
        out = self.path("remote.pcap")
        if os.path.exists(out):
            os.unlink(out)
        p = tm("query", "--server", url, "-w", out, "-q", *extra, FILTER, check=check)
        if p.returncode != 0:
            return p, None
        with open(out, "rb") as f:
            return p, f.read()

    def test_query_over_https_is_the_local_answer(self):
        url = self.serve_tls()
        want = self.local_answer()
        self.assertGreater(len(read_pcap(self.path("local.pcap"))), 10)
        _, got = self.remote_answer(url, "--ca", self.pem("ca.pem"))
        self.assertEqual(got, want, "the pcap over HTTPS differs from the local one")
        # By host name too (the certificate names localhost), and the JSON answers.
        port = url.rsplit(":", 1)[1]
        _, got = self.remote_answer("https://localhost:" + port, "--ca", self.pem("ca.pem"))
        self.assertEqual(got, want)
        st = json.loads(tm("stats", "--server", url, "--ca", self.pem("ca.pem"), "--json").stdout)
        self.assertIsInstance(st, dict)
        # And over plain HTTP, the same bytes.
        p, err = self.spawn(["serve", "--store", self.store, "--listen", "127.0.0.1:0"], "plain")
        port2 = listening_port(p, err, "tm serve")
        self.wait_health("http://127.0.0.1:%d" % port2, p, err)
        _, plain = self.remote_answer("http://127.0.0.1:%d" % port2)
        self.assertEqual(plain, want)
        self.assertIn("(HTTPS)", self.errtext(self.err))

    def test_untrusted_server_is_refused_naming_it(self):
        url = self.serve_tls()
        where = url[len("https://"):]
        p, _ = self.remote_answer(url, "--ca", self.pem("other-ca.pem"), check=False)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertIn("cannot connect to " + where, err)
        self.assertIn("certificate is not trusted", err)
        self.assertIn("other-ca.pem", err)
        self.assertFalse(os.path.exists(self.path("remote.pcap")) and os.path.getsize(self.path("remote.pcap")) > 24)
        # Without --ca: the system's CAs, which did not sign it either; the message says what to give.
        p, _ = self.remote_answer(url, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("give --ca FILE", p.stderr.decode())
        # TLS options with an http:// URL are a mistake, said so.
        p = tm("stats", "--server", "http://" + where, "--ca", self.pem("ca.pem"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("https://", p.stderr.decode())

    def test_certificate_for_another_name_is_refused(self):
        url = self.serve_tls(cert="wrongname")
        p, _ = self.remote_answer(url, "--ca", self.pem("ca.pem"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not for 127.0.0.1", p.stderr.decode())

    def test_mutual_tls(self):
        url = self.serve_tls("--tls-client-ca", self.pem("ca.pem"))
        want = self.local_answer()
        p, _ = self.remote_answer(url, "--ca", self.pem("ca.pem"), check=False)
        self.assertNotEqual(p.returncode, 0, "no client certificate, yet answered")
        self.assertIn("client certificate", p.stderr.decode())
        _, got = self.remote_answer(url, "--ca", self.pem("ca.pem"), "--cert", self.pem("client.pem"),
                                    "--key", self.pem("client.key"))
        self.assertEqual(got, want)
        # A client certificate of another CA is refused as well.
        p, _ = self.remote_answer(url, "--ca", self.pem("ca.pem"), "--cert", self.pem("other-ca.pem"),
                                  "--key", self.pem("other-ca.key"), check=False)
        self.assertNotEqual(p.returncode, 0)
        # An encrypted key: said so (OpenSSL asked for its pass phrase on the terminal, and without one
        # called it "not a PEM private key").
        enc = self.path("client-enc.key")
        run(["openssl", "pkey", "-in", self.pem("client.key"), "-aes128", "-passout", "pass:secret", "-out", enc])
        p, _ = self.remote_answer(url, "--ca", self.pem("ca.pem"), "--cert", self.pem("client.pem"), "--key", enc,
                                  check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("--key: %s is encrypted (a pass phrase protects it), and tm asks for none" % enc,
                      p.stderr.decode())
        # curl: refused without a certificate, answered with one.
        r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", self.pem("ca.pem"),
                 url + "/health"], check=False)
        self.assertNotEqual(r.stdout, b"200")
        r = run(["curl", "-s", "--cacert", self.pem("ca.pem"), "--cert", self.pem("client.pem"), "--key",
                 self.pem("client.key"), url + "/api/v1/stats"])
        self.assertIsInstance(json.loads(r.stdout), dict)

    def test_curl_and_plain_http_on_the_tls_port(self):
        url = self.serve_tls()
        r = run(["curl", "-s", "--cacert", self.pem("ca.pem"), url + "/api/v1/query?filter=tcp%20port%2080",
                 "-o", self.path("curl.pcap")])
        with open(self.path("curl.pcap"), "rb") as f:
            self.assertEqual(f.read(), self.local_answer())
        r = run(["curl", "-s", url + "/health"], check=False)
        self.assertEqual(r.returncode, 60, "curl trusted a certificate without its CA")  # 60: peer certificate
        # Plain HTTP to the TLS port: no answer (the handshake fails), and the server goes on.
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        self.assertNotIn(b"HTTP/1.1 200", got)
        r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url.replace("https", "http") + "/health"],
                check=False)
        self.assertNotEqual(r.stdout, b"200")
        r = tm("stats", "--server", url.replace("https", "http"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("an https:// server?", r.stderr.decode())
        r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", self.pem("ca.pem"),
                 url + "/health"])
        self.assertEqual(r.stdout, b"200")
        self.alive("after plain HTTP on its TLS port")

    def test_stalled_handshake_is_cut_by_the_header_deadline(self):
        url = self.serve_tls()
        port = int(url.rsplit(":", 1)[1])
        # A slowloris in the handshake: the start of a 512-byte TLS record, then a byte a
        # second, each within httplib's 10 s read timeout. The header deadline (10 s from
        # connecting) must close it, and count it.
        closed = False
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            s.sendall(b"\x16\x03\x01\x02\x00")
            for _ in range(WAIT):
                r, _, _ = select.select([s], [], [], 1.0)
                try:
                    if r and s.recv(4096) == b"":
                        closed = True
                        break
                    s.sendall(b"\x01")
                except OSError:
                    closed = True
                    break
        self.assertTrue(closed, "the server kept a stalled handshake open for %d s" % WAIT)
        # The next handshake is whole (a cut once reached a socket that had taken a closed one's
        # number: tests/unit/test_http_limits.cpp, ConnectionCut).
        m = run(["curl", "-s", "--cacert", self.pem("ca.pem"), url + "/metrics"]).stdout.decode()
        line = [l for l in m.splitlines() if l.startswith("tm_http_header_timeouts_total ")]
        self.assertTrue(line and float(line[0].split()[1]) >= 1, m)

    def test_warning_for_clear_text_off_loopback(self):
        tok = self.path("token")
        with open(tok, "w") as f:
            f.write("s3cret\n")
        p, err = self.spawn(["serve", "--store", self.store, "--listen", "0.0.0.0:0", "--token-file", tok], "open")
        port = listening_port(p, err, "tm serve")
        self.wait_health("http://127.0.0.1:%d" % port, p, err)
        self.assertIn("travel in clear", self.errtext(err))
        p, err = self.spawn(["serve", "--store", self.store, "--listen", "0.0.0.0:0", "--token-file", tok,
                             "--tls-cert", self.pem("server.pem"), "--tls-key", self.pem("server.key")], "tls")
        port = listening_port(p, err, "tm serve")
        self.wait_health("https://127.0.0.1:%d" % port, p, err, "--cacert", self.pem("ca.pem"))
        self.assertNotIn("in clear", self.errtext(err))
        # Loopback without TLS: no warning.
        p, err = self.spawn(["serve", "--store", self.store, "--listen", "127.0.0.1:0"], "lo")
        port = listening_port(p, err, "tm serve")
        self.wait_health("http://127.0.0.1:%d" % port, p, err)
        self.assertNotIn("in clear", self.errtext(err))

    def test_config_errors_name_file_line_and_key(self):
        conf = self.path("tm.toml")

        def serve_with(lines):
            with open(conf, "w") as f:
                f.write("[server]\nlisten = \"127.0.0.1:0\"\n" + lines)
            # (A file not refused would leave tm serve running: the timeout fails the test.)
            return run([TM, "serve", "--store", self.store, "--config", conf], check=False, timeout=WAIT)

        p = serve_with('tls_cert = "%s"\ntls_key = "%s"\n' % (self.path("missing.pem"), self.pem("server.key")))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("%s:3: server.tls_cert: cannot read %s" % (conf, self.path("missing.pem")), p.stderr.decode())
        p = serve_with('tls_cert = "%s"\ntls_key = "%s"\n' % (self.pem("server.pem"), self.pem("client.key")))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("%s:4: server.tls_key: the key in %s does not match the certificate" % (
            conf, self.pem("client.key")), p.stderr.decode())
        p = serve_with('tls_cert = "%s"\ntls_key = "%s"\n' % (self.pem("server.key"), self.pem("server.key")))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("%s:3: server.tls_cert: %s is not a PEM certificate" % (conf, self.pem("server.key")),
                      p.stderr.decode())
        p = serve_with('tls_cert = "%s"\n' % self.pem("server.pem"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--tls-key: missing", p.stderr.decode())
        p = serve_with('tls_cert = "%s"\ntls_key = "%s"\ntls_client_ca = "%s"\n' % (
            self.pem("server.pem"), self.pem("server.key"), self.path("nope.pem")))
        self.assertIn("%s:5: server.tls_client_ca: cannot read" % conf, p.stderr.decode())
        # An expired certificate (signed by `openssl ca`, which can date it in the past).
        p = serve_with('tls_cert = "%s"\ntls_key = "%s"\n' % (self.pem("expired.pem"), self.pem("expired.key")))
        self.assertIn("%s:3: server.tls_cert: the certificate in %s has expired" % (conf, self.pem("expired.pem")),
                      p.stderr.decode())
        # An encrypted key: said so, at once (OpenSSL asked for a pass phrase on the terminal).
        enc = self.path("server-enc.key")
        run(["openssl", "pkey", "-in", self.pem("server.key"), "-aes128", "-passout", "pass:secret", "-out", enc])
        p = serve_with('tls_cert = "%s"\ntls_key = "%s"\n' % (self.pem("server.pem"), enc))
        self.assertIn("%s:4: server.tls_key: %s is encrypted (a pass phrase protects it), and tm asks for none"
                      % (conf, enc), p.stderr.decode())
        # The command line names its option.
        p = tm("serve", "--store", self.store, "--listen", "127.0.0.1:0", "--tls-cert",
               self.pem("server.pem"), "--tls-key", self.pem("other-ca.key"), check=False)
        self.assertIn("--tls-key: the key in", p.stderr.decode())
        # And a config that serves TLS works.
        with open(conf, "w") as f:
            f.write('[server]\nlisten = "127.0.0.1:0"\ntls_cert = "%s"\ntls_key = "%s"\n' % (
                self.pem("server.pem"), self.pem("server.key")))
        p, err = self.spawn(["serve", "--store", self.store, "--config", conf], "conf")
        port = listening_port(p, err, "tm serve")
        self.wait_health("https://127.0.0.1:%d" % port, p, err, "--cacert", self.pem("ca.pem"))

    def test_frontend_with_an_https_worker(self):
        worker = self.serve_tls("--tls-client-ca", self.pem("ca.pem"))
        want = self.local_answer()
        conf = self.path("cluster.toml")
        with open(conf, "w") as f:
            f.write('worker_ca = "%s"\nworker_cert = "%s"\nworker_key = "%s"\n[[worker]]\nurl = "%s"\n' % (
                self.pem("ca.pem"), self.pem("client.pem"), self.pem("client.key"), worker))
        p, err = self.spawn(["frontend", "--config", conf, "--listen", "127.0.0.1:0",
                             "--tls-cert", self.pem("server.pem"), "--tls-key", self.pem("server.key")], "fe")
        fe = "https://127.0.0.1:%d" % listening_port(p, err, "tm frontend")
        self.wait_health(fe, p, err, "--cacert", self.pem("ca.pem"))
        _, got = self.remote_answer(fe, "--ca", self.pem("ca.pem"))
        self.assertEqual(read_pcap(self.path("remote.pcap")), read_pcap(self.path("local.pcap")))
        self.assertGreater(len(got), 24)
        # A worker whose certificate the front-end cannot verify is reported, not trusted.
        with open(conf, "w") as f:
            f.write('worker_ca = "%s"\n[[worker]]\nurl = "%s"\n' % (self.pem("other-ca.pem"), worker))
        p, err = self.spawn(["frontend", "--config", conf, "--listen", "127.0.0.1:0"], "fe2")
        port = listening_port(p, err, "tm frontend")
        self.wait_health("http://127.0.0.1:%d" % port, p, err)
        r = tm("query", "--server", "http://127.0.0.1:%d" % port, "-w", self.path("x.pcap"), FILTER, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("TLS certificate was not accepted", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
