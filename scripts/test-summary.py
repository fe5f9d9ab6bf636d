#!/usr/bin/env python3
"""Prints the closing line of a `swift test --parallel --xunit-output FILE` run.

`swift test --parallel` prints no XCTest summary of its own, so this reads the xunit report and
prints `tests: N passed, N failed` (plus the names of failed tests). Exits 1 if any failed or
if the report lists no test at all.
"""
import sys
import xml.etree.ElementTree as ET

report = ET.parse(sys.argv[1]).getroot()
cases = report.iter("testcase")
passed, failed = 0, []
for case in cases:
    if case.find("failure") is not None or case.find("error") is not None:
        failed.append(f"{case.get('classname')}.{case.get('name')}")
    else:
        passed += 1
for name in failed:
    print(f"FAILED: {name}")
print(f"tests: {passed} passed, {len(failed)} failed")
sys.exit(1 if failed or passed == 0 else 0)
