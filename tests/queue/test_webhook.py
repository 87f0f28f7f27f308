"""Webhooks reach public addresses only: each internal class refused when checked and when
sent, the operator's allow-list, the address pinned between check and connect, no redirects,
TLS verified against the host name, and a bounded DNS lookup.

Every connection a test makes goes to 127.0.0.1: host names other than ``localhost`` resolve
through a stub, and a guard fails any test whose code would connect elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest
import redis
import trustme

from tests.queue.receiver import Receiver, guard_loopback, stub_dns
from tests.queue.stubs import StubHandler, jsonl
from workflows.queue import JobQueue, JobStatus, Worker, WorkerConfig
from workflows.queue import webhook as wh
from workflows.queue.webhook import WebhookPolicy, WebhookRefused, deliveries, post_webhook, refusal

PAYLOAD = {"id": "batch_0123456789abcdef0123456789abcdef", "status": "completed"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connection attempt, recorded; one to anything but loopback fails the test."""
    monkeypatch.delenv(wh.ALLOW_ENV, raising=False)
    return guard_loopback(monkeypatch)


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("100.100.100.200", "cloud metadata"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"), ("fd12:3456::1", "private"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "carrier-grade NAT"), ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "IPv6 form of a loopback"), ("::ffff:10.0.0.5", "IPv6 form of a private"),
    ("::ffff:169.254.169.254", "IPv6 form of a cloud metadata"), ("2002:a00:5::1", "IPv6 form of a private"),
    ("64:ff9b::7f00:1", "IPv6 form of a loopback"), ("192.0.2.1", "private"), ("2001:db8::1", "private"),
])
def test_each_internal_address_class_is_named(address: str, why: str) -> None:
    assert why in (refusal(ipaddress.ip_address(address)) or "")


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1",
                                     "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("url", "why"), [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"), ("http://10.0.0.5:6379/", "private"),
    ("http://[::1]:22/", "loopback"), ("http://localhost:16379/", "resolves to a loopback"),
    ("http://2130706433/", "loopback"), ("http://127.1/", "loopback"), ("http://0x7f000001/", "loopback"),
    ("http://[::ffff:7f00:1]/", "IPv6 form of a loopback"), ("http://metadata.google.internal/", "metadata"),
    ("ftp://example.org/hook", "http:// or https://"), ("http:///hook", "with a host"),
    ("http://user:secret@example.org/", "credentials"), ("http://example.org/a b", "spaces"),
    ("http://example.org:0/", "port 0"), ("http://example.org:99999/", "not a valid URL"),
    ("http://example.org/" + "a" * 3000, "at most"), ("http://example.org/\u00e9", "percent-encode"),
])
def test_check_url_refuses_internal_and_malformed_urls(url: str, why: str) -> None:
    with pytest.raises(WebhookRefused, match=why):
        WebhookPolicy().check_url(url)


def test_every_resolved_address_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_dns(monkeypatch, ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(WebhookRefused, match="'hooks.example' resolves to a private address") as exc:
        WebhookPolicy().check_url("https://hooks.example/in")
    assert "10.0.0.5" not in str(exc.value)  # internal DNS answers are not echoed
    stub_dns(monkeypatch, ["93.184.216.34", "2606:4700::1111"])
    target = WebhookPolicy().check_url("https://hooks.example/in?x=1")
    assert (target.host, target.port, target.path, target.addresses) == (
        "hooks.example", 443, "/in?x=1", ("93.184.216.34", "2606:4700::1111"))


def test_a_lookup_that_hangs_is_cut_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(wh, "_getaddrinfo", lambda host, port: [release.wait(30) and "127.0.0.1"])
    try:
        start = time.monotonic()
        with pytest.raises(WebhookRefused, match="did not resolve within 0.2 s"):
            WebhookPolicy(resolve_timeout_s=0.2).check_url("http://slow.example/")
        assert time.monotonic() - start < 1.5
    finally:
        release.set()


def test_a_name_that_does_not_resolve_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(wh, "_getaddrinfo", fail)
    with pytest.raises(WebhookRefused, match="does not resolve"):
        WebhookPolicy().check_url("http://nowhere.example/")


def test_allow_list_entries() -> None:
    policy = WebhookPolicy.parse(" Hooks.Internal. ,10.20.0.0/16,127.0.0.1,[::1],")
    assert policy.allow_hosts == {"hooks.internal"}
    assert [str(n) for n in policy.allow_networks] == ["10.20.0.0/16", "127.0.0.1/32", "::1/128"]
    for bad in ("exa mple.org", "http://x/", "10.0.0.0/33", "a..b"):
        with pytest.raises(ValueError, match=wh.ALLOW_ENV):
            WebhookPolicy.parse(bad)


def test_the_allow_list_admits_what_it_names_and_never_metadata_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = WebhookPolicy.parse("127.0.0.1")
    assert loop.check_url("http://127.0.0.1:9/").addresses == ("127.0.0.1",)
    assert loop.check_url("http://[::ffff:127.0.0.1]:9/").addresses == (str(ipaddress.ip_address("::ffff:127.0.0.1")),)
    with pytest.raises(WebhookRefused, match="private"):
        loop.check_url("http://10.0.0.5/")
    stub_dns(monkeypatch, ["10.9.8.7"])
    assert WebhookPolicy.parse("hooks.internal").check_url("http://hooks.internal/").addresses == ("10.9.8.7",)
    assert WebhookPolicy.parse("10.0.0.0/8").check_url("http://hooks.internal/").addresses == ("10.9.8.7",)
    stub_dns(monkeypatch, ["169.254.169.254"])
    with pytest.raises(WebhookRefused, match="cloud metadata"):
        WebhookPolicy.parse("hooks.internal").check_url("http://hooks.internal/")
    assert WebhookPolicy.parse("169.254.169.254/32").check_url("http://hooks.internal/").addresses


def test_a_refused_send_reaches_nobody_and_is_counted(loopback_only: list[tuple[str, int]]) -> None:
    before = deliveries.snapshot()
    with Receiver() as hook:
        for url in (hook.url(), hook.url("localhost"), hook.url("[::ffff:127.0.0.1]"), hook.url("2130706433")):
            assert post_webhook(url, PAYLOAD, timeout_s=2) is False
    assert hook.hits == [] and loopback_only == []
    assert deliveries.snapshot()["refused"] - before["refused"] == 4


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.5", "172.16.0.1", "192.168.1.1", "100.64.0.1",
                                     "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fd00::1", "::",
                                     "ff02::1", "::ffff:10.0.0.5", "::ffff:169.254.169.254", "fd00:ec2::254"])
def test_each_internal_class_is_refused_at_send_time(monkeypatch: pytest.MonkeyPatch, address: str,
                                                     loopback_only: list[tuple[str, int]]) -> None:
    stub_dns(monkeypatch, ["93.184.216.34", address])  # one public answer does not make the others safe
    assert post_webhook("http://hooks.example:8080/in", PAYLOAD, timeout_s=1) is False
    assert loopback_only == []  # no connection was even tried


def test_the_allow_list_lets_a_loopback_receiver_get_the_post(monkeypatch: pytest.MonkeyPatch) -> None:
    before = deliveries.snapshot()
    with Receiver() as hook:
        assert post_webhook(hook.url(), PAYLOAD, 2, WebhookPolicy.parse("127.0.0.1")) is True
        monkeypatch.setenv(wh.ALLOW_ENV, "localhost")  # the default policy reads the environment
        assert post_webhook(hook.url("localhost"), PAYLOAD, 2) is True  # whichever of ::1, 127.0.0.1 answers
    assert [(h["path"], h["host"], h["body"]) for h in hook.hits] == [
        ("/hook", f"127.0.0.1:{hook.port}", PAYLOAD), ("/hook", f"localhost:{hook.port}", PAYLOAD)]
    assert deliveries.snapshot()["delivered"] - before["delivered"] == 2


def test_the_send_checks_again_and_a_changed_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = stub_dns(monkeypatch, ["93.184.216.34"], ["127.0.0.1"])
    with Receiver() as hook:
        url = hook.url("hooks.example")
        WebhookPolicy().check_url(url)  # at submission: public
        assert post_webhook(url, PAYLOAD, timeout_s=2) is False  # at send time: loopback
    assert hook.hits == [] and asked == ["hooks.example", "hooks.example"]


def test_the_send_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch,
                                                      loopback_only: list[tuple[str, int]]) -> None:
    # the stub answers once; a second lookup (by http.client itself) would get a private address
    asked = stub_dns(monkeypatch, ["127.0.0.2", "127.0.0.1"], ["10.0.0.5"])
    with Receiver() as hook:
        assert post_webhook(hook.url("hooks.example"), PAYLOAD, 2, WebhookPolicy.parse("127.0.0.0/8")) is True
    assert len(asked) == 1  # resolved once
    assert loopback_only == [("127.0.0.2", hook.port), ("127.0.0.1", hook.port)]  # the first refused the connection
    assert [h["host"] for h in hook.hits] == [f"hooks.example:{hook.port}"]  # the name travels in Host


def test_redirects_are_not_followed() -> None:
    with Receiver() as inside, Receiver(302, {"Location": inside.url()}) as outside:
        assert post_webhook(outside.url(), PAYLOAD, 2, WebhookPolicy.parse("127.0.0.1")) is False
    assert len(outside.hits) == 1 and inside.hits == []


def test_https_is_verified_against_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_dns(monkeypatch, ["127.0.0.1"])
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    policy = WebhookPolicy.parse("127.0.0.1")
    for name, expect in (("hooks.example", True), ("other.example", False)):
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(server)
        with Receiver(tls=server) as hook:
            assert post_webhook(hook.url("hooks.example"), PAYLOAD, 2, policy, client) is expect
        assert hook.sni == ["hooks.example"]  # SNI carries the name, not the pinned address
        assert len(hook.hits) == int(expect)


def test_a_bad_allow_list_in_the_environment_refuses_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wh.ALLOW_ENV, "not a host!")
    assert post_webhook("http://127.0.0.1:9/", PAYLOAD, timeout_s=1) is False


@pytest.fixture
def run_jobs(queue: JobQueue, r: redis.Redis) -> Callable[[], int]:
    return lambda: Worker(r, StubHandler(r), WorkerConfig(webhook_timeout_s=2.0), queue=queue).run(
        stop_when_empty=True)


def test_the_worker_posts_nothing_to_an_internal_address(queue: JobQueue, run_jobs: Callable[[], int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stub_dns(monkeypatch, ["93.184.216.34"], ["127.0.0.1"])  # public when submitted, loopback when sent
    with Receiver() as hook:
        direct = queue.submit(jsonl(1), webhook_url=hook.url())  # the queue client checks no address
        WebhookPolicy().check_url(hook.url("hooks.example"))  # what the HTTP layer checks at submission
        rebound = queue.submit(jsonl(1), webhook_url=hook.url("hooks.example"))
        run_jobs()
    assert hook.hits == []
    assert [queue.get(j.id, "default").status for j in (direct, rebound)] == [JobStatus.COMPLETED] * 2
