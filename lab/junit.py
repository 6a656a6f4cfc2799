"""JUnit XML of a check report (`lab check --junit FILE`), for CI systems that show test
results. One testcase per check; a failed check is a <failure> whose text is the evidence.
Pure: it reads the report's JSON (api.CheckReport.to_json()), so its input is documented.
"""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET


def from_check_report(report: dict, timestamp: float | None = None, hostname: str | None = None) -> str:
    lab = report["lab"]
    results = report["results"]
    failures = sum(1 for r in results if not r["passed"])
    total_time = f"{report.get('elapsed', 0.0):.3f}"
    suites = ET.Element("testsuites", name="neutron-lab", tests=str(len(results)),
                        failures=str(failures), errors="0", time=total_time)
    suite = ET.SubElement(suites, "testsuite", name=f"lab check {lab}", tests=str(len(results)),
                          failures=str(failures), errors="0", skipped="0", time=total_time,
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)),
                          hostname=hostname or socket.gethostname())
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="lab", value=lab)
    ET.SubElement(props, "property", name="schema_version", value=str(report.get("schema_version", "")))
    for r in results:
        _testcase(suite, lab, r)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, lab: str, r: dict) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"neutron-lab.{lab}", name=r["name"],
                         time=f"{r.get('seconds', 0.0):.3f}")
    evidence = r.get("evidence") or []
    text = "\n".join([f"from {r.get('from')} to {r.get('to')} ({r.get('proto')})",
                      f"expected: {r['expected']}", f"seen: {r['seen']}"]
                     + [f"evidence: {e}" for e in evidence])
    if not r["passed"]:
        bad = [e for e in evidence if e.startswith("FAIL")]
        message = f"expected {r['expected']}, seen {r['seen']}" + (f"; {bad[0].strip()}" if bad else "")
        failure = ET.SubElement(case, "failure", message=message, type="CheckFailed")
        failure.text = text
    ET.SubElement(case, "system-out").text = text
