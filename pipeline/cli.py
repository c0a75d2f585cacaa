"""``pseudonymizer``: the worker, the file mode, key management, look-ups, quarantine and the demo.

Configuration errors exit with status 2 and a one-paragraph message (no stack trace, no secrets).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from config.settings import Settings
from transforms.errors import ConfigError, PseudonymizerError, RecordError

if TYPE_CHECKING:
    from pipeline.audit import AuditLog
    from transforms.escrow import EscrowPublicKey

SUBCOMMANDS = (
    "worker",
    "topics",
    "acls",
    "generate",
    "process",
    "lookup",
    "keys",
    "quarantine",
    "reveal",
    "audit",
    "demo",
    "transforms",
    "privacy-report",
)

LONG_RUNNING = frozenset({"worker", "demo", "generate"})  # commands whose logs get the repeat limit

log = logging.getLogger("pseudonymizer")


def _iso(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        broker=getattr(args, "broker", None),
        geo_city_db=getattr(args, "geo_city", None),
        geo_asn_db=getattr(args, "geo_asn", None),
    )


# --- worker ------------------------------------------------------------------------------------------


def _worker_class() -> type:
    import faust

    class Worker(faust.Worker):
        """faust's worker, with the root logger kept at the configured level.

        faust's terminal spinner sets the root logger to DEBUG, so every faust debug call in the send
        path would build and emit a record (about 5% of a busy worker's time, measured with cProfile).
        """

        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            if level:
                logger.setLevel(level)
            # faust has just replaced the root handlers: the repeat limit main() installed goes onto its ones.
            from pipeline.log_limits import reinstall_repeat_limit

            reinstall_repeat_limit()

    return Worker


def _new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """uvloop when asked for or, with "auto", when installed: less event-loop overhead per poll and per send."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                message = "PSEUDO_EVENT_LOOP=uvloop but uvloop is not installed (pip install '.[fast]')"
                raise ConfigError(message) from None
        else:
            log.info("event loop: uvloop")
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def cmd_worker(args: argparse.Namespace) -> int:

    from pipeline.app import create_app
    from pipeline.runtime import build_runtime
    from pipeline.topics import ensure_topics

    settings = _settings(args)
    runtime = build_runtime(settings, keys_path=args.keys, policy_path=args.policy)
    # faust creates only the last folder of its data dir; the default (var/worker) is not in a fresh checkout.
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"PSEUDO_DATA_DIR: cannot create {settings.data_dir}: {exc.strerror}") from None
    asyncio.run(ensure_topics(settings.bootstrap, settings.topic_specs(), connection=settings.kafka))
    asyncio.set_event_loop(_new_event_loop(settings.event_loop))
    app = create_app(runtime)
    worker = _worker_class()(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


# --- topics ------------------------------------------------------------------------------------------


def cmd_topics_create(args: argparse.Namespace) -> int:
    from pipeline.audit import audit_topic_spec
    from pipeline.topics import ensure_topics

    settings = _settings(args)
    # The worker's topics, and the audit topic the audited tools write (their principals may not create topics).
    specs = [*settings.topic_specs(), audit_topic_spec(settings.audit_topic)]
    created = set(asyncio.run(ensure_topics(settings.bootstrap, specs, connection=settings.kafka)))
    for spec in specs:
        outcome = "created" if spec.name in created else "exists, left as it is"
        kept = (
            "compacted"
            if spec.compacted
            else "kept forever"
            if spec.retention_ms < 0
            else f"retention {spec.retention_ms / 86_400_000:g} d"
        )
        print(f"topics: {spec.name:32} {spec.partitions:4} partitions, {kept}: {outcome}")
    print(f"topics: all {len(specs)} topics exist on {settings.bootstrap}; shippers may start", file=sys.stderr)
    return 0


# --- acls --------------------------------------------------------------------------------------------


def cmd_acls(args: argparse.Namespace) -> int:
    from pipeline.acls import Audience, apply, format_table, required_acls

    settings = _settings(args)
    principals = {
        audience: given for audience in Audience if (given := getattr(args, f"principal_{audience.value}")) is not None
    }
    if not principals:
        raise ConfigError("acls: name at least one principal (--principal-worker User:worker, ...)")
    acls = required_acls(settings, principals, allow_create=args.allow_create)
    print(format_table(acls))
    if args.apply:
        sent = asyncio.run(apply(settings, acls))
        print(f"acls: {sent} ACLs applied on {settings.bootstrap}", file=sys.stderr)
    else:
        print("acls: printed only; --apply creates them (as a principal allowed to alter the cluster)", file=sys.stderr)
    return 0


# --- generate ----------------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from config.settings import TopicSpec
    from pipeline.topics import ensure_topics
    from pipeline.traffic import generate, generate_for_demo, produce

    settings = _settings(args)
    topic = args.topic or settings.input_topic
    # --count 0 means an endless stream (docker compose's generator service)
    make = generate_for_demo if args.mix == "demo" else generate
    records = make(args.count or None, seed=args.seed, events_per_second=args.rate or 50.0)

    # Only the topic it writes: a shipper's principal may see no other (pipeline/acls.py).
    default = TopicSpec(
        name=topic, partitions=settings.partitions, retention_ms=int(settings.input_retention_days * 86_400_000)
    )
    spec = next((s for s in settings.topic_specs() if s.name == topic), default)

    async def run() -> int:
        await ensure_topics(settings.bootstrap, [spec], connection=settings.kafka)
        return await produce(settings.bootstrap, topic, records, rate=args.rate, connection=settings.kafka)

    sent = asyncio.run(run())
    print(f"generate: sent {sent} records to {topic}", file=sys.stderr)
    return 0


# --- process (file mode) -----------------------------------------------------------------------------


def cmd_process(args: argparse.Namespace) -> int:
    from pipeline.filemode import process_files
    from pipeline.runtime import build_runtime

    runtime = build_runtime(_settings(args), keys_path=args.keys, policy_path=args.config)
    summary = process_files(runtime, args.inputs, args.out, ingest_time=args.ingest_time)
    print(orjson.dumps(summary).decode())
    return 0


# --- lookup ------------------------------------------------------------------------------------------


def cmd_lookup(args: argparse.Namespace) -> int:
    from config import load_policy
    from pipeline.keystore import read_keyring_file
    from transforms.ip import parse_ip
    from transforms.keyring import Purpose
    from transforms.pseudonymize import BeyondRetention, Pseudonymizer

    purpose = Purpose(args.purpose)
    lifetime = None
    if purpose is Purpose.ANALYTICS:
        # With the k-anonymous release, analytics pseudonyms live one release window (the policy says how long).
        release = load_policy(args.config).analytics.release
        lifetime = release.window_s if release.enabled else None
    pseudonymizer = Pseudonymizer(read_keyring_file(args.keys), purpose, lifetime_s=lifetime)
    audit_log = _audit_log(args, "lookup")
    status = 0
    at = args.at.timestamp()
    found: list[tuple[str, list[str]]] = []
    for text in args.ips:
        try:
            packed = parse_ip(text).packed
            columns = [pseudonymizer.ip(packed, at)]
            if args.user_agent is not None:
                columns.append(pseudonymizer.visitor(packed, args.user_agent, at))
            found.append((text, columns))
        except RecordError:
            print(f"lookup: not an IP address: {text}", file=sys.stderr)
            status = 1
        except BeyondRetention:
            print(f"lookup: the key of that time has been destroyed (pruned): {text}", file=sys.stderr)
            status = 1
    with audit_log as audit:
        if found:
            # The pseudonyms say which records became linkable to an address; the addresses stay out of the audit.
            event = {"purpose": purpose.value, "time": args.at.isoformat(), "pseudonyms": [c for _, c in found]}
            audit.record(event)
        for text, columns in found:
            print("\t".join([text, *columns]))
    return status


# --- keys --------------------------------------------------------------------------------------------


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from pipeline.keystore import write_keyring
    from transforms.keyring import generate_keyring

    escrow = None
    if args.escrow:
        if args.private_key_out is None:
            raise ConfigError(
                "keys: --escrow needs --private-key-out FILE (the escrow private key never goes in a keyring)"
            )
        if args.out.exists() and not args.force:
            raise ConfigError(f"keys: refusing to overwrite existing keyring {args.out}")
        escrow = _new_escrow_keypair(args.private_key_out)
    keyring = generate_keyring(valid_from=args.valid_from, escrow=escrow)
    write_keyring(keyring, args.out, overwrite=args.force)
    print(f"keys: wrote keyring {keyring.id} to {args.out} (mode 0600); keep it secret, back it up", file=sys.stderr)
    return 0


def _new_escrow_keypair(private_key_out: Path) -> EscrowPublicKey:
    """Draw a key pair, write its private half (0600, never overwriting) and return the half for the keyring."""
    from pipeline.escrow_keys import write_escrow_private_key
    from transforms.escrow import generate_escrow_keypair

    private = generate_escrow_keypair()
    write_escrow_private_key(private, private_key_out)  # first: a keyring must not name a key nobody holds
    print(
        f"keys: wrote the escrow private key {private.id} to {private_key_out} (mode 0600): hand it to the security "
        "team to keep offline, and delete it here; workers need only the keyring",
        file=sys.stderr,
    )
    return private.public_part()


def cmd_keys_prune(args: argparse.Namespace) -> int:
    from pipeline.keystore import read_keyring_file, write_keyring
    from transforms.keyring import Purpose, prune_keyring

    keyring = read_keyring_file(args.keys)
    now = args.now or datetime.now(UTC)
    keep_from = {
        Purpose.ANALYTICS: now - timedelta(days=args.analytics_days),
        Purpose.SECURITY: now - timedelta(days=args.security_days),
    }
    pruned = prune_keyring(keyring, keep_from)
    write_keyring(pruned, args.keys, overwrite=True)
    for purpose, chain in pruned.chains.items():
        before = keyring.chains[purpose].epoch
        start = datetime.fromtimestamp(chain.epoch * chain.period_s, UTC)
        print(
            f"keys: {purpose.value}: destroyed {chain.epoch - before} epoch key(s); "
            f"oldest kept epoch starts {start:%F}",
            file=sys.stderr,
        )
    print("keys: restart workers so that no process keeps the destroyed keys in memory", file=sys.stderr)
    return 0


def cmd_keys_escrow_rotate(args: argparse.Namespace) -> int:
    from pipeline.keystore import read_keyring_file, write_keyring

    keyring = read_keyring_file(args.keys)
    public = _new_escrow_keypair(args.private_key_out)
    keys = [*keyring.escrow_public_keys, public]
    write_keyring(keyring.model_copy(update={"escrow_public_keys": keys}), args.keys, overwrite=True)
    print(f"keys: escrow key {public.id} added; restart workers so that new tokens use it", file=sys.stderr)
    if keyring.escrow_keys:
        print(
            "keys: the keyring still holds legacy e1 escrow keys ("
            + ", ".join(k.id for k in keyring.escrow_keys)
            + "), which any worker can use to open e1 tokens: destroy them once their tokens are no longer needed",
            file=sys.stderr,
        )
    return 0


def cmd_keys_escrow_destroy(args: argparse.Namespace) -> int:
    from pipeline.keystore import read_keyring_file, write_keyring

    keyring = read_keyring_file(args.keys)
    legacy = [k for k in keyring.escrow_keys if k.id != args.id]
    public = [k for k in keyring.escrow_public_keys if k.id != args.id]
    if len(legacy) == len(keyring.escrow_keys) and len(public) == len(keyring.escrow_public_keys):
        raise ConfigError(f"keys: no escrow key with id {args.id!r}")
    update = {"escrow_keys": legacy, "escrow_public_keys": public}
    write_keyring(keyring.model_copy(update=update), args.keys, overwrite=True)
    if len(legacy) < len(keyring.escrow_keys):
        done = "legacy e1 key destroyed; its tokens can no longer be revealed by anyone"
    else:
        done = (
            "public key and tag key removed from the keyring: nothing seals under it any more. Its tokens still "
            "open with its private key file: to make them irreversible, the security team deletes every copy of it"
        )
    print(
        f"keys: escrow key {args.id}: {done}. Restart workers"
        + ("" if public else "; the policy's escrow_ip field now fails at start-up until a new key is added"),
        file=sys.stderr,
    )
    return 0


def cmd_keys_quarantine_rotate(args: argparse.Namespace) -> int:
    from pipeline.keystore import read_keyring_file, write_keyring
    from transforms.keyring import generate_quarantine_key

    keyring = read_keyring_file(args.keys)
    new_key = generate_quarantine_key()
    keys = [*keyring.quarantine_keys, new_key]
    write_keyring(keyring.model_copy(update={"quarantine_keys": keys}), args.keys, overwrite=True)
    print(
        f"keys: quarantine key {new_key.id} added; restart workers so that it seals (older keys still open)",
        file=sys.stderr,
    )
    return 0


def cmd_keys_quarantine_destroy(args: argparse.Namespace) -> int:
    from pipeline.keystore import read_keyring_file, write_keyring

    keyring = read_keyring_file(args.keys)
    ids = [k.id for k in keyring.quarantine_keys]
    if args.id not in ids:
        raise ConfigError(f"keys: no quarantine key with id {args.id!r}")
    if args.id == ids[-1]:
        # Workers seal with the newest key: destroying it would leave them nothing to seal with.
        raise ConfigError(
            f"keys: quarantine key {args.id} is the one that seals; run `keys quarantine-rotate` first, restart the "
            "workers, then destroy it"
        )
    kept = [k for k in keyring.quarantine_keys if k.id != args.id]
    write_keyring(keyring.model_copy(update={"quarantine_keys": kept}), args.keys, overwrite=True)
    print(f"keys: quarantine key {args.id} destroyed; what it sealed can no longer be opened", file=sys.stderr)
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    from pipeline.keystore import read_keyring_file

    keyring = read_keyring_file(args.keys)
    info = {
        "id": keyring.id,
        "created": keyring.created.isoformat(),
        "chains": {
            p.value: {
                "period_days": c.period_s / 86400,
                "oldest_epoch_start": datetime.fromtimestamp(c.epoch * c.period_s, UTC).strftime("%F"),
            }
            for p, c in keyring.chains.items()
        },
        "quarantine_keys": [k.id for k in keyring.quarantine_keys],
        "quarantine_sealing": keyring.quarantine_keys[-1].id,
        "escrow_keys": [k.id for k in keyring.escrow_keys],  # legacy e1 (symmetric): open old tokens only
        "escrow_public_keys": [k.id for k in keyring.escrow_public_keys],
        "escrow_sealing": keyring.escrow_public_keys[-1].id if keyring.escrow_public_keys else None,
    }
    print(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
    return 0


# --- quarantine --------------------------------------------------------------------------------------


def cmd_quarantine_decrypt(args: argparse.Namespace) -> int:
    from pipeline.keystore import read_keyring_file
    from transforms.quarantine import associated_data, unseal

    keyring = read_keyring_file(args.keys)
    audit_log = _audit_log(args, "quarantine decrypt")
    try:
        handle = sys.stdin.buffer if str(args.input) == "-" else open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"quarantine decrypt: cannot read {args.input}: {exc.strerror}") from None
    with handle, audit_log as audit:
        for line in handle:
            if not line.strip():
                continue
            record = orjson.loads(line)
            source = record["source"]
            aad = associated_data(source["topic"], source["partition"], source["offset"])
            payload = unseal(keyring, record["payload"], aad)
            audit.record({"record": source, "quarantine_reason": record["reason"], "key_id": record["payload"]["kid"]})
            out = {"reason": record["reason"], "field": record.get("field"), "source": source}
            out["payload"] = payload.decode("utf-8", "backslashreplace")
            print(orjson.dumps(out).decode(), flush=True)
    return 0


# --- reveal ------------------------------------------------------------------------------------------


def cmd_reveal(args: argparse.Namespace) -> int:
    from pipeline.escrow_keys import read_escrow_private_key
    from pipeline.keystore import read_keyring_file
    from pipeline.reveal import RevealStats, reveal_records
    from transforms.escrow import EscrowOpener

    private_keys = [read_escrow_private_key(path) for path in args.escrow_private_key or []]
    legacy_keys = read_keyring_file(args.keys).escrow_keys if args.keys is not None else []
    if not private_keys and not legacy_keys:
        raise ConfigError(
            "reveal: give the escrow private key file(s) with --escrow-private-key (and --keys K for legacy e1 tokens)"
        )
    opener = EscrowOpener(private_keys, legacy_keys=legacy_keys)
    audit_log = _audit_log(args, "reveal")
    stats = RevealStats()
    try:
        handle = sys.stdin.buffer if str(args.input) == "-" else open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"reveal: cannot read {args.input}: {exc.strerror}") from None
    with handle:
        revealed = reveal_records(
            opener, handle, audit=audit_log, record_ids=set(args.record) if args.record else None, stats=stats
        )
        for item in revealed:
            print(orjson.dumps(item).decode(), flush=True)
    print(f"reveal: {orjson.dumps(stats.as_dict()).decode()}; audit log: {audit_log.path}", file=sys.stderr)
    if stats.unknown_key:
        print("reveal: some tokens name escrow keys not given here (or destroyed: irreversible)", file=sys.stderr)
    return 0


# --- audit -------------------------------------------------------------------------------------------


def _audit_log(args: argparse.Namespace, tool: str) -> AuditLog:
    """The audit writer of ``reveal``, ``quarantine decrypt`` and ``lookup``: the file, and the topic copy."""
    from pipeline.audit import AuditLog, KafkaAuditSink

    settings = _settings(args)
    path = args.audit or settings.audit_file
    sink = None if args.audit_file_only or not settings.audit_to_kafka else KafkaAuditSink(settings, args.audit_topic)
    return AuditLog(path, sink, tool=tool, operator=args.operator or "", reason=args.reason or "")


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from pipeline.audit import AuditChainError, check_topic, read_file_lines, read_topic_chains, verify_lines

    if not args.files and not args.from_topic:
        raise ConfigError("audit verify: give the audit FILE(s), or --from-topic alone to check the topic's chains")
    files: dict[Path, list[bytes]] = {}
    for path in args.files:
        try:
            lines = read_file_lines(path)
            summary = verify_lines(lines)
        except AuditChainError as exc:
            print(f"audit: {path}: {exc}", file=sys.stderr)
            return 1
        files[path] = lines
        if not args.from_topic:
            print(
                f"audit: {path}: chain {summary.chain} intact, {summary.entries} entries; last line's SHA-256 "
                f"{summary.last_hash} (note it elsewhere: a later rewrite would change it)"
            )
    if not args.from_topic:
        return 0
    # The topic is the record of truth: every chain on it is checked, and with files each must be continued by one.
    settings = _settings(args)
    topic = args.audit_topic or settings.audit_topic
    reports = check_topic(asyncio.run(read_topic_chains(settings, topic)), files)
    if not reports:
        print(f"audit: topic {topic} holds no audit chain")
    status = 0
    for report in reports:
        facts = ""
        if (found := report.summary) is not None:
            facts = (
                f"{found.entries} entries, {found.started} to {found.ended}, written on {found.host} to {found.file}; "
                f"last line's SHA-256 {found.last_hash}"
            )
        name = f"audit: topic {topic}: chain {report.chain}" + (f" ({report.file})" if report.file else "")
        if report.problem is None:
            print(f"{name}: intact, {facts}")
        else:
            status = 1
            print(f"{name}: {report.problem}" + (f"; {facts}" if facts else ""), file=sys.stderr)
    return status


# --- privacy report --------------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def cmd_privacy_report(args: argparse.Namespace) -> int:
    from pipeline.privacy_report import privacy_report, render_report

    if args.dir is None:
        if args.start is None or args.end is None:
            raise ConfigError(
                "privacy-report: give a folder, or --from and --to to read the topics (PSEUDO_* settings)"
            )
        from pipeline.topics import read_time_range

        settings = _settings(args)
        topics = (settings.analytics_topic, settings.abuse_topic, settings.aggregates_topic)
        read = read_time_range(settings.bootstrap, topics, args.start, args.end, connection=settings.kafka)
        analytics, abuse, aggregates = asyncio.run(read)
        summary = None
    else:
        folder: Path = args.dir
        if not (folder / "analytics.jsonl").exists():
            raise ConfigError(f"privacy-report: no analytics.jsonl in {folder}")
        try:
            analytics = _jsonl(folder / "analytics.jsonl")
            summary_path = folder / "summary.json"
            summary = orjson.loads(summary_path.read_bytes()) if summary_path.exists() else None
            abuse, aggregates = _jsonl(folder / "abuse.jsonl"), _jsonl(folder / "aggregates.jsonl")
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"privacy-report: a file in {folder} is not JSON lines (at position {exc.pos})") from None
    # analytics/1 pseudonyms live a day and its visitor is the unit; its times are minutes.
    old = bool(analytics) and all(r.get("schema") == "analytics/1" for r in analytics)
    report = privacy_report(
        analytics,
        abuse,
        aggregates,
        summary,
        unit=args.unit or ("client.visitor" if old else "client.pseudonym"),
        window_s=args.window_s or (86_400 if old else 3600),
        k=args.k,
        time_granularity_s=60.0 if old else None,
    )
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json else render_report(report), end="")
    return 0


# --- demo / transforms -------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(args)


def cmd_transforms(args: argparse.Namespace) -> int:
    from transforms.registry import TRANSFORMS

    for name, spec in sorted(TRANSFORMS.items()):
        fields = ", ".join(spec.params.model_fields) or "-"
        print(f"{name:22} {spec.doc}  [params: {fields}]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pseudonymizer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def geo_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--geo-city", type=Path, help="City/Country MMDB (default: PSEUDO_GEO_CITY_DB)")
        p.add_argument("--geo-asn", type=Path, help="ASN MMDB (default: PSEUDO_GEO_ASN_DB)")

    def audit_flags(p: argparse.ArgumentParser, *, operator_required: bool) -> None:
        p.add_argument(
            "--operator",
            required=operator_required,
            help="who is doing this, free text (the audit records the OS account too)",
        )
        p.add_argument("--reason", required=True, help="why, e.g. an incident or ticket id (written to the audit)")
        p.add_argument("--audit", type=Path, help="hash-chained audit file, created 0600 (default: PSEUDO_AUDIT_FILE)")
        p.add_argument("--audit-topic", help="the audit topic (default: PSEUDO_AUDIT_TOPIC)")
        p.add_argument(
            "--audit-file-only",
            action="store_true",
            help="no copy on the audit topic (no broker here): the file alone can be rewritten unnoticed",
        )
        p.add_argument("--broker", help="kafka://host:port for the audit topic (default: PSEUDO_BROKER)")

    p = sub.add_parser("worker", help="run the stream worker (faust)")
    p.add_argument("--keys", type=Path, help="keyring file (default: PSEUDO_KEYS_FILE / PSEUDO_KEYS)")
    p.add_argument("--policy", type=Path, help="policy file (default: PSEUDO_POLICY or config/policy.toml)")
    p.add_argument("--broker", help="kafka://host:port (default: PSEUDO_BROKER)")
    geo_flags(p)
    p.set_defaults(func=cmd_worker)

    topics = sub.add_parser("topics", help="topic management").add_subparsers(dest="topics_command", required=True)
    p = topics.add_parser(
        "create",
        help="create the input, output and internal topics that do not exist yet (idempotent); "
        "run it before shippers start: the broker should not auto-create topics",
    )
    p.add_argument("--broker", help="kafka://host:port (default: PSEUDO_BROKER)")
    p.set_defaults(func=cmd_topics_create)

    p = sub.add_parser(
        "acls",
        help="print (and with --apply create) the ACLs each named principal needs on a broker with an authorizer",
    )
    for audience, does in (
        ("worker", "the stream worker"),
        ("shipper", "log shippers: write the input topic only"),
        ("analyst", "read analytics and aggregates"),
        ("security", "read abuse events"),
        ("operator", "read the quarantine"),
        ("auditor", "read the audit topic"),
    ):
        p.add_argument(f"--principal-{audience}", metavar="User:NAME", help=does)
    p.add_argument(
        "--allow-create",
        action="store_true",
        help="let the worker create the input and output topics (otherwise run `topics create` as an administrator)",
    )
    p.add_argument("--apply", action="store_true", help="create the ACLs through the Admin API")
    p.add_argument("--broker", help="kafka://host:port (default: PSEUDO_BROKER)")
    p.set_defaults(func=cmd_acls)

    p = sub.add_parser("generate", help="produce sample traffic to the input topic")
    p.add_argument("--broker")
    p.add_argument("--topic")
    p.add_argument("--count", type=int, default=2000, help="records to send; 0 = endless")
    p.add_argument("--rate", type=float, default=None, help="records per second (default: as fast as possible)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--mix",
        choices=["default", "demo"],
        default="default",
        help="demo: more attackers, so every output shows early",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("process", help="file mode: process log files into DIR/{analytics,abuse,quarantine}.jsonl")
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument("--config", type=Path, help="policy file (default: config/policy.toml)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ingest-time", type=_iso, help="ingest time to assume (default: now)")
    geo_flags(p)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="log files, or - for standard input")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("lookup", help="print the pseudonym that records of a given time carry for each IP")
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument("--purpose", choices=["analytics", "security"], required=True)
    p.add_argument("--at", type=_iso, required=True, help="ISO-8601 time of the records")
    p.add_argument("--user-agent", help="also print the visitor pseudonym of this address with this user agent")
    p.add_argument(
        "--config", type=Path, help="policy file (default: config/policy.toml): analytics pseudonym lifetime"
    )
    audit_flags(p, operator_required=False)
    p.add_argument("ips", nargs="+", metavar="IP")
    p.set_defaults(func=cmd_lookup)

    keys = sub.add_parser("keys", help="key management").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("generate", help="write a new keyring (mode 0600)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--valid-from", type=_iso, default=datetime(2000, 1, 1, tzinfo=UTC))
    p.add_argument(
        "--escrow", action="store_true", help="also create an escrow key pair (enables the escrow_ip transform)"
    )
    p.add_argument(
        "--private-key-out", type=Path, help="with --escrow: new file (0600) for the escrow private key, kept offline"
    )
    p.set_defaults(func=cmd_keys_generate)
    p = keys.add_parser("prune", help="destroy the keys of expired epochs (crypto-shredding)")
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument("--analytics-days", type=float, default=90, help="keep this many days of analytics epochs")
    p.add_argument("--security-days", type=float, default=365, help="keep this many days of security epochs")
    p.add_argument("--now", type=_iso, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_keys_prune)
    p = keys.add_parser(
        "escrow-rotate", help="new escrow key pair: the public half seals new tokens, the private half goes to a file"
    )
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument(
        "--private-key-out",
        type=Path,
        required=True,
        help="new file (0600, never overwritten) for the private key: the security team keeps it offline",
    )
    p.set_defaults(func=cmd_keys_escrow_rotate)
    p = keys.add_parser(
        "escrow-destroy",
        help="remove an escrow key from the keyring (a legacy e1 key: its tokens become irreversible; an e2 key: "
        "sealing stops, and its tokens become irreversible once every copy of its private key file is deleted)",
    )
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument("--id", required=True, help="the escrow key id (see `keys show`)")
    p.set_defaults(func=cmd_keys_escrow_destroy)
    p = keys.add_parser("quarantine-rotate", help="add a quarantine key: it seals from now on, older keys still open")
    p.add_argument("--keys", type=Path, required=True)
    p.set_defaults(func=cmd_keys_quarantine_rotate)
    p = keys.add_parser(
        "quarantine-destroy", help="destroy an older quarantine key: what it sealed can no longer be opened"
    )
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument("--id", required=True, help="the quarantine key id (see `keys show`); not the newest")
    p.set_defaults(func=cmd_keys_quarantine_destroy)
    p = keys.add_parser("show", help="key ids and retained epochs (never secret material)")
    p.add_argument("--keys", type=Path, required=True)
    p.set_defaults(func=cmd_keys_show)

    quarantine = sub.add_parser("quarantine", help="quarantine tools").add_subparsers(
        dest="quarantine_command", required=True
    )
    p = quarantine.add_parser("decrypt", help="decrypt quarantined records (JSON lines) for an operator (audited)")
    p.add_argument("--keys", type=Path, required=True)
    audit_flags(p, operator_required=False)
    p.add_argument("input", type=Path, help="quarantine JSONL file, or - for standard input")
    p.set_defaults(func=cmd_quarantine_decrypt)

    p = sub.add_parser("reveal", help="decrypt the escrowed source addresses of abuse records (audited)")
    p.add_argument(
        "--escrow-private-key",
        type=Path,
        action="append",
        metavar="FILE",
        help="an escrow private key file from `keys escrow-rotate` (repeatable: one per key id to open)",
    )
    p.add_argument("--keys", type=Path, help="a keyring whose legacy e1 escrow keys open old e1 tokens")
    audit_flags(p, operator_required=True)
    p.add_argument(
        "--record",
        action="append",
        metavar="ID",
        help="reveal only this record, <subject>/<time>/<rule> (repeatable; default: every escrowed record)",
    )
    p.add_argument("input", type=Path, help="abuse JSONL file, or - for standard input")
    p.set_defaults(func=cmd_reveal)

    audit = sub.add_parser("audit", help="audit trail tools").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", help="check audit files' chains (and, with --from-topic, every chain on the topic)")
    p.add_argument("files", type=Path, nargs="*", metavar="FILE", help="audit files (optional with --from-topic)")
    p.add_argument(
        "--from-topic",
        action="store_true",
        help="check every chain on the audit topic; with FILEs, each chain must be one FILE, line for line",
    )
    p.add_argument("--audit-topic", help="the audit topic (default: PSEUDO_AUDIT_TOPIC)")
    p.add_argument("--broker", help="kafka://host:port (default: PSEUDO_BROKER)")
    p.set_defaults(func=cmd_audit_verify)

    p = sub.add_parser("demo", help="start a local broker, the worker and sample traffic; show live output")
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: when traffic ends)")
    p.add_argument(
        "--secure",
        action="store_true",
        help="on a secured broker of its own (TLS, SASL, mutual TLS, ACLs): every part runs as its own principal",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "privacy-report",
        help="what a release lets an analyst learn: k of unit profiles, linking attacks, abuse join (DIR of `process`)",
    )
    p.add_argument(
        "dir", type=Path, nargs="?", metavar="DIR", help="folder with analytics.jsonl (and abuse, aggregates, summary)"
    )
    p.add_argument(
        "--from", dest="start", type=_iso, help="without DIR: read the output topics, records from this time"
    )
    p.add_argument("--to", dest="end", type=_iso, help="... up to (not including) this time")
    p.add_argument("--broker", help="Kafka bootstrap, kafka://host:port (default: PSEUDO_BROKER)")
    p.add_argument(
        "--unit",
        help="the field one unit of protection is (default: analytics/1 client.visitor, else client.pseudonym)",
    )
    p.add_argument(
        "--window-s", type=int, help="lifetime of the released pseudonyms (default: 86400 for analytics/1, else 3600)"
    )
    p.add_argument("--k", type=int, default=5, help="the k the release promises (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="the report as JSON instead of text")
    p.set_defaults(func=cmd_privacy_report)

    p = sub.add_parser("transforms", help="list the transforms a policy can name")
    p.set_defaults(func=cmd_transforms)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("aiokafka").setLevel(logging.WARNING)  # group chatter drowns the demo's output
    try:
        if args.command in LONG_RUNNING:  # a broker outage must not flood their logs (pipeline/log_limits.py)
            from pipeline.log_limits import install_repeat_limit

            install_repeat_limit(Settings.from_env().log_repeat_interval_s)
        return int(args.func(args))
    except (ConfigError, PseudonymizerError) as exc:
        print(f"pseudonymizer: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
