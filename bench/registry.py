"""The portal registry with many portals: load time, memory, lookup cost, change propagation.

Run: ``bench/registry [--portals 10000] [--database postgresql://…]``.

One real SP metadata document (with its signing and encryption certificate)
is registered through ``PortalRegistry.add``; then ``N - 1`` more rows are
copied from it in one transaction with their own entity IDs (what
``sesame portal add`` would have stored; registering each through ``add``
would only measure the metadata checks).  A *new* registry, as a worker has
after its start, then:

* loads its index (first lookup): time;
* looks up every portal once (each parsed at its first lookup): time, and the
  memory the registry holds (tracemalloc, Python objects and lxml trees
  counted by their Python wrappers only; RSS growth printed too);
* looks up cached portals: µs per lookup;
* sees a replacement made by another registry (another process) after
  ``refresh_seconds``, and a new registration at once, with no database read
  per lookup in between.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench/registry", description=__doc__.split("\n\n")[0])
    p.add_argument("--portals", type=int, default=10_000)
    p.add_argument("--database", default="", help="database URL (default: SQLite file in a temporary folder)")
    args = p.parse_args(argv)

    from sqlalchemy import insert, select

    from idp.clock import Clock
    from idp.persistence.db import Database
    from idp.persistence.models import Portal
    from metadata.policy import PortalPolicy
    from metadata.registry import PortalRegistry

    workdir = Path(tempfile.mkdtemp(prefix="sesame-registry-"))
    created = False
    try:
        url = args.database or f"sqlite:///{workdir / 'sesame.db'}"
        if url.startswith("postgres"):
            from bench.sesame_bench import ensure_pg_database
            created = ensure_pg_database(url)
        database = Database(url)
        database.upgrade()
        clock = Clock()
        keys, levels = ("password",), (100, 200, 300, 400, 500)
        make_sp_metadata = metadata_maker(workdir)

        def registry() -> PortalRegistry:
            return PortalRegistry(database.session, model=Portal, clock=clock, known_keys=keys, levels=levels)

        writer = registry()
        base = writer.add(xml=make_sp_metadata("https://portal-00000.example.be/metadata"), source=None,
                          policy=PortalPolicy(accepted_keys=keys, min_level=100))
        with database.session() as s:
            row = s.scalars(select(Portal).where(Portal.entity_id == base.entity_id)).one()
            template, policy, stamp = row.metadata_xml, row.policy, row.updated_at
        rows = [dict(entity_id=f"https://portal-{i:05d}.example.be/metadata", name=f"Portal {i}",
                     metadata_xml=template.replace("portal-00000", f"portal-{i:05d}"), metadata_source=None,
                     policy=policy, created_at=stamp, updated_at=stamp)
                for i in range(1, args.portals)]
        t = time.perf_counter()
        with database.engine.begin() as conn:
            for i in range(0, len(rows), 1000):
                conn.execute(insert(Portal), rows[i:i + 1000])
        print(f"{args.portals} portals stored in {time.perf_counter() - t:.1f} s "
              f"({len(template)} bytes of metadata each)")
        ids = [base.entity_id] + [r["entity_id"] for r in rows]
        del rows

        tracemalloc.start()
        rss0 = rss_mib()
        worker = registry()
        t = time.perf_counter()
        assert worker.get(ids[0]) is not None
        index = time.perf_counter() - t
        t = time.perf_counter()
        for entity_id in ids:
            assert worker.get(entity_id) is not None, entity_id
        everything = time.perf_counter() - t
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = rss_mib() - rss0
        n = 200_000
        t = time.perf_counter()
        for i in range(n):
            worker.get(ids[i % len(ids)])
        lookup = (time.perf_counter() - t) / n * 1e6

        other = registry()
        other.add(xml=make_sp_metadata(ids[7], acs="https://portal-00007.example.be/acs2"), source=None,
                  policy=PortalPolicy(accepted_keys=keys, min_level=100), replace=True)
        stale = worker.get(ids[7]).metadata.default_acs().location
        time.sleep(worker.refresh_seconds)
        t = time.perf_counter()
        fresh = worker.get(ids[7]).metadata.default_acs().location
        refresh = time.perf_counter() - t
        other.add(xml=make_sp_metadata("https://late.example.be/metadata"), source=None,
                  policy=PortalPolicy(accepted_keys=keys, min_level=100))
        late = worker.get("https://late.example.be/metadata") is not None

        print(f"database: {'PostgreSQL' if url.startswith('postgres') else 'SQLite file'}; "
              f"refresh_seconds {worker.refresh_seconds:g}")
        print(f"index load (first lookup of a new worker)     {index * 1e3:8.1f} ms")
        print(f"every portal looked up once (parsed lazily)   {everything:8.2f} s "
              f"({everything / len(ids) * 1e6:.0f} µs each)")
        print(f"memory held after that                        {traced / 2**20:8.1f} MiB traced (Python), "
              f"RSS +{rss:.1f} MiB")
        print(f"lookup of a cached portal                     {lookup:8.2f} µs")
        print(f"replacement by another process: before the refresh {stale.rsplit('/', 1)[1]}, "
              f"after {refresh_seconds_label(worker)} {fresh.rsplit('/', 1)[1]} "
              f"(the lookup that checked: {refresh * 1e3:.1f} ms)")
        print(f"new registration by another process seen at once: {late}")
        return 0
    finally:
        if created:
            from bench.sesame_bench import drop_pg_database
            try:
                database.dispose()
                drop_pg_database(args.database)
            except Exception as exc:
                print(f"dropping the database failed: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def metadata_maker(workdir: Path):
    """SP metadata as pysaml2 writes it (the portals' usual tool), one key pair for all."""
    from saml2 import BINDING_HTTP_POST
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor

    from keys import ensure_key_pair

    key_file, cert_file = ensure_key_pair(directory=workdir / "sp", common_name="sp")

    def make(entity_id: str, acs: str | None = None) -> bytes:
        acs = acs or entity_id.replace("/metadata", "/acs")
        conf = {"entityid": entity_id, "key_file": str(key_file), "cert_file": str(cert_file),
                "service": {"sp": {"endpoints": {"assertion_consumer_service": [(acs, BINDING_HTTP_POST)]},
                                   "want_assertions_signed": True}}}
        return str(entity_descriptor(SPConfig().load(conf))).encode()
    return make


def refresh_seconds_label(worker) -> str:
    return f"{worker.refresh_seconds:g} s"


if __name__ == "__main__":
    os.environ.setdefault("SESAME_LOG_LEVEL", "WARNING")
    sys.exit(main())
