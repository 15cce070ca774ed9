"""Load for scripts/bench_serve.sh: CLIENTS threads, each sending one-input POST /v1/predict requests
back to back (HTTP/1.1 keep-alive, Python's http.client) for WARMUP (default 5) then SECONDS
seconds, every request a task drawn in turn from the given ones and an input from that task's
test split. Only the SECONDS after the warm-up count (a server's first passes make its kernels
for new shapes). Prints one JSON line: requests, requests per second, p50 and p99 latency in
ms, and errors.

    [WARMUP=5] python3 scripts/serve_load.py URL CLIENTS SECONDS TASK_SPEC...
"""
import http.client, json, os, random, sys, threading, time, urllib.parse

url, clients, seconds, specs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
target = urllib.parse.urlparse(url)


def test_inputs(path):
    spec = json.load(open(path)); folder = os.path.dirname(path)
    split = os.path.join(folder, spec["test"])
    rows = []
    if spec["format"] == "jsonl":
        for line in open(split, encoding="utf-8"):
            if line.strip():
                row = json.loads(line)
                if spec["kind"] == "tagging":
                    rows.append({"tokens": row[spec.get("text_field", "tokens")]})
                else:
                    rows.append({"text": row[spec["text_field"]]})
    elif spec["format"] == "conll":
        words = []
        for line in list(open(split, encoding="utf-8")) + [""]:
            if line.strip():
                words.append(line.split("\t")[0])
            elif words:
                rows.append({"tokens": words}); words = []
    return [dict(row, task=spec["name"]) for row in rows[:200]]


pools = [test_inputs(spec) for spec in specs]
latencies, errors, lock = [], [0], threading.Lock()
warmup = float(os.environ.get("WARMUP", "5"))
counting_from = time.time() + warmup
deadline = counting_from + seconds


def client(number):
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
    rng = random.Random(number)
    turn = number
    while time.time() < deadline:
        body = json.dumps(rng.choice(pools[turn % len(pools)])).encode()
        turn += 1
        started = time.perf_counter()
        try:
            connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse(); response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close(); connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        elapsed = time.perf_counter() - started
        if time.time() - elapsed < counting_from:
            continue
        with lock:
            if ok:
                latencies.append(elapsed)
            else:
                errors[0] += 1


threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
wall = time.time() - counting_from
latencies.sort()
pick = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
print(json.dumps({"clients": clients, "requests": len(latencies), "requests_per_s": round(len(latencies) / wall, 1),
                  "p50_ms": round(pick(0.50), 1), "p99_ms": round(pick(0.99), 1), "errors": errors[0]}))
