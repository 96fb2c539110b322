"""The Django side of the bridge tests and bench: a configured Django with a real channels_redis
layer, used the way a Django app uses it.

    python channels_app.py LAYER REDIS_URL PREFIX send GROUP TEXT...
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "chat.message",
        "message": TEXT}) for each TEXT, in order; prints "sent N".
    python channels_app.py LAYER REDIS_URL PREFIX send-json GROUP JSON...
        group_send(GROUP, json.loads(JSON)) for each JSON object, in order (a message with
        fields beside "type" and "message"); prints "sent N".
    python channels_app.py LAYER REDIS_URL PREFIX send-unfit GROUP
        group_send(GROUP, ...) of one message "unfit" whose fields include bytes and NaN,
        which JSON cannot hold, beside "status": "kept"; prints "sent 1".
    python channels_app.py LAYER REDIS_URL PREFIX consume GROUP
        new_channel, group_add(GROUP), prints "ready CHANNEL", then one JSON line per message
        received, until killed.
    python channels_app.py LAYER REDIS_URL PREFIX bench GROUP COUNT RATE
        COUNT group_sends at RATE per second, each message "bench <i> <unix ns>"; prints
        "sent N in S s".
    python channels_app.py LAYER REDIS_URL PREFIX garbage GROUP
        PUBLISHes (pubsub) or ZADDs into the group's registered channels (core) payloads that
        are not a readable message; prints "garbage N".

LAYER is "pubsub" or "core".
"""

import asyncio
import json
import sys
import time

import django
from django.conf import settings

LAYERS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}


def configure(layer, url, prefix):
    settings.configure(
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": LAYERS[layer],
                # redis-py's default socket timeout (5 s) equals channels_redis's BZPOPMIN
                # timeout (5 s): on a loaded machine the reply to an empty wait lands after
                # the socket gave up and the consumer dies. A Django worker would too.
                "CONFIG": {
                    "hosts": [{"address": url, "socket_timeout": 30}],
                    "prefix": prefix,
                },
            }
        },
    )
    django.setup()


def send(group, texts):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    for text in texts:
        async_to_sync(layer.group_send)(group, {"type": "chat.message", "message": text})
    print(f"sent {len(texts)}", flush=True)


def send_messages(group, messages):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    for message in messages:
        async_to_sync(layer.group_send)(group, message)
    print(f"sent {len(messages)}", flush=True)


UNFIT = {
    "type": "chat.message",
    "message": "unfit",
    "status": "kept",
    "receipt": b"\x00\x01",
    "ratio": float("nan"),
}


async def consume(group):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    print(f"ready {channel}", flush=True)
    while True:
        message = await layer.receive(channel)
        print(json.dumps(message), flush=True)


async def bench(group, count, rate):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    started = time.monotonic()
    for i in range(count):
        due = started + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        text = f"bench {i} {time.time_ns()}"
        await layer.group_send(group, {"type": "chat.message", "message": text})
    print(f"sent {count} in {time.monotonic() - started:.3f} s", flush=True)


async def garbage(layer_name, prefix, group):
    import redis.asyncio as redis

    connection = redis.from_url(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"])
    payloads = [b"\xc1 not msgpack", b"\x93\x01\x02\x03", b"gAAAAABfernet-token"]
    if layer_name == "pubsub":
        for payload in payloads:
            await connection.publish(f"{prefix}__group__{group}", payload)
    else:
        channels = await connection.zrange(f"{prefix}:group:{group}", 0, -1)
        for channel in channels:
            key = prefix + channel.decode().split("!")[0]
            for payload in payloads:
                # The core layer's 12 random bytes, then the payload.
                await connection.zadd(key, {bytes(12) + payload: time.time()})
    await connection.aclose()
    print(f"garbage {len(payloads)}", flush=True)


def main():
    layer, url, prefix, command, group, *rest = sys.argv[1:]
    configure(layer, url, prefix)
    if command == "send":
        send(group, rest)
    elif command == "send-json":
        send_messages(group, [json.loads(text) for text in rest])
    elif command == "send-unfit":
        send_messages(group, [UNFIT])
    elif command == "consume":
        asyncio.run(consume(group))
    elif command == "bench":
        asyncio.run(bench(group, int(rest[0]), float(rest[1])))
    elif command == "garbage":
        asyncio.run(garbage(layer, prefix, group))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
