"""Cluster timings against a local cluster of scripts/cluster.sh (driven by
scripts/bench-cluster.sh, which gives it a cluster directory, ports and a binary).

Usage: bench_cluster.py --cluster-sh PATH --work DIR --base-port N --out DIR [--only WHAT,…]

Three measurements, each on a fresh 3-node cluster of its own:

failover     kill -9 of the active controller (the quorum leader, as DescribeCluster names it)
             until a CreateTopics through a surviving broker succeeds. From the kill on, a new
             CreateTopics (1 partition, RF 1, a new name each) goes to one survivor every
             PROBE_INTERVAL_S on a connection of its own, so one request stuck behind the dead
             leader does not hide the moment another would succeed; the time is the first
             success's answer. Also: when the survivor's DescribeCluster names a new controller,
             and what the first request (sent at once after the kill) got, when. The killed node
             is started again (scripts/cluster.sh start I) and the quorum settles between runs.
propagation  CreateTopics (6 partitions, RF 3, through each broker in turn) answered → every
             broker's Metadata shows the topic with all 6 partitions led. One poller per broker
             on its own connection asks Metadata for the topic back to back from the answer on.
restart      a cluster holding TOPICS topics × PARTITIONS partitions (RF REPLICATION), all three
             nodes stopped at once, then timed from `scripts/cluster.sh up 3` to every node
             answering Metadata and to every node's Metadata showing all the topics with every
             partition led; RUNS times after a clean stop (SIGTERM, waited for however long it
             takes: scripts/cluster.sh down would SIGKILL after 15 s), then RUNS times after
             kill -9 of all three. Each node's log gives the phases of its start.

Requests are written by hand (Metadata v1, CreateTopics v2, DescribeCluster v0), so a client's
retry and metadata-refresh policy is not part of what is measured, and each goes to the one
broker meant. Results: OUT/results.json (every sample) and a summary on stdout.
"""

import argparse
import calendar
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid

PROBE_INTERVAL_S = 0.1
CONNECT_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 30.0
FAILOVER_WAIT_S = 60.0
SETTLE_WAIT_S = 60.0
# How long a restarted node may take to show every topic before the run counts as failed.
RESTART_WAIT_S = 600.0
NODES = 3

NONE = 0
REQUEST_TIMED_OUT = 7
TOPIC_ALREADY_EXISTS = 36
NOT_CONTROLLER = 41


def log(*parts):
    print("[bench-cluster]", *parts, file=sys.stderr, flush=True)


# --- the wire: just enough of three requests ------------------------------------------------


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        value = self.data[self.at : self.at + n].decode()
        self.at += n
        return value

    def uvarint(self):
        shift = value = 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def compact_string(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        value = self.data[self.at : self.at + n].decode()
        self.at += n
        return value


def string(s):
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


class Conn:
    """One connection to one broker; requests one at a time."""

    def __init__(self, address, timeout=REQUEST_TIMEOUT_S):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation = 0

    def close(self):
        self.sock.close()

    def _read(self, n):
        chunks, left = [], n
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def call(self, api_key, version, body, flexible=False):
        self.correlation += 1
        header = struct.pack(">hhi", api_key, version, self.correlation) + string("bench")
        if flexible:
            header += b"\x00"  # no tagged fields
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", self._read(4))
        reader = Reader(self._read(size))
        correlation = reader.take(">i")
        assert correlation == self.correlation, f"correlation {correlation}"
        if flexible:
            assert reader.uvarint() == 0, "tagged fields in a response header"
        return reader

    def metadata(self, topics=None):
        """Metadata v1: {topic: (error, [(partition, error, leader)])} and the broker count."""
        if topics is None:
            body = struct.pack(">i", -1)
        else:
            body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
        r = self.call(3, 1, body)
        brokers = r.take(">i")
        for _ in range(brokers):
            r.take(">i"), r.string(), r.take(">i"), r.string()
        r.take(">i")  # controller_id: the answering broker here, by design
        result = {}
        for _ in range(r.take(">i")):
            error, name, _internal = r.take(">h"), r.string(), r.take(">b")
            partitions = []
            for _ in range(r.take(">i")):
                p_error, index, leader = r.take(">h"), r.take(">i"), r.take(">i")
                for _ in range(2):  # replicas, isr
                    for _ in range(r.take(">i")):
                        r.take(">i")
                partitions.append((index, p_error, leader))
            result[name] = (error, partitions)
        return result, brokers

    def create_topics(self, names, partitions, replication, timeout_ms=15000):
        """CreateTopics v2: {name: (error, message)}."""
        body = struct.pack(">i", len(names))
        for name in names:
            body += string(name) + struct.pack(">ihii", partitions, replication, 0, 0)
        body += struct.pack(">ib", timeout_ms, 0)
        r = self.call(19, 2, body)
        r.take(">i")  # throttle
        result = {}
        for _ in range(r.take(">i")):
            name, error, message = r.string(), r.take(">h"), r.string()
            result[name] = (error, message)
        return result

    def controller(self):
        """DescribeCluster v0: the active controller's id (-1: none known)."""
        r = self.call(60, 0, b"\x00\x00", flexible=True)  # no authorized ops; no tags
        r.take(">i")  # throttle
        error = r.take(">h")
        r.compact_string()  # error message
        if error != NONE:
            return -1
        r.compact_string()  # cluster id
        return r.take(">i")


def complete(entry, partitions):
    """A Metadata entry shows the topic with all its partitions led."""
    if entry is None:
        return False
    error, parts = entry
    return error == NONE and len(parts) == partitions and all(
        p_error == NONE and leader >= 0 for _, p_error, leader in parts
    )


def summary(values):
    if not values:
        return None
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def fmt(stats, unit="s", digits=3):
    if stats is None:
        return "none"
    m, lo, hi = (round(stats[k], digits) for k in ("median", "min", "max"))
    return f"median {m} {unit} (min {lo}, max {hi}, n={stats['n']})"


# --- the cluster, through scripts/cluster.sh -------------------------------------------------


class Cluster:
    def __init__(self, args, name):
        self.script = args.cluster_sh
        self.dir = os.path.join(args.work, name)
        self.base_port = args.base_port
        self.logs = os.path.join(args.out, "logs", name)
        # A node with thousands of partitions may take longer than cluster.sh's 60 s to listen:
        # that is measured here, not cut short by `up` stopping the cluster.
        self.env = dict(os.environ, CLUSTER_DIR=self.dir, BASE_PORT=str(self.base_port),
                        START_WAIT_S=str(int(RESTART_WAIT_S)))

    def address(self, node):
        return f"127.0.0.1:{self.base_port + node}"

    def sh(self, *argv):
        subprocess.run(["bash", self.script, *argv], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def up(self):
        self.sh("up", str(NODES))

    def down(self):
        self.sh("down")

    def pid(self, node):
        with open(os.path.join(self.dir, f"node-{node}", "pid")) as f:
            return int(f.read())

    def log_path(self, node):
        return os.path.join(self.dir, f"node-{node}", "odradek.log")

    def ask(self, node, what, *argv, timeout=5.0):
        conn = Conn(self.address(node), timeout=timeout)
        try:
            return getattr(conn, what)(*argv)
        finally:
            conn.close()

    def settle(self, timeout=SETTLE_WAIT_S):
        """Waits until every node names the same controller and a topic can be created: the
        quorum is whole again. Returns the controller."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen = {self.ask(n, "controller") for n in range(1, NODES + 1)}
                if len(seen) == 1 and (controller := seen.pop()) >= 1:
                    name = f"settle-{uuid.uuid4().hex[:8]}"
                    if self.ask(1, "create_topics", [name], 1, 1)[name][0] == NONE:
                        return controller
            except (OSError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster in {self.dir} did not settle in {timeout} s")
            time.sleep(0.2)


# --- failover ------------------------------------------------------------------------------


def create_probe(address, started_at, results, lock):
    name = f"fo-{uuid.uuid4().hex[:10]}"
    try:
        conn = Conn(address)
        try:
            error, message = conn.create_topics([name], 1, 1)[name]
        finally:
            conn.close()
    except (OSError, ConnectionError) as e:
        error, message = -1, str(e)
    with lock:
        results.append({"sent_s": started_at, "answered_s": time.monotonic(), "error": error,
                        "message": message})


def failover_run(cluster, run):
    controller = cluster.settle()
    survivors = [n for n in range(1, NODES + 1) if n != controller]
    survivor = survivors[run % len(survivors)]
    address = cluster.address(survivor)
    results, lock = [], threading.Lock()
    pid = cluster.pid(controller)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    elected_s = None
    next_probe = t0
    threads = []
    while time.monotonic() - t0 < FAILOVER_WAIT_S:
        now = time.monotonic()
        if now >= next_probe:
            thread = threading.Thread(target=create_probe, args=(address, now, results, lock),
                                      daemon=True)
            thread.start()
            threads.append(thread)
            next_probe += PROBE_INTERVAL_S
        if elected_s is None:
            try:
                named = cluster.ask(survivor, "controller", timeout=1.0)
                if named >= 1 and named != controller:
                    elected_s = time.monotonic() - t0
            except (OSError, ConnectionError):
                pass
        with lock:
            if any(r["error"] == NONE for r in results):
                break
        time.sleep(0.02)
    with lock:
        ok = [r["answered_s"] - t0 for r in results if r["error"] == NONE]
        first = min(results, key=lambda r: r["sent_s"]) if results else None
        samples = [dict(r, sent_s=r["sent_s"] - t0, answered_s=r["answered_s"] - t0)
                   for r in results]
    record = {
        "run": run,
        "killed": controller,
        "through": survivor,
        "create_ok_s": min(ok) if ok else None,
        "controller_named_s": elected_s,
        "first_request": first and {"error": first["error"], "message": first["message"],
                                    "answered_s": first["answered_s"] - t0},
        "probes": samples,
    }
    created = record["create_ok_s"]
    log(f"failover run {run}: killed node-{controller}, create through node-{survivor} ok at "
        f"{created if created is None else round(created, 3)} s, new controller named at "
        f"{elected_s if elected_s is None else round(elected_s, 3)} s; first request: "
        f"error {first and first['error']} at "
        f"{first and round(first['answered_s'] - t0, 3)} s")
    # `start` moves the killed node's log aside, and the one before it is lost at the next
    # start: kept here.
    os.makedirs(cluster.logs, exist_ok=True)
    shutil.copy(cluster.log_path(controller),
                os.path.join(cluster.logs, f"run-{run}-killed-node-{controller}.log"))
    cluster.sh("start", str(controller))
    return record


def failover(args):
    cluster = Cluster(args, "failover")
    cluster.up()
    try:
        runs = [failover_run(cluster, run) for run in range(args.failover_runs)]
        cluster.settle()
    finally:
        cluster.down()
    failed = [r["run"] for r in runs if r["create_ok_s"] is None]
    return {
        "runs": runs,
        "failed_runs": failed,
        "create_ok_s": summary([r["create_ok_s"] for r in runs if r["create_ok_s"] is not None]),
        "controller_named_s": summary(
            [r["controller_named_s"] for r in runs if r["controller_named_s"] is not None]),
        "first_request_s": summary(
            [r["first_request"]["answered_s"] for r in runs if r["first_request"]]),
        "first_request_errors": sorted({r["first_request"]["error"] for r in runs
                                        if r["first_request"]}),
    }


# --- propagation ---------------------------------------------------------------------------


def poll_until_shown(address, topic, partitions, start, out, node):
    conn = Conn(address)
    polls = 0
    try:
        while time.monotonic() - start < 30.0:
            polls += 1
            shown, _ = conn.metadata([topic])
            if complete(shown.get(topic), partitions):
                out[node] = (time.monotonic() - start, polls)
                return
    finally:
        conn.close()


def propagation(args):
    cluster = Cluster(args, "propagation")
    cluster.up()
    samples = []
    try:
        cluster.settle()
        conns = {n: Conn(cluster.address(n)) for n in range(1, NODES + 1)}
        for i in range(args.propagation_topics):
            through = 1 + i % NODES
            topic = f"prop-{i}-{uuid.uuid4().hex[:8]}"
            sent = time.monotonic()
            error, message = conns[through].create_topics([topic], 6, 3)[topic]
            answered = time.monotonic()
            if error != NONE:
                raise RuntimeError(f"CreateTopics {topic} through node-{through}: {error} "
                                   f"{message}")
            shown = {}
            pollers = [threading.Thread(target=poll_until_shown,
                                        args=(cluster.address(n), topic, 6, answered, shown, n))
                       for n in range(1, NODES + 1)]
            for p in pollers:
                p.start()
            for p in pollers:
                p.join()
            missing = [n for n in range(1, NODES + 1) if n not in shown]
            sample = {
                "topic": topic,
                "through": through,
                "create_s": answered - sent,
                "shown_s": {n: shown[n][0] for n in shown},
                "polls": {n: shown[n][1] for n in shown},
                "missing": missing,
                "all_shown_s": None if missing else max(v[0] for v in shown.values()),
            }
            samples.append(sample)
            time.sleep(0.2)
        for conn in conns.values():
            conn.close()
    finally:
        cluster.down()
    others = [s["shown_s"][n] for s in samples for n in s["shown_s"] if n != s["through"]]
    return {
        "samples": samples,
        "failed": [s["topic"] for s in samples if s["missing"]],
        "create_s": summary([s["create_s"] for s in samples]),
        "all_shown_s": summary([s["all_shown_s"] for s in samples
                                if s["all_shown_s"] is not None]),
        "other_brokers_shown_s": summary(others),
        "through_broker_shown_s": summary([s["shown_s"][s["through"]] for s in samples
                                           if s["through"] in s["shown_s"]]),
    }


# --- restart -------------------------------------------------------------------------------


def du_bytes(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def fill(cluster, args):
    names = [f"r{i:05d}" for i in range(args.restart_topics)]
    batch = 100
    start = time.monotonic()
    for at in range(0, len(names), batch):
        chunk = names[at : at + batch]
        through = 1 + (at // batch) % NODES
        result = cluster.ask(through, "create_topics", chunk, args.restart_partitions,
                             args.restart_replication, 60000, timeout=REQUEST_TIMEOUT_S * 4)
        bad = {n: e for n, e in result.items() if e[0] != NONE}
        if bad:
            raise RuntimeError(f"CreateTopics batch at {at}: {len(bad)} failed, e.g. "
                               f"{next(iter(bad.items()))}")
    return names, time.monotonic() - start


def full_metadata_node(cluster, node, names, partitions):
    shown, _ = cluster.ask(node, "metadata", None, timeout=REQUEST_TIMEOUT_S)
    return all(complete(shown.get(name), partitions) for name in names)


def watch_start(cluster, node, names, partitions, t0, out):
    """Times, from t0, node's first accepted connection (the listener is bound before the logs
    are opened, so this is early), its first Metadata answer and its first full Metadata."""
    connected = answered = None
    while time.monotonic() - t0 < RESTART_WAIT_S:
        try:
            conn = Conn(cluster.address(node), timeout=RESTART_WAIT_S)
        except OSError:
            time.sleep(0.05)
            continue
        if connected is None:
            connected = time.monotonic() - t0
        try:
            shown, _ = conn.metadata(None)
        except (OSError, ConnectionError):
            time.sleep(0.05)
            continue
        finally:
            conn.close()
        if answered is None:
            answered = time.monotonic() - t0
        if all(complete(shown.get(name), partitions) for name in names):
            out[node] = {"connected_s": connected, "answered_s": answered,
                         "metadata_s": time.monotonic() - t0}
            return
        time.sleep(0.1)
    out[node] = {"connected_s": connected, "answered_s": answered, "metadata_s": None}


# Lines of a node's log that mark its start's phases.
PHASES = {
    "metadata_loaded": "metadata loaded",
    "logs_opened": "partition logs opened",
    "quorum_leader": "metadata quorum leader leader=Some",
    "registered": "registered with the metadata quorum",
    "listening": "odradek listening on",
}


def log_phases(path, t0_wall):
    """Seconds from t0_wall (time.time()) to each phase's first line in a node's log."""
    stamps = {}
    with open(path, errors="replace") as f:
        for line in f:
            stamp = line.split(" ", 1)[0]
            try:
                at = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float(
                    "0" + stamp[19:].rstrip("Z"))
            except ValueError:
                continue
            for phase, text in PHASES.items():
                if phase not in stamps and text in line:
                    stamps[phase] = round(at - t0_wall, 3)
    return stamps


def clean_markers(cluster, node):
    data = os.path.join(cluster.dir, f"node-{node}", "data")
    return sum(1 for e in os.scandir(data)
               if e.is_dir() and os.path.exists(os.path.join(e.path, ".clean")))


def stop_all(cluster, how):
    """Stops every node at once, by SIGTERM (waiting as long as they take, up to
    RESTART_WAIT_S) or SIGKILL; seconds until each had exited."""
    pids = {n: cluster.pid(n) for n in range(1, NODES + 1)}
    t0 = time.monotonic()
    for pid in pids.values():
        os.kill(pid, signal.SIGTERM if how == "clean" else signal.SIGKILL)
    gone = {}
    while len(gone) < NODES and time.monotonic() - t0 < RESTART_WAIT_S:
        for n, pid in pids.items():
            if n not in gone and not alive(pid):
                gone[n] = time.monotonic() - t0
        time.sleep(0.05)
    for n, pid in pids.items():
        if n not in gone:
            log(f"node-{n} (pid {pid}) still runs {RESTART_WAIT_S} s after SIGTERM: SIGKILL")
            os.kill(pid, signal.SIGKILL)
    return gone


def alive(pid):
    """Running and not a zombie (a node is no child of ours, so nobody here reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def restart_run(cluster, args, names, run, how):
    stop = stop_all(cluster, how)
    clean = {n: clean_markers(cluster, n) for n in range(1, NODES + 1)}
    out = {}
    t0, t0_wall = time.monotonic(), time.time()
    up = subprocess.Popen(["bash", cluster.script, "up", str(NODES)], env=cluster.env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watchers = [threading.Thread(target=watch_start,
                                 args=(cluster, n, names, args.restart_partitions, t0, out))
                for n in range(1, NODES + 1)]
    for w in watchers:
        w.start()
    up_rc = up.wait()
    up_s = time.monotonic() - t0
    for w in watchers:
        w.join()
    nodes = {n: dict(out[n], log_phases_s=log_phases(cluster.log_path(n), t0_wall))
             for n in range(1, NODES + 1)}
    done = [v["metadata_s"] for v in nodes.values() if v["metadata_s"] is not None]
    answered = [v["answered_s"] for v in nodes.values() if v["answered_s"] is not None]
    record = {
        "run": run,
        "stopped_by": how,
        "stop_s": stop,
        "clean_logs_at_start": clean,
        "up_script_s": up_s,
        "up_rc": up_rc,
        "nodes": nodes,
        "all_answering_s": max(answered) if len(answered) == NODES else None,
        "all_metadata_s": max(done) if len(done) == NODES else None,
    }
    log(f"restart run {run} after {how} stop: stopped in "
        f"{ {n: round(v, 2) for n, v in stop.items()} } s, clean logs {clean}; all answering "
        f"{record['all_answering_s']} s, all Metadata full {record['all_metadata_s']} s; "
        f"phases {[nodes[n]['log_phases_s'] for n in nodes]}")
    return record


def restart(args):
    cluster = Cluster(args, "restart")
    cluster.up()
    runs = []
    try:
        cluster.settle()
        names, fill_s = fill(cluster, args)
        log(f"restart: {len(names)} topics × {args.restart_partitions} partitions "
            f"(RF {args.restart_replication}) created in {fill_s:.1f} s")
        wait_all(cluster, names, args.restart_partitions)
        size = du_bytes(cluster.dir)
        dirs = {n: sum(1 for e in os.scandir(os.path.join(cluster.dir, f"node-{n}", "data"))
                       if e.is_dir()) for n in range(1, NODES + 1)}
        log(f"restart: cluster directory {size / 1e6:.1f} MB; directories in each data dir "
            f"{dirs}")
        for how in ("clean", "kill"):
            for run in range(args.restart_runs):
                runs.append(restart_run(cluster, args, names, run, how))
    finally:
        cluster.down()

    def of(how, key):
        return summary([r[key] for r in runs if r["stopped_by"] == how and r[key] is not None])

    return {
        "topics": args.restart_topics,
        "partitions": args.restart_partitions,
        "replication": args.restart_replication,
        "fill_s": fill_s,
        "cluster_dir_bytes": size,
        "directories_per_data_dir": dirs,
        "runs": runs,
        **{f"{how}_{key}": of(how, key) for how in ("clean", "kill")
           for key in ("all_answering_s", "all_metadata_s")},
        "clean_stop_s": summary([max(r["stop_s"].values()) for r in runs
                                 if r["stopped_by"] == "clean" and len(r["stop_s"]) == NODES]),
    }


def wait_all(cluster, names, partitions, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not all(full_metadata_node(cluster, n, names, partitions)
                  for n in range(1, NODES + 1)):
        if time.monotonic() > deadline:
            raise RuntimeError("the topics created are not in every node's Metadata")
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster-sh", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--base-port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", default="failover,propagation,restart")
    parser.add_argument("--failover-runs", type=int, default=10)
    parser.add_argument("--propagation-topics", type=int, default=20)
    parser.add_argument("--restart-topics", type=int, default=1000)
    parser.add_argument("--restart-partitions", type=int, default=6)
    parser.add_argument("--restart-replication", type=int, default=3)
    parser.add_argument("--restart-runs", type=int, default=3)
    args = parser.parse_args()
    wanted = args.only.split(",")
    unknown = set(wanted) - {"failover", "propagation", "restart"}
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}")
    results = {}
    path = os.path.join(args.out, "results.json")
    for what in wanted:
        log(f"--- {what}")
        results[what] = globals()[what](args)
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
    print(f"results: {path}")
    if "failover" in results:
        r = results["failover"]
        print(f"failover, kill -9 of the controller → CreateTopics ok through a survivor: "
              f"{fmt(r['create_ok_s'])}; failed runs {r['failed_runs']}")
        print(f"  survivor's DescribeCluster names the new controller: "
              f"{fmt(r['controller_named_s'])}")
        print(f"  the request sent at the kill answered: {fmt(r['first_request_s'])}, "
              f"errors {r['first_request_errors']}")
    if "propagation" in results:
        r = results["propagation"]
        print(f"propagation, CreateTopics answered → every broker's Metadata shows it: "
              f"{fmt(r['all_shown_s'], 's', 4)}; failed {r['failed']}")
        print(f"  CreateTopics round trip: {fmt(r['create_s'], 's', 4)}")
        print(f"  the other two brokers: {fmt(r['other_brokers_shown_s'], 's', 4)}")
    if "restart" in results:
        r = results["restart"]
        print(f"restart, {r['topics']} topics × {r['partitions']} partitions, RF "
              f"{r['replication']} (filled in {r['fill_s']:.1f} s, "
              f"{r['cluster_dir_bytes'] / 1e6:.1f} MB on disk):")
        print(f"  stop, SIGTERM to all three until all exited: {fmt(r['clean_stop_s'])}")
        for how in ("clean", "kill"):
            print(f"  after a {how} stop: all three answer Metadata "
                  f"{fmt(r[how + '_all_answering_s'])}; all three show every topic led "
                  f"{fmt(r[how + '_all_metadata_s'])}")

if __name__ == "__main__":
    main()
