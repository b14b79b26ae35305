#!/usr/bin/env python3
"""Summary of a scripts/librdkafka-tests.sh run: one row per librdkafka test, then totals.

    librdkafka-tests-summary.py TEST_C RESULTS_DIR LOCAL NUMBER...

TEST_C is librdkafka's tests/test.c (its tests[] table gives each number's test names, flags and
scenario); RESULTS_DIR holds NNNN.json (the runner's TEST_REPORT), NNNN.log and NNNN.rc
("exit-status seconds") per test number. LOCAL is 1 when broker-less tests were run too. The
expected-failure and skip lists come in $RDK_EXPECTED_FAILURES and $RDK_SKIPPED_TESTS (one
"name-or-number reason" a line). Exits 1 when a test failed that is not an expected failure.
"""
import json
import os
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROW = re.compile(r"^\|\s*(\d{4}_\S+)\s*\|\s*([A-Z]+)\s*\|\s*([\d.]+)s\s*\|\s?(.*)$")


def parse_list(text):
    entries = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts:
            entries[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return entries


def parse_table(test_c):
    """{number: [(name, flags, scenario)]} from the tests[] table."""
    text = open(test_c, encoding="utf-8", errors="replace").read()
    start = text.index("struct test tests[]")
    table = text[start : text.index("{NULL}", start)]
    tests = {}
    for entry in re.split(r"\b_TEST\(", table)[1:]:
        m = re.match(r"\s*(\d{4})_(\w+)\s*,\s*([^,)]*)", entry)
        if not m:
            continue
        scenario = re.search(r'\.scenario\s*=\s*"([^"]*)"', entry)
        tests.setdefault(m.group(1), []).append(
            (m.group(1) + "_" + m.group(2), m.group(3), scenario.group(1) if scenario else "default")
        )
    return tests


def log_rows(path):
    """The runner's last summary table in a log: {name: (state, reason)}."""
    rows = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = ROW.match(ANSI.sub("", line).rstrip())
                if m:
                    rows[m.group(1)] = (m.group(2), m.group(4).strip())
    except OSError:
        pass
    return rows


def fail_lines(path, limit=12):
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = ANSI.sub("", line).rstrip()
                if ("FAIL" in line or "Assertion" in line or "timed out" in line) and not ROW.match(line):
                    out.append(line)
    except OSError:
        pass
    return out[:limit]


def main():
    test_c, results, local = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    numbers = sys.argv[4:]
    expected = parse_list(os.environ.get("RDK_EXPECTED_FAILURES", ""))
    skipped_numbers = parse_list(os.environ.get("RDK_SKIPPED_TESTS", ""))
    table = parse_table(test_c)

    rows = []  # (name, state, seconds, reason)
    for number in sorted(set(table) - set(numbers)):
        if number in skipped_numbers and not number.startswith("8"):
            for name, _, _ in table[number]:
                rows.append((name, "SKIPPED", 0.0, "skip list: " + skipped_numbers[number]))
    for number in numbers:
        names = table.get(number, [])
        report = {}
        try:
            with open(os.path.join(results, number + ".json"), encoding="utf-8") as f:
                report = json.load(f).get("tests", {})
        except (OSError, ValueError):
            pass
        try:
            rc, secs = open(os.path.join(results, number + ".rc")).read().split()
            rc = int(rc)
        except (OSError, ValueError):
            rc, secs = -1, "0"
        logged = log_rows(os.path.join(results, number + ".log"))
        any_failed = False
        for name, flags, scenario in names:
            is_local = "TEST_F_LOCAL" in flags
            entry = report.get(name)
            state = entry["state"] if entry else None
            seconds = float(entry.get("duration", 0.0)) if entry else float(secs)
            reason = logged.get(name, ("", ""))[1]
            if scenario != "default" and "default" not in scenario.split(","):
                state, reason = "SKIPPED", "needs test scenario %s" % scenario
            elif state is None:
                if not local and is_local:
                    state, reason = "SKIPPED", "broker-less test (RDK_LOCAL=1 runs it)"
                else:
                    state = "FAILED"
                    reason = "no result: the runner exited with status %d%s" % (
                        rc, " (killed at the time limit)" if rc in (124, 137) else "")
            elif state == "RUNNING":
                state = "FAILED"
                reason = "still running when the runner ended (exit %d)" % rc + (": " + reason if reason else "")
            elif state == "DNS":
                state, reason = "SKIPPED", reason or "not started"
            elif state == "SKIPPED" and not reason:
                reason = "skipped by the runner"
            if state == "SKIPPED" and "negative test flags" in reason:
                if "TEST_F_KNOWN_ISSUE" in flags:
                    reason = "marked KNOWN_ISSUE in librdkafka's test.c (the runner leaves it out)"
                elif is_local and not local:
                    reason = "broker-less test (RDK_LOCAL=1 runs it)"
            any_failed |= state == "FAILED"
            rows.append((name, state, seconds, reason))
        if rc != 0 and not any_failed and names:
            rows.append((number + "_(runner)", "FAILED", float(secs),
                         "test-runner exited with status %d after its tests" % rc))

    passed = failed = skipped = 0
    unexpected, xfail, xpass = [], [], []
    width = max([len(r[0]) for r in rows] + [10])
    print("\n=== librdkafka test results (Odradek) ===")
    for name, state, seconds, reason in sorted(rows):
        note = reason
        if state == "PASSED":
            passed += 1
            if name in expected:
                xpass.append(name)
                note = "listed as an expected failure: remove it from EXPECTED_FAILURES"
        elif state == "FAILED":
            failed += 1
            if name in expected:
                xfail.append(name)
                note = "expected (%s): %s" % (expected[name], reason)
            else:
                unexpected.append(name)
        else:
            skipped += 1
        print("%-8s %-*s %8.1fs  %s" % (state, width, name, seconds, note))

    for name in unexpected:
        number = name[:4]
        print("\n--- %s failed unexpectedly; from %s.log:" % (name, number))
        for line in fail_lines(os.path.join(results, number + ".log")):
            print("    " + line)
    print()
    if xfail:
        print("expected failures (%d): %s" % (len(xfail), " ".join(xfail)))
    if xpass:
        print("expected failures that PASSED (%d), remove them from the list: %s" % (len(xpass), " ".join(xpass)))
    if unexpected:
        print("UNEXPECTED failures (%d): %s" % (len(unexpected), " ".join(unexpected)))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
