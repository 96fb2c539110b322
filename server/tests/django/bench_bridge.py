"""One setup of scripts/bench-bridge: COUNT messages from one sequential sender into room
`lobby`, read by `roomcast listen --json` on a roomcast node; prints one JSON line with the
send-to-delivery latency (p50, p99, max) and the throughput.

    python bench_bridge.py SETUP CLI URL REDIS_URL COUNT RATE

SETUP is "pubsub" or "core" (a Django `group_send` through that channels_redis layer and the
bridge) or "http" (roomcast's own `POST /api/rooms/lobby/messages`). RATE is messages per
second, 0 for as fast as the sender goes. Each message is "bench <i> <unix ns at send>"; the
reader stamps its arrival with the same clock.
"""

import asyncio
import http.client
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse

PATTERN = re.compile(rb"bench (\d+) (\d+)")


class Reader:
    """`roomcast listen --json lobby`, read by a thread that stamps every bench message."""

    def __init__(self, cli, url):
        self.process = subprocess.Popen(
            [cli, "--url", url, "--json", "listen", "lobby"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.arrivals = {}
        self.warm = 0
        self.duplicates = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.process.stdout:
            now = time.time_ns()
            found = PATTERN.search(line)
            with self.lock:
                if found:
                    index = int(found.group(1))
                    if index in self.arrivals:
                        self.duplicates += 1
                    else:
                        self.arrivals[index] = (int(found.group(2)), now)
                elif b"warm-up" in line:
                    self.warm += 1

    def count(self):
        with self.lock:
            return len(self.arrivals), self.warm

    def stop(self):
        self.process.kill()
        self.process.wait()


def make_sender(setup, url, redis_url):
    if setup == "http":
        parsed = urllib.parse.urlparse(url)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port)

        async def send(text):
            body = json.dumps({"message": text, "user": "bench"})
            connection.request(
                "POST",
                "/api/rooms/lobby/messages",
                body,
                {"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"publish answered {response.status}")

        return send

    import django
    from django.conf import settings

    backend = {
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "core": "channels_redis.core.RedisChannelLayer",
    }[setup]
    settings.configure(
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {"BACKEND": backend, "CONFIG": {"hosts": [redis_url]}}},
    )
    django.setup()
    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def send(text):
        await layer.group_send("chat_lobby", {"type": "chat.message", "message": text})

    return send


async def run(setup, cli, url, redis_url, count, rate):
    reader = Reader(cli, url)
    send = make_sender(setup, url, redis_url)
    try:
        # Until the reader has joined and the bridge listens to the group, messages go nowhere:
        # warm up until one arrives (bounded).
        deadline = time.monotonic() + 20
        while reader.count()[1] == 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"{setup}: nothing arrived in 20 s")
            await send("warm-up")
            await asyncio.sleep(0.1)
        started = time.monotonic()
        for i in range(count):
            if rate > 0:
                pause = started + i / rate - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            await send(f"bench {i} {time.time_ns()}")
        sent_for = time.monotonic() - started
        deadline = time.monotonic() + 10
        while reader.count()[0] < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        reader.stop()
    arrivals = sorted(reader.arrivals.values())
    latencies = sorted((arrived - sent) / 1e6 for sent, arrived in arrivals)
    received = len(latencies)

    def pct(p):
        return round(latencies[min(received - 1, int(p * received))], 3) if received else None

    first_sent = arrivals[0][0] if arrivals else 0
    last_arrival = max((a for _, a in arrivals), default=0)
    span = (last_arrival - first_sent) / 1e9 if arrivals else 0
    print(
        json.dumps(
            {
                "setup": setup,
                "rate": rate or "max",
                "sent": count,
                "received": received,
                "duplicates": reader.duplicates,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
                "max_ms": round(latencies[-1], 3) if latencies else None,
                "sender_msgs_per_s": round(count / sent_for, 1) if sent_for else None,
                "delivered_msgs_per_s": round(received / span, 1) if span else None,
            }
        ),
        flush=True,
    )


def main():
    setup, cli, url, redis_url, count, rate = sys.argv[1:]
    asyncio.run(run(setup, cli, url, redis_url, int(count), float(rate)))


if __name__ == "__main__":
    main()
