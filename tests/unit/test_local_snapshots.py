"""How the local stack's state survives a restart: moto's memory mirrored to a folder and back."""

from __future__ import annotations

from pathlib import Path

from tagsmith.local.stack import Snapshotter
from tagsmith.storage import FileObjectStore, MemoryObjectStore


def test_snapshot_writes_changes_and_removals_and_restore_brings_them_back(tmp_path: Path) -> None:
    live = MemoryObjectStore()
    disk = FileObjectStore(root=tmp_path)
    snap = Snapshotter(live=live, disk=disk, buckets=["data"])
    live.put("data", "tenants/acme/records/a.jpg.json", b"{1}")
    live.put("data", "tenants/acme/records/b.jpg.json", b"{2}")
    assert snap.snapshot() == 2
    assert snap.snapshot() == 0  # nothing changed: nothing rewritten
    live.put("data", "tenants/acme/records/a.jpg.json", b"{1b}")
    live.delete("data", "tenants/acme/records/b.jpg.json")
    assert snap.snapshot() == 2
    assert (tmp_path / "data/tenants/acme/records/a.jpg.json").read_bytes() == b"{1b}"
    assert not (tmp_path / "data/tenants/acme/records/b.jpg.json").exists()

    restarted = MemoryObjectStore()  # a new moto process starts empty
    assert Snapshotter(live=restarted, disk=disk, buckets=["data"]).restore() == 1
    assert restarted.get("data", "tenants/acme/records/a.jpg.json").body == b"{1b}"
