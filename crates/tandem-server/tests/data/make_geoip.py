#!/usr/bin/env python3
"""Writes geoip-test.mmdb (beside this script), a tiny MaxMind DB in the GeoIP2-Country layout that
tandem's --geoip tests read. It maps loopback addresses (which real databases leave out) to
countries, so tests can connect from chosen source addresses on this machine:

    127.0.0.1/32 -> DE     127.0.0.2/32 -> FR     everything else -> not found (ZZ)

Regenerate with: pip install mmdb-writer && python3 crates/tandem-server/tests/data/make_geoip.py
"""
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
for network, iso in [("127.0.0.1/32", "DE"), ("127.0.0.2/32", "FR")]:
    writer.insert_network(IPSet([network]), {"country": {"iso_code": iso}})
writer.to_db_file(str(Path(__file__).with_name("geoip-test.mmdb")))
